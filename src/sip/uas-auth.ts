import { createHash, createHmac, randomBytes } from 'node:crypto';
import { safeEqual } from '../util/safe-equal.js';

/**
 * Digest authentication of requests we receive (RFC 3261 section 22.4; RFC 2617 / 7616 with
 * qop=auth, MD5): the bridge challenges the PBX with 401 and checks the retried request.
 *
 * Replay resistance (what a careful SBC does):
 * - the nonce is `expiry.hmac(source, expiry)` with a per-process key: it is only valid from the
 *   address it was issued to, and only until it expires (then `stale=true`, RFC 2617 3.2.1);
 * - `qop=auth` with `nc` and `cnonce` is required; `nc` must grow for each use of a nonce
 *   (tracked per nonce until it expires), so a captured Authorization cannot be sent again;
 * - the digest's `uri` must equal the Request-URI, so an answer for one number cannot dial another;
 * - a source that fails too often is refused outright for a while (`FailureLimiter`, src/util).
 */
export interface DigestCredentials {
  username: string;
  password: string;
  realm: string;
}

export interface DigestRequest {
  /** The `Authorization` header's text (see `headerText` in ./headers.ts). */
  authorization: string | undefined;
  method: string;
  requestUri: string;
  /** Source IP the request came from. */
  source: string;
}

export type DigestVerdict = { ok: true } | { ok: false; reason: string; stale?: boolean };

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

export class DigestAuthenticator {
  private readonly key = randomBytes(32);
  /** Highest `nc` seen per nonce (until the nonce's expiry). */
  private readonly ncSeen = new Map<string, { nc: number; expires: number }>();

  constructor(
    private readonly creds: DigestCredentials,
    private readonly nonceTtlMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
    private readonly maxTrackedNonces = 10_000,
  ) {}

  /** Value of `WWW-Authenticate` for a 401 to `source`. */
  challenge(source: string, stale = false): string {
    const expiry = (this.now() + this.nonceTtlMs).toString(16);
    const nonce = `${expiry}.${this.sign(source, expiry)}`;
    return `Digest realm="${this.creds.realm}", nonce="${nonce}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
  }

  verify(rq: DigestRequest): DigestVerdict {
    if (!rq.authorization) return { ok: false, reason: 'no credentials' };
    const p = parseDigest(rq.authorization);
    if (!p) return { ok: false, reason: 'not a Digest Authorization header' };
    const { username, realm, nonce, uri, response, qop, nc, cnonce } = p;
    if (!username || !realm || !nonce || !uri || !response) return { ok: false, reason: 'incomplete Digest credentials' };
    if (realm !== this.creds.realm) return { ok: false, reason: `wrong realm "${realm}"` };
    const [expiryHex, sig] = nonce.split('.');
    if (!expiryHex || !sig || !/^[0-9a-f]{1,13}$/.test(expiryHex) || !safeEqual(sig, this.sign(rq.source, expiryHex))) {
      return { ok: false, reason: 'nonce not issued to this source' };
    }
    const expires = parseInt(expiryHex, 16);
    if (this.now() > expires) return { ok: false, reason: 'nonce expired', stale: true };
    if (p.algorithm && p.algorithm.toUpperCase() !== 'MD5') return { ok: false, reason: `unsupported algorithm ${p.algorithm}` };
    if (qop !== 'auth' || !nc || !/^[0-9a-f]{8}$/i.test(nc) || !cnonce) return { ok: false, reason: 'qop=auth with nc and cnonce is required' };
    if (uri !== rq.requestUri) return { ok: false, reason: `digest uri "${uri}" is not the Request-URI` };
    if (username !== this.creds.username) return { ok: false, reason: `unknown user "${username}"` };
    const ha1 = md5(`${username}:${realm}:${this.creds.password}`);
    const ha2 = md5(`${rq.method}:${uri}`);
    const expected = md5(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`);
    if (!safeEqual(expected, response.toLowerCase())) return { ok: false, reason: 'wrong password' };
    // Only a correct answer consumes its nc: a guesser cannot burn the PBX's next count.
    const count = parseInt(nc, 16);
    const seen = this.ncSeen.get(nonce);
    if (seen && count <= seen.nc) return { ok: false, reason: `replayed digest (nc ${nc} already used)` };
    this.remember(nonce, count, expires);
    return { ok: true };
  }

  private remember(nonce: string, nc: number, expires: number): void {
    if (this.ncSeen.size >= this.maxTrackedNonces) {
      const t = this.now();
      for (const [n, s] of this.ncSeen) if (s.expires < t) this.ncSeen.delete(n);
      // Still full of live nonces: forget the oldest (its later uses then count as new, never as replays of it).
      if (this.ncSeen.size >= this.maxTrackedNonces) this.ncSeen.delete(this.ncSeen.keys().next().value!);
    }
    this.ncSeen.delete(nonce);
    this.ncSeen.set(nonce, { nc, expires });
  }

  private sign(source: string, expiryHex: string): string {
    return createHmac('sha256', this.key).update(`${source}|${expiryHex}`).digest('hex').slice(0, 32);
  }
}


/** `Digest a="b", c=d` → { a: 'b', c: 'd' }; undefined when not a Digest header. */
export function parseDigest(header: string): Record<string, string | undefined> | undefined {
  const m = /^\s*Digest\s+(.*)$/is.exec(header);
  if (!m?.[1]) return undefined;
  const out: Record<string, string> = {};
  const re = /([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[1]))) out[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return out;
}
