import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Digest authentication of requests we receive (RFC 3261 section 22.4, RFC 2617 with
 * qop=auth, MD5): the bridge challenges the PBX with 401 and checks the retried request.
 * Nonces are stateless: a timestamp signed with a per-process key, valid for `nonceTtlMs`.
 */
export interface DigestCredentials {
  username: string;
  password: string;
  realm: string;
}

export type DigestVerdict = { ok: true } | { ok: false; reason: string; stale?: boolean };

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

export class DigestAuthenticator {
  private readonly key = randomBytes(32);

  constructor(
    private readonly creds: DigestCredentials,
    private readonly nonceTtlMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Value of `WWW-Authenticate` for a 401. */
  challenge(stale = false): string {
    const ts = this.now().toString(16);
    const nonce = `${ts}.${this.sign(ts)}`;
    return `Digest realm="${this.creds.realm}", nonce="${nonce}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
  }

  /** Check an `Authorization` header of a request with `method`. */
  verify(authorization: string | undefined, method: string): DigestVerdict {
    if (!authorization) return { ok: false, reason: 'no credentials' };
    const p = parseDigest(authorization);
    if (!p) return { ok: false, reason: 'not a Digest Authorization header' };
    const { username, realm, nonce, uri, response } = p;
    if (!username || !realm || !nonce || !uri || !response) return { ok: false, reason: 'incomplete Digest credentials' };
    if (username !== this.creds.username) return { ok: false, reason: `unknown user "${username}"` };
    if (realm !== this.creds.realm) return { ok: false, reason: `wrong realm "${realm}"` };
    const [ts, sig] = nonce.split('.');
    if (!ts || !sig || !safeEqual(sig, this.sign(ts))) return { ok: false, reason: 'nonce not issued by us' };
    if (this.now() - parseInt(ts, 16) > this.nonceTtlMs) return { ok: false, reason: 'nonce expired', stale: true };
    if (p.algorithm && p.algorithm.toUpperCase() !== 'MD5') return { ok: false, reason: `unsupported algorithm ${p.algorithm}` };
    const ha1 = md5(`${username}:${realm}:${this.creds.password}`);
    const ha2 = md5(`${method}:${uri}`);
    const expected = p.qop ? md5(`${ha1}:${nonce}:${p.nc ?? ''}:${p.cnonce ?? ''}:${p.qop}:${ha2}`) : md5(`${ha1}:${nonce}:${ha2}`);
    return safeEqual(expected, response.toLowerCase()) ? { ok: true } : { ok: false, reason: 'wrong password' };
  }

  private sign(ts: string): string {
    return createHmac('sha256', this.key).update(ts).digest('hex').slice(0, 32);
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

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
