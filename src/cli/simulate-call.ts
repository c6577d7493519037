/**
 * The two call flows of `simulate`: a WhatsApp user calling the business (into the PBX), and
 * (`--outbound`) an agent calling a WhatsApp user through the bridge. Both print the timed
 * set-up, the PBX side's answer and codec, then the media checks of ./simulate-media.ts and
 * how the call ended.
 */
import type { RunningApp } from '../app.js';
import type { EndedCallRecord } from '../bridge/bridge.js';
import type { Config } from '../config/schema.js';
import type { RecordedAction } from '../simulator/graph-server.js';
import type { WhatsAppSimulator } from '../simulator/whatsapp.js';
import { EXIT, type CliIo, until, within } from './common.js';
import { chosenCodec, hasTelephoneEvent, type CallTrace, type LogSink } from './observe.js';
import { MediaSampler, mediaPhase, Report, type MediaVerdict, type WhatsAppLeg } from './simulate-media.js';
import type { SimulateOptions } from './simulate.js';

export interface SimulateContext {
  app: RunningApp;
  sim: WhatsAppSimulator;
  observer: { trace(): CallTrace };
  sink: LogSink;
  io: CliIo;
  config: Readonly<Config>;
  phoneNumberId: string;
}

/** What a final SIP status means to an integrator. */
export function describeSipFailure(status: number, reason: string): string {
  const what: Record<number, string> = {
    486: 'busy', 600: 'busy', 603: 'declined', 404: 'not found (no such extension)', 604: 'not found (no such extension)',
    480: 'unavailable', 408: 'no answer (timeout)', 487: 'cancelled', 403: 'forbidden (the PBX refuses calls from the bridge)',
    401: 'authentication failed', 407: 'authentication failed', 488: 'no common codec', 415: 'no common codec',
  };
  const text = what[status] ?? (status >= 500 ? 'PBX error' : 'failed');
  return `${text} (${status} ${reason})`;
}

/** Date.now()-based simulator times onto this process's performance.now() line. */
const toPerf = (at: number): number => at - (Date.now() - performance.now());

function bridgeEnded(app: RunningApp): Promise<EndedCallRecord> {
  return new Promise((resolve) => {
    const off = app.bridge.onCallEnded((rec) => {
      off();
      resolve(rec);
    });
  });
}

function endLine(rec: EndedCallRecord | undefined, who: string, connectedAt: number | undefined): string {
  const after = connectedAt !== undefined ? ` after ${((performance.now() - connectedAt) / 1000).toFixed(1)} s` : '';
  if (!rec) return `end:\n  ✗ ${who}${after}, but the bridge did not finish the call within 10 s`;
  return `end:\n  ${who}${after}; the bridge: ${rec.label} (to WhatsApp: ${rec.whatsapp}, to the PBX: ${rec.sip})`;
}

function printProblems(ctx: SimulateContext): void {
  const problems = ctx.sink.problems();
  if (problems.length === 0) return;
  ctx.io.out('the bridge logged:');
  for (const p of problems.slice(0, 12)) ctx.io.out(`  ! ${p}`);
}

function result(ctx: SimulateContext, ok: boolean, text: string): number {
  ctx.io.out(`result: ${ok ? '✓' : '✗'} ${text}`);
  return ok ? EXIT.ok : EXIT.failed;
}

function verdictText(v: MediaVerdict): { ok: boolean; text: string } {
  if (v.bothWays) return { ok: true, text: 'answered; audio crosses both ways' };
  if (v.audioBack) return { ok: true, text: 'answered; audio from the PBX (the other direction needs an echo extension to confirm)' };
  return { ok: false, text: v.connected ? 'answered, but no audio came back from the PBX' : 'answered, but the media path never came up' };
}

/** An answered call in either direction: media checks, hang-up (unless the SIP side did), report. */
async function answeredCall(
  ctx: SimulateContext,
  c: { leg: WhatsAppLeg; opts: SimulateOptions; r: Report; sampler: MediaSampler; ended: Promise<EndedCallRecord>; t0: number; sideLine: string; otherSide: string },
): Promise<number> {
  const connectedAt = performance.now();
  const verdict = await mediaPhase(c.leg, c.opts, c.r);
  let who = `${c.otherSide} hung up (BYE)`;
  if (!c.leg.endedByBridge()) {
    await c.leg.hangUp();
    who = 'the simulated WhatsApp user hung up';
  }
  const rec = await within(c.ended, 10_000);
  c.sampler.stop();
  c.sampler.report(c.r);
  c.r.line(c.sideLine);
  c.r.line(endLine(rec, who, connectedAt));
  c.r.print(ctx.io.out, c.t0);
  printProblems(ctx);
  const v = verdictText(verdict);
  return result(ctx, v.ok, v.text);
}

// ---- a WhatsApp user calls the business --------------------------------------------------------

export async function simulateInbound(ctx: SimulateContext, opts: SimulateOptions, target: string | undefined): Promise<number> {
  const { app, sim, io } = ctx;
  io.out(`calling ${target ?? 'the PBX your routing picks'} as WhatsApp user +${opts.from} (tone ${opts.toneHz} Hz, ${opts.durationSec} s once answered)`);
  const ended = bridgeEnded(app);
  const sent = performance.now();
  const call = await sim.userCalls({ userWaId: opts.from, userName: 'wa-sip-bridge simulate', toneHz: opts.toneHz });
  const r = new Report();
  const t0 = app.bridge.call(call.callId)?.timings.connectReceived ?? sent;
  r.step(t0, `connect webhook delivered (signed; the bridge answered HTTP ${call.webhookStatus})`);
  if (call.webhookStatus !== 200) {
    r.print(io.out, t0);
    printProblems(ctx);
    return result(ctx, false, `the bridge refused the webhook (HTTP ${call.webhookStatus})`);
  }
  const sampler = new MediaSampler(() => call.peer);
  const leg: WhatsAppLeg = { peer: () => call.peer, endedByBridge: () => call.actions().includes('terminate'), hangUp: () => call.hangUp() };
  try {
    // Bounded by the bridge's own ring timeout (+5 s): it rejects the call by then at the latest.
    const bound = ctx.config.calls.ringTimeoutSec * 1000 + 5000;
    const outcome = await within(
      Promise.race([
        call.waitFor('accept', bound).then(() => 'accepted' as const),
        call.waitFor('reject', bound).then(() => 'rejected' as const),
        ended.then(() => 'ended' as const),
      ]).catch(() => 'timeout' as const),
      bound + 1000,
    );
    const trace = ctx.observer.trace();
    const pbx = trace.inviteUri ?? target ?? '?';
    r.step(trace.marks.get('invite'), `INVITE sent → ${pbx}${trace.sipCallId ? ` (Call-ID ${trace.sipCallId})` : ''}`);
    for (const p of trace.progress) r.step(trace.marks.get(`progress-${p.status}`), `${p.status === 180 ? 'ringing' : 'progress'}: ${p.status} ${p.reason}${p.sdp ? ' (with SDP: early media)' : ''}`);
    if (trace.final) r.step(trace.marks.get(trace.final.status === 200 ? 'pbx-answered' : 'pbx-failed'), `PBX answered ${trace.final.status} ${trace.final.reason}${trace.final.status === 200 ? `, codec ${chosenCodec(trace.pbxSdp) ?? '?'}` : ''}`);
    for (const a of sim.graph.actions.filter((x: RecordedAction) => x.callId === call.callId)) {
      r.step(toPerf(a.at), `${String(a.action)} → WhatsApp (Graph answered ${a.response.status})`);
    }
    if (outcome !== 'accepted') {
      sampler.stop();
      r.print(io.out, t0);
      printProblems(ctx);
      if (trace.final && trace.final.status !== 200) return result(ctx, false, `rejected: ${describeSipFailure(trace.final.status, trace.final.reason)}`);
      const rec = await within(ended, 10_000);
      return result(ctx, false, rec ? `the call failed before it was answered (${rec.label})` : 'no answer from the PBX in time');
    }
    await call.peer.waitConnected(10_000).catch(() => undefined);
    const pbxLine = `PBX: ${trace.final ? `${trace.final.status} ${trace.final.reason}` : '?'}; codec ${chosenCodec(trace.pbxSdp) ?? '?'}${hasTelephoneEvent(trace.pbxSdp) ? ' + telephone-event' : ' (no telephone-event: DTMF cannot reach it as RFC 4733)'}`;
    return await answeredCall(ctx, { leg, opts, r, sampler, ended, t0, sideLine: pbxLine, otherSide: 'the PBX' });
  } finally {
    sampler.stop();
    await call.close();
  }
}

// ---- an agent calls a WhatsApp user ------------------------------------------------------------

export async function simulateOutbound(ctx: SimulateContext, opts: SimulateOptions, dial: string): Promise<number> {
  const { app, sim, io } = ctx;
  const waId = dial.replace(/^sips?:/, '').replace(/@.*$/, '').slice(ctx.config.outbound.dialPrefix.length);
  const user = sim.user(waId, { kind: 'answer', afterMs: 1000, toneHz: opts.toneHz });
  io.out(`the simulated WhatsApp user +${waId} answers after 1 s and speaks ${opts.toneHz} Hz for ${opts.durationSec} s`);
  io.out(`dial ${dial} from an agent phone within ${opts.waitSec} s`);
  const ended = bridgeEnded(app);
  const r = new Report();
  const connect = await sim.graph.waitForAction('connect', opts.waitSec * 1000).catch(() => undefined);
  const trace = ctx.observer.trace();
  // The bridge checks the call permission before it sets up media: the earlier of the two is
  // the closest observable moment to the INVITE's arrival.
  const permission = sim.graph.actions.find((a) => a.action === 'call_permissions');
  const t0 = Math.min(trace.marks.get('agent-invite') ?? performance.now(), permission ? toPerf(permission.at) : Infinity);
  r.origin = "the agent's INVITE reached the bridge";
  if (!connect || connect.response.status !== 200) {
    printProblems(ctx);
    if (connect) return result(ctx, false, `WhatsApp refused connect (HTTP ${connect.response.status}: ${JSON.stringify(connect.response.body)})`);
    return result(ctx, false, trace.marks.has('agent-invite') ? 'the agent\'s INVITE arrived but the bridge did not place the call' : `no INVITE from the PBX within ${opts.waitSec} s (check the PBX dials ${dial}, and outbound.allowFrom / outbound.auth)`);
  }
  const sampler = new MediaSampler(() => user.peer);
  const callId = user.callId;
  const leg: WhatsAppLeg = {
    peer: () => user.peer,
    endedByBridge: () => user.received.some((a) => a.action === 'terminate'),
    hangUp: () => user.hangUp(),
  };
  try {
    r.step(t0, `INVITE from the agent${trace.pbxSdp ? ` (offers ${chosenCodec(trace.pbxSdp) ?? '?'} first)` : ''}`);
    for (const a of sim.graph.actions.filter((x) => x.action !== 'connect' ? x.callId === callId || x.action === 'call_permissions' : x === connect)) {
      r.step(toPerf(a.at), `${String(a.action)} → WhatsApp (Graph answered ${a.response.status})`);
    }
    const answered = await user.waitForConnect(11_000).catch(() => undefined);
    for (const s of user.sent) r.step(toPerf(s.at), `WhatsApp → bridge: ${s.event}${s.status ? ` ${s.status}` : ''} webhook (HTTP ${s.httpStatus})`);
    if (!answered) {
      sampler.stop();
      r.print(io.out, t0);
      printProblems(ctx);
      return result(ctx, false, 'the simulated user never answered');
    }
    await until(() => trace.marks.has('agent-answered'), 5000); // the 200 OK follows the answer at once
    r.step(trace.marks.get('agent-answered'), `200 OK to the agent, codec ${chosenCodec(trace.bridgeSdp) ?? '?'}`);
    const agentLine = `agent's phone: codec ${chosenCodec(trace.bridgeSdp) ?? '?'}${hasTelephoneEvent(trace.bridgeSdp) ? ' + telephone-event' : ''}`;
    return await answeredCall(ctx, { leg, opts, r, sampler, ended, t0, sideLine: agentLine, otherSide: 'the agent' });
  } finally {
    sampler.stop();
  }
}
