/**
 * Ending a dead cluster instance's ringing INVITE from the state it kept in Redis, in either
 * direction. Whatever comes from Redis is checked first (`parseStoredInvite`, and
 * `parseStoredDialog` for a confirmed dialog's BYE): header text with
 * a line break or a control character could otherwise put a header of its own on the wire.
 *
 * Our INVITE to the PBX (RFC 3261 section 9.1): CANCEL with the INVITE's own top Via, through
 * `sip` (it keeps a CANCEL's branch; ./lib.ts `keepTopVia` keeps the dead instance's sent-by).
 * The PBX's 487 goes to the dead instance's address, which nobody reads; when a 1xx named the
 * PBX's To tag, the survivor can still build the ACK for that 487 (same branch, same tag, RFC
 * 3261 section 17.1.1.3) and sends it once the CANCEL is answered, and over UDP again at T1,
 * 3*T1 and 7*T1 (the 487 may come after the CANCEL's 200), so the PBX stops retransmitting
 * it. Then a BYE on that early dialog: had the PBX answered 200 just as the instance died (a
 * 2xx the dead instance never ACKed, or ACKed without a heartbeat writing the dialog), the
 * CANCEL changed nothing and this BYE ends the call; otherwise the PBX answers 481.
 *
 * The PBX's INVITE to us (RFC 3261 sections 8.2.6, 18.2.2): the final response from the stored
 * server transaction, written without one (`LibEndpoint.sendStateless`), to where the INVITE
 * came from. The PBX's ACK goes to the dead instance; over UDP the response is sent 3 times
 * (at 0, T1, 3*T1) in case one is lost, since no ACK can tell the survivor it arrived.
 */
import sip from 'sip';
import { z } from 'zod';
import type { SipCore } from './core.js';
import { keepTopVia, type LibEndpoint, type TransportName } from './lib.js';
import { sendStoredBye } from './stored-bye.js';
import type { StoredCancelOutcome, StoredClientInvite, StoredDialog, StoredInvite, StoredServerInvite } from './types.js';

/** Header text as `sip` writes it: no control characters (CR/LF would start a header of its own). */
const text = z.string().max(2048).regex(/^[^\u0000-\u001f\u007f]*$/);
const token = z.string().max(256).regex(/^[^\u0000-\u0020\u007f;,]*$/);
/** A URI: no white space either (it is written into a request line). */
const uri = z.string().min(1).max(2048).regex(/^[^\u0000-\u0020\u007f]*$/);
const via = z.object({
  version: token.optional(),
  protocol: token.optional(),
  host: token.min(1),
  port: z.number().int().min(1).max(65535).optional(),
  params: z.record(token, z.union([token, z.number(), z.null()])),
});
const transport = z.enum(['udp', 'tcp']);
const seq = z.number().int().min(0).max(2 ** 31 - 1);
const storedDialog = z.object({ callId: token.min(1), localHeader: text, remoteHeader: text, remoteTarget: uri, routeSet: z.array(uri).max(20), localSeq: seq, transport });
const storedInvite = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('client'),
    callId: token.min(1),
    uri,
    via,
    from: text,
    to: text,
    cseq: seq,
    transport,
    early: z.object({ remoteHeader: text, remoteTarget: uri, routeSet: z.array(uri).max(20) }).optional(),
  }),
  z.object({
    kind: z.literal('server'),
    callId: token.min(1),
    via: z.array(via).min(1).max(20),
    from: text,
    to: text,
    cseq: seq,
    transport,
    source: z.object({ address: token.min(1), port: z.number().int().min(1).max(65535) }),
  }),
]);

/** What a check of a value read back from Redis gives: the value, or why it is not one. */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

function check<T>(schema: z.ZodType<unknown>, v: unknown): Checked<T> {
  const r = schema.safeParse(v);
  return r.success ? { ok: true, value: r.data as T } : { ok: false, error: r.error.message.slice(0, 300) };
}

/** A stored confirmed dialog read back from Redis (checked as a stored INVITE is). */
export const parseStoredDialog = (v: unknown): Checked<StoredDialog> => check(storedDialog, v);

/** A stored ringing INVITE read back from Redis. */
export const parseStoredInvite = (v: unknown): Checked<StoredInvite> => check(storedInvite, v);

type Endpoints = ReadonlyMap<TransportName, LibEndpoint>;

function endpointOf(endpoints: Endpoints, t: TransportName): LibEndpoint {
  const ep = endpoints.get(t) ?? [...endpoints.values()][0];
  if (!ep) throw new Error('sip: no endpoint');
  return ep;
}

export function cancelStored(core: SipCore, endpoints: Endpoints, inv: StoredClientInvite, reason?: string, timeoutMs = 32_000): Promise<StoredCancelOutcome> {
  const ep = core.endpointFor(inv.uri, [], endpointOf(endpoints, inv.transport));
  const common = { 'call-id': inv.callId, from: inv.from, 'max-forwards': '70' };
  const cancel: sip.Message = keepTopVia({
    method: 'CANCEL',
    uri: inv.uri,
    headers: { via: [structuredClone(inv.via)], to: inv.to, ...common, cseq: { seq: inv.cseq, method: 'CANCEL' }, 'user-agent': core.userAgent, ...(reason ? { reason } : {}) },
    content: '',
  });
  const log = core.logger.child({ sipCallId: inv.callId });
  log.info({ branch: inv.via.params['branch'] }, 'sip: CANCEL for a stored INVITE (a dead instance\'s)');
  return new Promise<number | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    timer.unref();
    core.request(ep, cancel, (rs) => {
      if ((rs.status ?? 0) < 200) return;
      clearTimeout(timer);
      resolve(rs.status);
    });
  }).then(async (status) => {
    log.info({ status }, 'sip: CANCEL for a stored INVITE answered');
    if (!inv.early) return { cancel: status, ackSent: false };
    const to = inv.early.remoteHeader;
    // RFC 3261 section 17.1.1.3: the ACK of a non-2xx final response: the INVITE's Request-URI,
    // top Via, From, Call-ID and CSeq number, the To of the response (the tag of the 1xx).
    const ack = (): void => ep.send(keepTopVia({ method: 'ACK', uri: inv.uri, headers: { via: [structuredClone(inv.via)], to, ...common, cseq: { seq: inv.cseq, method: 'ACK' } }, content: '' }));
    ack();
    // The 487 goes to the dead instance, so nothing says when it was sent: a PBX that answers the
    // CANCEL first and sends its 487 later (a B2BUA cancelling its own leg) would take an ACK sent
    // now as stray and retransmit the 487 for 32 s. Over UDP the ACK is repeated as Timer G repeats
    // the 487 (T1, 3*T1, 7*T1); a PBX whose transaction is Confirmed absorbs the extra ones.
    if (ep.transport === 'udp') for (const after of [1, 3, 7]) setTimeout(ack, after * core.timers.t1).unref();
    const bye = await sendStoredBye(core, endpoints, { callId: inv.callId, localHeader: inv.from, remoteHeader: to, remoteTarget: inv.early.remoteTarget, routeSet: inv.early.routeSet, localSeq: inv.cseq, transport: inv.transport }, reason, timeoutMs);
    return { cancel: status, ackSent: true, bye };
  });
}

export function rejectStored(core: SipCore, endpoints: Endpoints, inv: StoredServerInvite, status: number, reason: string, headers: Record<string, string> = {}): void {
  const ep = endpointOf(endpoints, inv.transport);
  const top = inv.via[0]!;
  // RFC 3261 section 18.2.2: UDP back to the source (RFC 3581); TCP: the connection died with
  // the instance, so a new one to the `received` address and the sent-by port.
  const target = inv.transport === 'udp' ? inv.source : { address: typeof top.params['received'] === 'string' ? top.params['received'] : inv.source.address, port: top.port ?? 5060 };
  const rs: sip.Message = {
    status,
    reason,
    headers: { via: structuredClone(inv.via), to: inv.to, from: inv.from, 'call-id': inv.callId, cseq: { seq: inv.cseq, method: 'INVITE' }, server: core.userAgent, ...headers },
    content: '',
  };
  core.logger.info({ sipCallId: inv.callId, status, target: `${target.address}:${target.port}/${inv.transport}` }, 'sip: final response for a stored INVITE (a dead instance\'s)');
  ep.sendStateless(rs, target);
  if (inv.transport !== 'udp') return;
  for (const after of [core.timers.t1, 3 * core.timers.t1]) setTimeout(() => ep.sendStateless(rs, target), after).unref();
}
