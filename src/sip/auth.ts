/**
 * Digest authentication of our requests when challenged (RFC 3261 section 22.2, 22.3; the
 * digest itself is RFC 2617 via `sip/digest.js`).
 */
import type sip from 'sip';
import digest from 'sip/digest.js';
import type { Credentials } from './core.js';

const unquote = (s: string | undefined): string => (s ?? '').replace(/^"(.*)"$/, '$1');

/** Answers each challenge (realm + nonce) at most once, so a wrong password ends in failure, not a loop. */
export class DigestClient {
  private readonly answered = new Set<string>();
  private headers: Pick<sip.Headers, 'authorization' | 'proxy-authorization'> = {};

  constructor(private readonly creds: Credentials | undefined) {}

  /**
   * Add Authorization / Proxy-Authorization answering the 401/407 `rs` to the new request `rq`
   * (already carrying its new CSeq). Returns false when it must not be retried.
   */
  authorize(rq: sip.Message, rs: sip.Message): boolean {
    if (!this.creds) return false;
    const challenges = rs.status === 407 ? rs.headers['proxy-authenticate'] : rs.headers['www-authenticate'];
    const challenge = challenges?.find((c) => (c.scheme ?? '').toLowerCase() === 'digest');
    if (!challenge) return false;
    const id = `${rs.status}|${unquote(challenge['realm'])}|${unquote(challenge['nonce'])}`;
    if (this.answered.has(id)) return false;
    this.answered.add(id);
    // Keep credentials already sent for other realms (RFC 3261 section 22.3).
    Object.assign(rq.headers, structuredClone(this.headers));
    try {
      digest.signRequest({}, rq, { ...rs, headers: { ...rs.headers, [rs.status === 407 ? 'proxy-authenticate' : 'www-authenticate']: [challenge] } }, {
        user: this.creds.username,
        password: this.creds.password,
      });
    } catch {
      return false;
    }
    this.headers = { authorization: rq.headers.authorization, 'proxy-authorization': rq.headers['proxy-authorization'] };
    return true;
  }

  /** Credentials last sent, for the ACK of a 2xx (RFC 3261 section 13.2.2.4) and later requests. */
  current(): Pick<sip.Headers, 'authorization' | 'proxy-authorization'> {
    return structuredClone(this.headers);
  }
}
