import type { IncomingInvite } from '../sip/types.js';
import { DigestAuthenticator } from '../sip/uas-auth.js';

/**
 * Who may place WhatsApp calls through the bridge: an IPv4 allow-list and/or digest
 * authentication. Both configured: the source must be allowed AND authenticate.
 */
export type Admission =
  | { ok: true }
  | { ok: false; status: 403; reason: string }
  | { ok: false; status: 401; reason: string; challenge: string };

export interface AdmissionOptions {
  allowFrom: readonly string[];
  auth?: { username: string; password: string; realm: string } | undefined;
}

export class CallAdmission {
  private readonly nets: Array<{ base: number; mask: number }>;
  private readonly digest: DigestAuthenticator | undefined;

  constructor(opts: AdmissionOptions) {
    this.nets = opts.allowFrom.map(parseCidr);
    this.digest = opts.auth ? new DigestAuthenticator(opts.auth) : undefined;
  }

  check(inv: Pick<IncomingInvite, 'source' | 'header'>): Admission {
    if (this.nets.length > 0 && !this.allowed(inv.source.address)) {
      return { ok: false, status: 403, reason: `source ${inv.source.address} is not in outbound.allowFrom` };
    }
    if (this.digest) {
      const v = this.digest.verify(inv.header('authorization'), 'INVITE');
      if (!v.ok) {
        // No or stale credentials: challenge. Wrong ones: refuse, so a guesser learns nothing more.
        if (v.reason === 'no credentials' || v.stale) return { ok: false, status: 401, reason: v.reason, challenge: this.digest.challenge(v.stale) };
        return { ok: false, status: 403, reason: `digest authentication failed: ${v.reason}` };
      }
    }
    if (this.nets.length === 0 && !this.digest) return { ok: false, status: 403, reason: 'outbound calls have no allowed source configured' };
    return { ok: true };
  }

  allowed(address: string): boolean {
    const ip = ipv4(address.replace(/^::ffff:/, ''));
    return ip !== undefined && this.nets.some((n) => (ip & n.mask) >>> 0 === n.base);
  }
}

function ipv4(s: string): number | undefined {
  const parts = s.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function parseCidr(c: string): { base: number; mask: number } {
  const [addr, bits] = c.split('/');
  const ip = ipv4(addr!);
  if (ip === undefined) throw new Error(`invalid IPv4 address in allow-list: ${c}`);
  const n = bits === undefined ? 32 : Number(bits);
  const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  return { base: (ip & mask) >>> 0, mask };
}
