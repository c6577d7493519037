import type { Config } from '../config/schema.js';
import type { IncomingInvite } from '../sip/types.js';
import { DigestAuthenticator } from '../sip/uas-auth.js';
import { FailureLimiter } from '../util/failure-limiter.js';
import { cidrContains, parseIpv4Cidr, type Ipv4Cidr } from '../util/cidr.js';

/**
 * Who may place WhatsApp calls through the bridge (an open SIP port that dials out is a
 * toll-fraud target). Checks, in order:
 * 1. transport: with `requireTcp`, INVITEs over UDP are refused (a UDP source can be spoofed,
 *    a TCP source has completed a handshake);
 * 2. the IPv4 allow-list;
 * 3. a source with too many failed digest attempts is refused for a while;
 * 4. digest authentication (./../sip/uas-auth.ts: nonce bound to the source, uri, nc, qop).
 * Allow-list and digest both configured: the source must be allowed AND authenticate.
 */
export type Admission =
  | { ok: true }
  | { ok: false; status: 403; reason: string; warning: string }
  | { ok: false; status: 401; reason: string; challenge: string };

export interface AdmissionOptions {
  allowFrom: readonly string[];
  auth?: { username: string; password: string; realm: string; nonceTtlSec?: number; maxFailures?: number; blockSec?: number } | undefined;
  /** Take outbound INVITEs only over TCP. */
  requireTcp?: boolean;
}

const FORBIDDEN = 'not allowed to place calls';

export class CallAdmission {
  private readonly nets: Ipv4Cidr[];
  private readonly digest: DigestAuthenticator | undefined;
  private readonly failures: FailureLimiter;

  constructor(private readonly opts: AdmissionOptions) {
    this.nets = opts.allowFrom.map((c) => {
      const net = parseIpv4Cidr(c);
      // The config schema already refuses these; this guards other callers.
      if (!net) throw new Error(`invalid IPv4 address or CIDR in allow-list: ${c}`);
      return net;
    });
    const a = opts.auth;
    this.digest = a ? new DigestAuthenticator(a, (a.nonceTtlSec ?? 300) * 1000) : undefined;
    this.failures = new FailureLimiter(a?.maxFailures ?? 5, 60_000, (a?.blockSec ?? 300) * 1000);
  }

  check(inv: Pick<IncomingInvite, 'source' | 'header' | 'requestUri'>): Admission {
    const src = inv.source.address;
    if (this.opts.requireTcp && inv.source.transport !== 'tcp') {
      return { ok: false, status: 403, reason: `INVITE over ${inv.source.transport}; outbound.requireTcp takes only TCP`, warning: 'outbound calls are taken only over TCP' };
    }
    if (this.nets.length > 0 && !this.allowed(src)) {
      return { ok: false, status: 403, reason: `source ${src} is not in outbound.allowFrom`, warning: FORBIDDEN };
    }
    if (this.nets.length === 0 && !this.digest) {
      return { ok: false, status: 403, reason: 'outbound calls have no allowed source configured', warning: FORBIDDEN };
    }
    if (!this.digest) return { ok: true };
    if (this.failures.blocked(src)) return { ok: false, status: 403, reason: `source ${src} is blocked after repeated failed digest attempts`, warning: FORBIDDEN };
    const v = this.digest.verify({ authorization: inv.header('authorization'), method: 'INVITE', requestUri: inv.requestUri, source: src });
    if (v.ok) {
      this.failures.succeed(src);
      return { ok: true };
    }
    // No or stale credentials: challenge. Wrong ones: refuse and count, so a guesser learns nothing more.
    if (v.reason === 'no credentials' || v.stale) return { ok: false, status: 401, reason: v.reason, challenge: this.digest.challenge(src, v.stale) };
    this.failures.fail(src);
    return { ok: false, status: 403, reason: `digest authentication failed: ${v.reason}`, warning: FORBIDDEN };
  }

  allowed(address: string): boolean {
    return this.nets.some((n) => cidrContains(n, address));
  }
}

/**
 * The business phone number id an agent's call goes out from: the first `outbound.callerRules`
 * entry matching the caller (From user, source address), else `outbound.phoneNumberId`, else
 * the first served number.
 */
export function businessNumberFor(inv: IncomingInvite, o: Config['outbound'], served: readonly string[]): string | undefined {
  const fromUser = /^sips?:([^@;]+)@/i.exec(inv.from.uri)?.[1];
  for (const r of o.callerRules) {
    if (r.fromUser !== undefined && r.fromUser !== fromUser) continue;
    if (r.source !== undefined && !new CallAdmission({ allowFrom: [r.source] }).allowed(inv.source.address)) continue;
    return r.phoneNumberId;
  }
  return o.phoneNumberId ?? served[0];
}
