/**
 * Who may post webhooks: only the sender (docs/security.md "Webhooks").
 *
 * - Meta: `X-Hub-Signature-256` HMAC over the raw body with the app secret (WA_APP_SECRET).
 * - 360dialog: a direct client's webhooks come unsigned (signing is a partner feature), so a
 *   configured custom header (`whatsapp.webhookAuthHeader`: name + value, value from
 *   WA_WEBHOOK_HEADER_SECRET) is 360dialog's authentication, compared in constant time. Where a
 *   partner secret is configured the `x-360dialog-signature` HMAC is checked too. Every check that
 *   is configured must pass.
 * - Nothing configured: the bridge refuses to start (`webhookAuthProblems`) unless
 *   `whatsapp.allowUnsignedWebhooks` is true (any source) or 'loopback' (local trial: 127.0.0.0/8
 *   and ::1 only). Each unsigned delivery is then counted and logged.
 *
 * The subscription handshake (GET hub.challenge) compares the verify token in constant time.
 */
import { safeEqual } from '../util/safe-equal.js';
import type { IncomingHttpHeaders } from 'node:http';
import { verifyRequestSignature, type SignatureProvider } from './signature.js';
import type { WhatsAppCounters } from './counters.js';

export interface WebhookAuthConfig {
  provider: SignatureProvider;
  /** HMAC secret (Meta app secret, or 360dialog partner secret); '' = no signature check. */
  appSecret: string;
  /** 360dialog custom header; ignored for Meta (Meta cannot send one). */
  webhookAuthHeader?: { name: string; value: string } | undefined;
  allowUnsignedWebhooks: boolean | 'loopback';
  /** `hub.verify_token` of the subscription handshake; '' refuses every handshake. */
  verifyToken: string;
}

export type WebhookAuthResult =
  | { ok: true; authenticated: boolean }
  | { ok: false; reason: 'bad-signature' | 'bad-shared-header' | 'unsigned-not-loopback' };

/** Why this configuration may not start, one line per problem; empty when it may. */
export function webhookAuthProblems(cfg: WebhookAuthConfig): string[] {
  const problems: string[] = [];
  const header = cfg.provider === '360dialog' ? cfg.webhookAuthHeader : undefined;
  if (header && header.value === '') problems.push(`whatsapp.webhookAuthHeader: set its value in WA_WEBHOOK_HEADER_SECRET`);
  if (cfg.appSecret === '' && !header && cfg.allowUnsignedWebhooks === false) {
    problems.push(
      cfg.provider === 'meta'
        ? 'whatsapp: no webhook authentication: set WA_APP_SECRET (your Meta app secret), or whatsapp.allowUnsignedWebhooks: true for a trial (anyone who finds the URL could then place calls)'
        : 'whatsapp: no webhook authentication: set whatsapp.webhookAuthHeader (+ WA_WEBHOOK_HEADER_SECRET) or WA_APP_SECRET (partner signing), or whatsapp.allowUnsignedWebhooks: true for a trial',
    );
  }
  return problems;
}

/** Lines to log at warn level at start: what is NOT protected. */
export function webhookAuthWarnings(cfg: WebhookAuthConfig): string[] {
  if (authConfigured(cfg)) return [];
  if (cfg.allowUnsignedWebhooks === 'loopback') {
    return ['LOCAL TRIAL MODE: no webhook secret; unsigned webhooks are accepted from this machine (127.0.0.1/::1) only. Set WA_APP_SECRET (and a config file) before exposing the bridge.'];
  }
  return ['UNSIGNED WEBHOOKS ACCEPTED (whatsapp.allowUnsignedWebhooks: true): anyone who can reach the webhook URL can place calls to your PBX. Never run this on a public address.'];
}

function authConfigured(cfg: WebhookAuthConfig): boolean {
  return cfg.appSecret !== '' || (cfg.provider === '360dialog' && cfg.webhookAuthHeader !== undefined);
}


function isLoopback(ip: string): boolean {
  return ip === '::1' || /^(::ffff:)?127\./.test(ip);
}

export class WebhookAuth {
  constructor(
    private readonly cfg: WebhookAuthConfig,
    private readonly counters?: WhatsAppCounters,
  ) {}

  /** Check one POST: its raw bytes, headers (lower-cased, as Node gives them) and source address. */
  check(raw: Buffer, headers: IncomingHttpHeaders, remoteIp: string): WebhookAuthResult {
    const r = this.decide(raw, headers, remoteIp);
    if (!r.ok) this.counters?.inc('webhook_auth_refused', { reason: r.reason });
    else if (!r.authenticated) this.counters?.inc('webhook_unsigned_accepted');
    return r;
  }

  private decide(raw: Buffer, headers: IncomingHttpHeaders, remoteIp: string): WebhookAuthResult {
    const { cfg } = this;
    if (!authConfigured(cfg)) {
      if (cfg.allowUnsignedWebhooks === true) return { ok: true, authenticated: false };
      if (cfg.allowUnsignedWebhooks === 'loopback' && isLoopback(remoteIp)) return { ok: true, authenticated: false };
      return { ok: false, reason: 'unsigned-not-loopback' };
    }
    const header = cfg.provider === '360dialog' ? cfg.webhookAuthHeader : undefined;
    if (header) {
      const got = headers[header.name.toLowerCase()];
      // A repeated header arrives as an array: refused, like a repeated signature.
      if (typeof got !== 'string' || !safeEqual(got, header.value)) return { ok: false, reason: 'bad-shared-header' };
    }
    if (cfg.appSecret !== '' && !verifyRequestSignature(raw, headers, cfg.appSecret, cfg.provider)) {
      return { ok: false, reason: 'bad-signature' };
    }
    return { ok: true, authenticated: true };
  }

  /**
   * The GET subscription handshake: when `hub.mode=subscribe` and `hub.verify_token` equals the
   * configured token (constant time), the `hub.challenge` to echo with 200; otherwise undefined.
   */
  challenge(query: unknown): string | undefined {
    return verifyChallenge(query, this.cfg.verifyToken);
  }
}

function pick(query: unknown, key: 'mode' | 'verify_token' | 'challenge'): string | undefined {
  if (typeof query !== 'object' || query === null) return undefined;
  const q = query as Record<string, unknown>;
  const flat = q[`hub.${key}`];
  if (typeof flat === 'string') return flat;
  const nested = q['hub'];
  if (typeof nested === 'object' && nested !== null) {
    const v = (nested as Record<string, unknown>)[key];
    if (typeof v === 'string') return v;
  }
  return undefined;
}

/**
 * The GET subscription handshake: when `hub.mode=subscribe` and `hub.verify_token` equals
 * `verifyToken`, returns `hub.challenge` (to echo with 200); otherwise undefined (answer 403).
 * Accepts flat (`{"hub.mode": …}`) and nested (`{hub:{mode}}`) query objects.
 */
export function verifyChallenge(query: unknown, verifyToken: string): string | undefined {
  if (!verifyToken) return undefined;
  const mode = pick(query, 'mode');
  const token = pick(query, 'verify_token');
  const challenge = pick(query, 'challenge');
  if (mode !== 'subscribe' || token === undefined || challenge === undefined) return undefined;
  return safeEqual(token, verifyToken) ? challenge : undefined;
}
