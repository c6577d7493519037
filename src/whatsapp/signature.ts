/**
 * Webhook signatures, always computed over the raw request bytes (never a re-serialised body).
 *
 * - Meta: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>`.
 * - 360dialog (optional partner signing): `x-360dialog-signature: <hex HMAC-SHA256(raw body,
 *   partner secret)>`. 360dialog's page shows the bare hex; a `sha256=` prefix is tolerated.
 */
import { createHmac } from 'node:crypto';
import { safeEqual } from '../util/safe-equal.js';

export const META_SIGNATURE_HEADER = 'x-hub-signature-256';
export const D360_SIGNATURE_HEADER = 'x-360dialog-signature';

export type SignatureProvider = 'meta' | '360dialog';

function hmacHex(rawBody: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(rawBody).digest('hex');
}

/** The `X-Hub-Signature-256` header value Meta would send for this body. */
export function sign(rawBody: Buffer | string, secret: string): string {
  return `sha256=${hmacHex(rawBody, secret)}`;
}

/** The `x-360dialog-signature` header value (bare hex). */
export function sign360dialog(rawBody: Buffer | string, secret: string): string {
  return hmacHex(rawBody, secret);
}

const HEX_64 = /^[0-9a-fA-F]{64}$/;

/** Constant-time comparison of a received hex digest against the expected one. */
function hexDigestEquals(receivedHex: string, expectedHex: string): boolean {
  if (!HEX_64.test(receivedHex)) return false;
  const a = Buffer.from(receivedHex.toLowerCase(), 'hex');
  const b = Buffer.from(expectedHex, 'hex');
  return safeEqual(a, b);
}

export interface VerifyOptions {
  /** Which header format `header` is in; default `meta`. */
  provider?: SignatureProvider;
}

/**
 * True when `header` is a valid signature of `rawBody` under `appSecret`. False on a missing,
 * malformed, wrong-length or wrong signature, and when the secret is empty. Never throws.
 */
export function verifySignature(
  rawBody: Buffer,
  header: string | undefined,
  appSecret: string,
  opts: VerifyOptions = {},
): boolean {
  if (typeof header !== 'string' || !appSecret || !Buffer.isBuffer(rawBody)) return false;
  const value = header.trim();
  const expected = hmacHex(rawBody, appSecret);
  if ((opts.provider ?? 'meta') === 'meta') {
    if (!value.startsWith('sha256=')) return false;
    return hexDigestEquals(value.slice('sha256='.length), expected);
  }
  const hex = value.startsWith('sha256=') ? value.slice('sha256='.length) : value;
  return hexDigestEquals(hex, expected);
}

/**
 * Verify a request given its (lower-cased, as Node delivers them) headers: picks the header of
 * the provider. A repeated header (array) is rejected.
 */
export function verifyRequestSignature(
  rawBody: Buffer,
  headers: Record<string, string | string[] | undefined>,
  secret: string,
  provider: SignatureProvider = 'meta',
): boolean {
  const name = provider === 'meta' ? META_SIGNATURE_HEADER : D360_SIGNATURE_HEADER;
  const value = headers[name];
  return typeof value === 'string' && verifySignature(rawBody, value, secret, { provider });
}
