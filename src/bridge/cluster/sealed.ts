/**
 * Values the cluster keeps in Redis and later acts on (a dead instance's calls, dialogs and
 * ringing INVITEs; event batches left for a mute owner) carry an HMAC with the cluster secret,
 * over where they are kept and what they say: `{...value, mac}`. Anyone who can write Redis but
 * does not hold the secret cannot make a survivor send SIP to an address of their choosing,
 * terminate a call, or deliver webhook events; nor can a value an instance signed be copied to
 * another key (another instance's hash, another Call-ID) and be acted on there.
 */
import { createHmac } from 'node:crypto';
import { safeEqual } from '../../util/safe-equal.js';

/** The largest value read back (the internal hop's body limit): a bigger one is not parsed. */
export const MAX_SEALED_BYTES = 1024 * 1024;

function mac(secret: string, where: string, json: string): string {
  return createHmac('sha256', secret).update(where).update('\n').update(json).digest('base64url');
}

/** `json` (an object's JSON) with its MAC added, for the key/field named `where`. */
export function seal(secret: string, where: string, json: string): string {
  const value = JSON.parse(json) as unknown;
  if (!value || typeof value !== 'object' || Array.isArray(value) || 'mac' in value) throw new Error('cluster: only an object without a mac field can be sealed');
  return JSON.stringify({ ...value, mac: mac(secret, where, json) });
}

/** The value `seal` wrote at `where`, without its MAC; undefined when too big, not JSON, unsigned or signed for another place. */
export function unseal(secret: string, where: string, raw: string): unknown {
  if (raw.length > MAX_SEALED_BYTES) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const { mac: got, ...rest } = value as Record<string, unknown>;
  if (typeof got !== 'string') return undefined;
  return safeEqual(got, mac(secret, where, JSON.stringify(rest))) ? rest : undefined;
}
