/**
 * The SIP stack behind `SipStack` (./types.ts): the npm package `sip` (kirm/sip.js 0.0.6) for
 * parsing, transports and RFC 3261 transactions (timers A-K), our dialog layer on top.
 *
 * Notes on `sip` (worked around here, in ./lib.ts and ./dialog.ts):
 * - One `sip.create` listens on one address/port for all its transports, so UDP and TCP each get
 *   their own instance; requests go out on the instance matching the first hop's `transport`.
 * - Port 0 is not supported (`port || 5060`): give real ports.
 * - A request whose first-hop host equals the listen address is taken as a flow token and gets
 *   a local 404: the PBX must not be addressed with our own listen IP.
 * - The INVITE client transaction has no timeout once a 1xx arrived (Timer C is missing): our
 *   `inviteTimeoutMs` covers it. Timer B (32 s) still yields 408 when nothing at all answers.
 * - No dialog layer, no 2xx retransmission/ACK (RFC 3261 section 13): ./dialog.ts.
 * - Outgoing TCP connections are owned by `sip`; `close()` stops listening and closes accepted
 *   connections, connections we opened end when the peer closes them or after 120 s idle.
 * - Text is latin1 "binary" strings inside `sip`: UTF-8 display names are converted in ./headers.ts.
 */
import sip from 'sip';
import type { Logger } from 'pino';
import { dialogKey, DEFAULT_TIMERS, guarded, type DialogHandle, type SipCore, type SipTimers } from './core.js';
import { ALLOW } from './dialog.js';
import { sendStoredBye } from './stored-bye.js';
import { cancelStored, rejectStored } from './stored-invite.js';
import { DEFAULT_SIP_LIMITS, FrontDoor, type FrontDoorStats, type SipLimits } from './front-door.js';
import { generateTag, headerText, printable, tagOf } from './headers.js';
import { SESSION_TIMERS_OFF, termsForOffer, type SessionTimerConfig } from './session-timer.js';
import { openEndpoint, type HostPort, type LibEndpoint, type TransportName } from './lib.js';
import { Uac } from './uac.js';
import { Uas } from './uas.js';
import type { IncomingInviteHandler, InviteOptions, OutgoingCall, OutgoingInvite, SipStack, SipWireEvent, StoredInvite } from './types.js';

export interface SipStackOptions {
  udp?: HostPort;
  tcp?: HostPort;
  /** host[:port] put in Contact and Via; defaults to the udp (or tcp) listen address. */
  contactHost?: string;
  userAgent?: string;
  /** Digest credentials used when the PBX challenges with 401/407. */
  credentials?: { username: string; password: string };
  /** CANCEL and fail with 408 when no final response came in this time; default 120000. */
  inviteTimeoutMs?: number;
  logger: Logger;
  /** RFC 3261 T1/T2; tests may shorten them. */
  timers?: SipTimers;
  /** RFC 4028 session timers; default off (a peer's request is still honoured). */
  sessionTimers?: SessionTimerConfig;
  /** Front-door limits (./front-door.ts); unset ones take `DEFAULT_SIP_LIMITS`. */
  limits?: Partial<SipLimits>;
  /** Told of every SIP message sent and received (metrics, call traces); must be cheap. */
  tap?: (e: SipWireEvent) => void;
}

/** The stack as created here: the `SipStack` seam plus the front door's counters. */
export interface SipStackWithStats extends SipStack {
  frontDoorStats(): FrontDoorStats;
}

function advertisedFor(listen: HostPort, contactHost: string | undefined): HostPort {
  if (!contactHost) return listen;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(contactHost);
  if (!m?.[1]) throw new Error(`sip: invalid contactHost ${contactHost}`);
  return { host: m[1], port: m[2] ? Number(m[2]) : listen.port };
}

export async function createSipStack(opts: SipStackOptions): Promise<SipStackWithStats> {
  if (!opts.udp && !opts.tcp) throw new Error('sip: at least one of udp/tcp listen addresses is required');
  const log = opts.logger.child({ component: 'sip' });
  const frontDoor = new FrontDoor({ ...DEFAULT_SIP_LIMITS, ...opts.limits }, (fields, msg) => log.warn(fields, msg));
  const dialogs = new Map<string, DialogHandle>();
  const pendingUas = new Map<string, Uas>();
  const uacs = new Set<Uac>();
  const inflight = new Set<() => void>();
  const endpoints = new Map<TransportName, LibEndpoint>();
  let inviteHandler: IncomingInviteHandler | undefined;
  let closed = false;

  const core: SipCore = {
    logger: log,
    userAgent: opts.userAgent ?? 'wa-sip-bridge',
    credentials: opts.credentials,
    timers: opts.timers ?? DEFAULT_TIMERS,
    session: opts.sessionTimers ?? SESSION_TIMERS_OFF,
    dialogs: {
      add: (key, d) => dialogs.set(key, d),
      remove: (key) => dialogs.delete(key),
    },
    request(ep, rq, onResponse) {
      let final = false;
      const abort = (): void => {
        if (!final) onResponse(sip.makeResponse(rq, 503, 'SIP stack closed'));
      };
      inflight.add(abort);
      ep.send(rq, (rs) => {
        if ((rs.status ?? 0) >= 200) {
          final = true;
          inflight.delete(abort);
        }
        onResponse(rs);
      });
    },
    reply(ep, rq, status, reason, ext) {
      const rs = sip.makeResponse(rq, status, printable(reason, 128), ext);
      if (status > 100 && tagOf(rs.headers.to) === undefined && typeof rs.headers.to === 'object') {
        // RFC 3261 section 8.2.6.2: responses carry a To tag (except 100).
        rs.headers.to = { ...rs.headers.to, params: { ...rs.headers.to.params, tag: generateTag() } };
      }
      rs.headers['server'] ??= core.userAgent;
      ep.send(rs);
    },
    contact(ep) {
      const { host, port } = ep.advertised;
      return `<sip:${host}:${port}${ep.transport === 'tcp' ? ';transport=tcp' : ''}>`;
    },
    endpointFor(uri, route, fallback) {
      const hop = sip.parseUri(route[0] ?? uri);
      const t = String(hop?.params['transport'] ?? '').toLowerCase();
      const wanted = t === 'tcp' ? endpoints.get('tcp') : t === 'udp' ? endpoints.get('udp') : undefined;
      const ep = wanted ?? fallback ?? endpoints.get('udp') ?? endpoints.get('tcp');
      if (!ep) throw new Error('sip: no endpoint');
      return ep;
    },
  };

  const onRequest = (rq: sip.Message, remote: sip.Remote, ep: LibEndpoint): void => {
    const callId = rq.headers['call-id'] ?? '';
    const toTag = tagOf(rq.headers.to);
    const method = rq.method ?? '';
    if (toTag !== undefined) {
      // RFC 3261 section 12.2.2: a request within a dialog.
      const d = dialogs.get(dialogKey(callId, toTag));
      if (d) d.handleRequest(rq, ep);
      else if (method === 'OPTIONS') core.reply(ep, rq, 200, 'OK', { headers: { allow: ALLOW } });
      else core.reply(ep, rq, 481, 'Call/Transaction Does Not Exist');
      return;
    }
    switch (method) {
      case 'INVITE': {
        if (!inviteHandler) {
          core.reply(ep, rq, 403, 'Forbidden');
          return;
        }
        const key = pendingKey(rq);
        if (pendingUas.has(key)) return; // a retransmission the transaction layer missed
        const se = termsForOffer(core.session, headerText(rq, 'session-expires'), headerText(rq, 'supported'));
        if (se.kind === 'too-small') {
          // RFC 4028 section 8.1.1: the interval is below our Min-SE.
          core.reply(ep, rq, 422, 'Session Interval Too Small', { headers: { 'min-se': String(se.minSec) } });
          return;
        }
        const uas = new Uas(core, rq, remote, ep, () => pendingUas.delete(key));
        pendingUas.set(key, uas);
        const handler = inviteHandler;
        try {
          handler(uas);
        } catch (err) {
          log.error({ err, sipCallId: callId }, 'sip: onInvite handler threw');
          uas.reject(500, 'Server Internal Error'); // no-op if it already answered
        }
        return;
      }
      case 'CANCEL': {
        // RFC 3261 section 9.2: the CANCEL matches the INVITE by its top Via branch.
        const uas = pendingUas.get(pendingKey(rq));
        if (uas) uas.handleCancel(rq, ep);
        else core.reply(ep, rq, 481, 'Call/Transaction Does Not Exist');
        return;
      }
      case 'OPTIONS':
        core.reply(ep, rq, 200, 'OK', { headers: { allow: ALLOW, accept: 'application/sdp' } });
        return;
      case 'BYE':
        core.reply(ep, rq, 481, 'Call/Transaction Does Not Exist');
        return;
      default:
        core.reply(ep, rq, 405, 'Method Not Allowed', { headers: { allow: ALLOW } });
    }
  };

  const onAck = (ack: sip.Message): void => {
    const toTag = tagOf(ack.headers.to);
    if (toTag === undefined) return;
    dialogs.get(dialogKey(ack.headers['call-id'] ?? '', toTag))?.handleAck(ack);
  };

  const listens: Array<[TransportName, HostPort]> = [];
  if (opts.udp) listens.push(['udp', opts.udp]);
  if (opts.tcp) listens.push(['tcp', opts.tcp]);
  try {
    for (const [transport, listen] of listens) {
      const ep = await openEndpoint({
        transport,
        listen,
        advertised: advertisedFor(listen, opts.contactHost),
        logger: log,
        frontDoor,
        onRequest: (rq, remote, e) => guarded(log, 'request dispatch', () => onRequest(rq, remote, e)),
        onAck: (ack) => guarded(log, 'ack dispatch', () => onAck(ack)),
        tap: opts.tap,
      });
      endpoints.set(transport, ep);
    }
  } catch (err) {
    await Promise.all([...endpoints.values()].map((ep) => ep.close()));
    throw err;
  }
  log.info({ udp: opts.udp, tcp: opts.tcp }, 'sip: listening');

  let closing: Promise<void> | undefined;
  return {
    frontDoorStats: () => frontDoor.stats(),
    invite(req: OutgoingInvite, invOpts?: InviteOptions): OutgoingCall {
      const ep = core.endpointFor(req.uri, []);
      const uac = new Uac(core, req, { ...invOpts, inviteTimeoutMs: opts.inviteTimeoutMs ?? 120_000 }, ep);
      if (closed) {
        uac.dispose();
        return uac;
      }
      uacs.add(uac);
      const forget = (): void => void uacs.delete(uac);
      uac.established.then(forget, forget);
      return uac;
    },
    onInvite(handler: IncomingInviteHandler): void {
      inviteHandler = handler;
    },
    dialogSnapshots: () => [...dialogs.values()].flatMap((d) => d.snapshot?.() ?? []),
    byeStored: (d, reason) => sendStoredBye(core, endpoints, d, reason),
    inviteSnapshots: () => [...uacs, ...pendingUas.values()].flatMap((u) => snapshotOf(u, log)),
    cancelStored: (inv, reason) => cancelStored(core, endpoints, inv, reason),
    rejectStored: (inv, status, reason, headers) => rejectStored(core, endpoints, inv, status, reason, headers),
    close(): Promise<void> {
      closing ??= (async () => {
        closed = true;
        for (const u of uacs) u.dispose();
        for (const d of dialogs.values()) d.dispose();
        await Promise.all([...endpoints.values()].map((ep) => ep.close()));
        for (const abort of [...inflight]) abort();
        inflight.clear();
        log.info('sip: closed');
      })();
      return closing;
    },
  };
}

/** One pending INVITE as data; one that cannot be written out is skipped (logged), not the others. */
function snapshotOf(u: Uac | Uas, log: Logger): StoredInvite[] {
  try {
    const s = u.pendingSnapshot();
    return s ? [s] : [];
  } catch (err) {
    log.warn({ err, sipCallId: u.callId }, 'sip: a ringing INVITE cannot be stored for the cluster');
    return [];
  }
}

function pendingKey(rq: sip.Message): string {
  return `${rq.headers['call-id'] ?? ''}\n${String(rq.headers.via?.[0]?.params['branch'] ?? '')}`;
}
