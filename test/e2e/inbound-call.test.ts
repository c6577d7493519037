import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import type { EndedCallRecord } from '../../src/bridge/bridge.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { sippMessages, headerOf, startSipp, type SippHandle } from '../harness/sipp.js';
import { freeDualPort } from '../harness/ports.js';
import { startLoopbackBridge } from '../support/bridge-config.js';
import { exchangeTones, recordingParty, waitForTone } from '../support/audio.js';
import { describeWithPeers } from '../support/peers.js';
import { closeAfterLeakCheck } from '../support/sessions.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * The whole inbound path against real peers on loopback: the WhatsApp simulator (Graph API,
 * signed webhooks, a werift peer that behaves like WhatsApp) → the bridge → rtpengine (real,
 * userspace) → baresip (a real desk phone) or SIPp (scripted PBX behaviours).
 * Addresses: bridge 127.0.0.1, baresip 127.0.0.2, SIPp 127.0.0.3 (the `sip` package answers
 * 404 to requests aimed at its own address).
 */

const PHONE_NUMBER_ID = '436666719526789';
const BUSINESS = '13175551399';
const CALLER = '5511987654321';
const SECRET = 'e2e-app-secret';
const TOKEN = 'e2e-access-token';

let rtpengine: RtpengineDaemon;
let sim: WhatsAppSimulator;
let app: RunningApp | undefined;
let phone: BaresipHandle | undefined;
let sipp: SippHandle | undefined;
let ended: EndedCallRecord[] = [];
let pbxSendingCalls: boolean[] = [];
const logLines: string[] = [];
const log: Logger = createLogger({
  level: process.env.E2E_LOG_LEVEL ?? 'info',
  destination: { write: (s: string) => (logLines.push(s), true) } as unknown as NodeJS.WritableStream,
});

type Engine = 'rtpengine' | 'embedded';
let lastSipPort = 0;
let engine: Engine = 'rtpengine';

async function startBridge(target: string, over: { ringTimeoutSec?: number; inviteTimeoutSec?: number; deadRtpengine?: boolean } = {}): Promise<RunningApp> {
  const deadNg = over.deadRtpengine ? { host: '127.0.0.1', port: await freeDualPort('127.0.0.1') } : undefined;
  const { app: a, sipPort } = await startLoopbackBridge(
    sim,
    {
      whatsapp: { verifyToken: 'vt' },
      sip: { inviteTimeoutSec: over.inviteTimeoutSec ?? 64 },
      media: {
        engine: over.deadRtpengine ? 'rtpengine' : engine,
        rtpengine: { ng: [deadNg ?? rtpengine.ng], timeoutMs: deadNg ? 500 : 2000 },
      },
      rest: { calls: { ringTimeoutSec: over.ringTimeoutSec ?? 45 }, routing: { default: target } },
    },
    log,
  );
  lastSipPort = sipPort;
  a.bridge.onCallEnded((r) => ended.push(r));
  // What the bridge tells the media engine about the PBX's direction (hold and resume).
  const createSession = a.media.createSession.bind(a.media);
  a.media.createSession = (id) => {
    const session = createSession(id);
    const pbxSending = session.pbxSending.bind(session);
    session.pbxSending = (sending) => (pbxSendingCalls.push(sending), pbxSending(sending));
    return session;
  };
  sim.setWebhookUrl(`${a.url}/webhook`);
  app = a;
  return a;
}


for (const e of ['rtpengine', 'embedded'] as const) describeWithPeers(`inbound WhatsApp call end to end, ${e} media (baresip/SIPp + simulator)`, ['rtpengine', 'baresip', 'sipp'], () => {
  beforeAll(async () => {
    engine = e;
    rtpengine = await startRtpengine(randomMediaRange());
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: BUSINESS, accessToken: TOKEN, appSecret: SECRET });
  });

  afterEach(async (ctx) => {
    // No call may leave a media session behind (for rtpengine: what the daemon itself lists).
    const [a, peers] = [app, [phone, sipp]];
    [app, phone, sipp] = [undefined, undefined, undefined];
    if (ctx.task.result?.state === 'fail') process.stderr.write(logLines.slice(-60).join(''));
    // Reset once the app is closed: closing ends what is left, and that is this test's record.
    await closeAfterLeakCheck(a, peers).finally(() => {
      logLines.length = 0;
      ended = [];
      pbxSendingCalls = [];
    });
  });

  afterAll(async () => {
    await sim?.close();
    await rtpengine?.stop();
  });

  it('(a) answered call: tones cross both ways, then the agent hangs up → terminate', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await startBridge(phone.sipUri);
    const call = await sim.userCalls({ userWaId: CALLER, userName: 'Ana Souza', toneHz: 1000 });
    expect(call.webhookStatus).toBe(200);

    const preAccept = await call.waitFor('pre_accept');
    const accept = await call.waitFor('accept');
    expect((accept.body as any).session.sdp).toBe((preAccept.body as any).session.sdp);
    await phone.events.waitFor('CALL_ESTABLISHED');
    await call.peer.waitConnected(5000);
    expect(call.errors).toEqual([]);

    const desk = recordingParty(() => phone!.recordedPcm());
    const { atPbx: atPhone, atPeer: atWhatsApp } = await exchangeTones(desk, call.peer, { pbxHears: 1000, peerHears: 440, windowMs: 2000 });
    expect(atPhone.windows).toBeGreaterThan(10);
    expect(atPhone.share, 'the desk phone hears the WhatsApp user (1 kHz)').toBeGreaterThan(0.7);
    expect((await desk.toneWindows(440)).share, 'no echo of its own tone').toBeLessThan(0.1);
    expect(atWhatsApp.windows).toBeGreaterThan(10);
    expect(atWhatsApp.share, 'the WhatsApp user hears the agent (440 Hz)').toBeGreaterThan(0.7);
    expect(call.peer.toneWindows(1000).share).toBeLessThan(0.1);

    await phone.hangup();
    await call.waitFor('terminate');
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'the call to end' });
    expect(ended[0]).toMatchObject({ waCallId: call.callId, label: 'agent-hung-up', whatsapp: 'terminate', sip: 'none' });
    expect(call.actions()).toEqual(['pre_accept', 'accept', 'terminate']);
    // Logs name the call on both sides.
    const lines = logLines.filter((l) => l.includes(call.callId)).map((l) => JSON.parse(l));
    expect(lines.some((l) => l.sipCallId && l.waCallId === call.callId)).toBe(true);
    expect(logLines.join('')).not.toContain(TOKEN);
  });

  it('(b) the WhatsApp user hangs up → BYE to the phone, nothing more to WhatsApp', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await startBridge(phone.sipUri);
    const call = await sim.userCalls({ userWaId: CALLER, userName: 'Ana Souza' });
    await call.waitFor('accept');
    await phone.events.waitFor('CALL_ESTABLISHED');
    await waitFor(() => app!.bridge.call(call.callId)?.state === 'active', { what: 'the bridged call to be active' });
    expect(await call.hangUp()).toBe(200);
    const closed = await phone.events.waitFor('CALL_CLOSED', 5000);
    expect(closed.param ?? '').toMatch(/peer|BYE|reset/i);
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'the call to end' });
    expect(ended[0]).toMatchObject({ label: 'caller-hung-up', sip: 'bye', whatsapp: 'none' });
    expect(call.actions()).toEqual(['pre_accept', 'accept']);
  });

  it('(c) the PBX is busy (486) → reject; the INVITE carries the caller and X-WA headers', async () => {
    const port = await freeDualPort('127.0.0.3');
    sipp = startSipp({ scenario: 'sip-uas-busy.xml', ip: '127.0.0.3', port, timeoutSec: 20 });
    await startBridge(`sip:support@127.0.0.3:${port}`);
    const call = await sim.userCalls({ userWaId: CALLER, userName: 'Ana "AJ" Souza' });
    await call.waitFor('reject');
    const result = await sipp.exited;
    expect(result.code, result.errors).toBe(0);
    const invite = sippMessages(result.messages).received.find((m) => m.startsWith('INVITE'))!;
    expect(invite).toMatch(/^INVITE sip:support@127\.0\.0\.3:\d+ SIP\/2\.0/);
    expect(headerOf(invite, 'From')).toMatch(/^"Ana \\"AJ\\" Souza" <sip:\+5511987654321@/);
    expect(headerOf(invite, 'X-WA-Call-Id')).toBe(call.callId);
    expect(headerOf(invite, 'X-WA-Business-Number')).toBe(BUSINESS);
    expect(headerOf(invite, 'X-WA-Phone-Number-Id')).toBe(PHONE_NUMBER_ID);
    expect(invite).toContain('RTP/AVP');
    expect(invite).not.toMatch(/a=(ice-ufrag|fingerprint|setup|candidate)/);
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'the call to end' });
    expect(ended[0]).toMatchObject({ label: 'pbx-busy', whatsapp: 'reject', sip: 'none' });
    expect(call.actions()).toEqual(['reject']);
  });

  it('(d) the caller gives up while the phone rings → CANCEL', async () => {
    const port = await freeDualPort('127.0.0.3');
    sipp = startSipp({ scenario: 'sip-uas-ring-cancel.xml', ip: '127.0.0.3', port, timeoutSec: 20 });
    await startBridge(`sip:support@127.0.0.3:${port}`);
    const call = await sim.userCalls({ userWaId: CALLER });
    await waitFor(() => app!.bridge.call(call.callId)?.state === 'ringing', { timeoutMs: 5000, what: 'ringing' });
    await call.hangUp();
    const result = await sipp.exited;
    expect(result.code, result.errors).toBe(0);
    expect(sippMessages(result.messages).received.some((m) => m.startsWith('CANCEL'))).toBe(true);
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'the call to end' });
    expect(ended[0]).toMatchObject({ label: 'caller-hung-up', sip: 'cancel', whatsapp: 'none' });
    expect(call.actions()).toEqual([]);
  });

  it('(e) nobody answers → after the ring timeout the phone stops ringing and WhatsApp gets reject', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'manual' });
    await startBridge(phone.sipUri, { ringTimeoutSec: 3 });
    const call = await sim.userCalls({ userWaId: CALLER });
    await phone.events.waitFor('CALL_INCOMING', 5000);
    await call.waitFor('reject', 8000);
    await phone.events.waitFor('CALL_CLOSED', 5000);
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'the call to end' });
    expect(ended[0]).toMatchObject({ label: 'ring-timeout', sip: 'cancel', whatsapp: 'reject' });
  });

  it('(e2) a silent PBX (nothing listening) → the call still ends on both sides', async () => {
    const port = await freeDualPort('127.0.0.3');
    await startBridge(`sip:support@127.0.0.3:${port}`, { ringTimeoutSec: 3 });
    const call = await sim.userCalls({ userWaId: CALLER });
    await call.waitFor('reject', 10_000);
    await waitFor(() => ended.length === 1, { timeoutMs: 10_000, what: 'the call to end' });
    expect(['ring-timeout', 'pbx-no-answer', 'pbx-error']).toContain(ended[0]!.label);
  });

  it('(f) duplicate and out-of-order webhooks: one INVITE per call; a terminate before its connect rings nothing', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'manual' });
    await startBridge(phone.sipUri);
    const call = await sim.userCalls({ userWaId: CALLER });
    // WhatsApp redelivers the same connect.
    const again = await sim.webhooks.send(
      JSON.parse(JSON.stringify((await import('../../src/simulator/webhook-sender.js')).buildUserConnectWebhook({
        phoneNumberId: PHONE_NUMBER_ID, businessNumber: BUSINESS, callId: call.callId, userWaId: CALLER, sdp: 'v=0\r\n',
      }))),
    );
    expect(again).toBe(200);
    await phone.events.waitFor('CALL_INCOMING', 5000);
    // Nothing to wait for: a second INVITE would reach the phone within milliseconds of the
    // first on loopback; 500 ms bounds "it did not come".
    await sleep(500);
    expect(phone.events.all.filter((e) => e.type === 'CALL_INCOMING').length).toBe(1);
    await call.hangUp();
    await phone.events.waitFor('CALL_CLOSED', 5000);

    // A terminate that overtakes its connect.
    const late = 'wacid.late-connect-0001';
    expect(await sim.webhooks.terminate({ callId: late, userWaId: CALLER, status: 'COMPLETED' })).toBe(200);
    const lateCall = await sim.userCalls({ userWaId: CALLER, callId: late });
    expect(lateCall.webhookStatus).toBe(200);
    // Nothing to wait for: the connect was handled when its webhook got its 200; an INVITE it
    // caused would reach the phone within milliseconds on loopback, and 1 s bounds "it did not".
    await sleep(1000);
    expect(phone.events.all.filter((e) => e.type === 'CALL_INCOMING').length).toBe(1);
    expect(lateCall.actions()).toEqual([]);
    await lateCall.close();
  });

  it('(g) a webhook with a bad signature gets 401 and rings nothing', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'manual' });
    await startBridge(phone.sipUri);
    const { buildUserConnectWebhook } = await import('../../src/simulator/webhook-sender.js');
    const payload = buildUserConnectWebhook({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: BUSINESS, callId: 'wacid.forged', userWaId: CALLER, sdp: 'v=0\r\n' });
    expect(await sim.webhooks.send(payload, { signature: 'wrong' })).toBe(401);
    expect(await sim.webhooks.send(payload, { signature: 'none' })).toBe(401);
    // No wait needed: a 401 is answered before the payload reaches the bridge, so nothing can
    // be in flight once both requests have their answer.
    expect(phone.events.all.filter((e) => e.type === 'CALL_INCOMING')).toEqual([]);
    expect(sim.graph.actions.filter((a) => a.callId === 'wacid.forged')).toEqual([]);
  });

  it('(h) the PBX puts the call on hold (re-INVITE) → answered recvonly, WhatsApp untouched; then the PBX hangs up', async () => {
    const port = await freeDualPort('127.0.0.3');
    sipp = startSipp({ scenario: 'sip-uas-reinvite-hold.xml', ip: '127.0.0.3', port, timeoutSec: 20 });
    await startBridge(`sip:support@127.0.0.3:${port}`);
    const call = await sim.userCalls({ userWaId: CALLER });
    await call.waitFor('terminate');
    const result = await sipp.exited;
    expect(result.code, result.errors).toBe(0);
    const { sent } = sippMessages(result.messages);
    expect(sent.find((m) => m.startsWith('ACK') && m.includes('X-Answer-Direction'))).toMatch(/X-Answer-Direction: a=recvonly/);
    expect(call.actions()).toEqual(['pre_accept', 'accept', 'terminate']);
  });

  it('(h2) hold without music (a=inactive): WhatsApp keeps getting media while held; resume ends the fill', async () => {
    const port = await freeDualPort('127.0.0.3');
    sipp = startSipp({ scenario: 'sip-uas-reinvite-inactive.xml', ip: '127.0.0.3', port, timeoutSec: 20 });
    await startBridge(`sip:support@127.0.0.3:${port}`);
    const call = await sim.userCalls({ userWaId: CALLER });
    await call.waitFor('accept');
    await call.peer.waitConnected(5000);
    // This PBX never sends RTP. Held: ~50 packets/s must still reach WhatsApp (its media timer
    // drops a call after ~30 s of nothing), from either engine.
    await waitFor(() => pbxSendingCalls.at(-1) === false, { timeoutMs: 5000, what: 'the hold re-INVITE to reach the media engine' });
    const before = call.peer.stats.rtpIn;
    await waitFor(() => call.peer.stats.rtpIn >= before + 5, { what: 'the hold fill to reach WhatsApp' });
    const held = await call.peer.rtpInRate(1500);
    expect(held, `packets/s to WhatsApp while held (${engine})`).toBeGreaterThanOrEqual(35);
    expect(held).toBeLessThanOrEqual(65);
    await waitFor(() => pbxSendingCalls.at(-1) === true, { timeoutMs: 3000, what: 'the resume re-INVITE to reach the media engine' });
    await sleep(300); // fill packets already in flight when the resume took effect land first
    const resumed = await call.peer.rtpInRate(800);
    if (engine === 'rtpengine') {
      // rtpengine's silence is stopped on resume, so the PBX's own audio never has a second
      // stream beside it; this PBX sends none, so WhatsApp gets nothing.
      expect(resumed, 'packets/s after resume (rtpengine stops its silence)').toBeLessThan(5);
    } else {
      // The embedded engine fills any PBX silence by itself.
      expect(resumed).toBeGreaterThanOrEqual(35);
    }
    await call.waitFor('terminate');
    const result = await sipp.exited;
    expect(result.code, result.errors).toBe(0);
    const { sent } = sippMessages(result.messages);
    const dirs = sent.filter((m) => m.startsWith('ACK') && m.includes('X-Answer-Direction')).map((m) => /X-Answer-Direction: (\S+)/.exec(m)?.[1]);
    expect(dirs).toEqual(['a=inactive', 'a=sendrecv']);
    expect(call.actions()).toEqual(['pre_accept', 'accept', 'terminate']);
  });

  it('(i) WhatsApp refuses accept (Graph error) → the answered phone gets BYE, nothing is left', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await startBridge(phone.sipUri);
    sim.graph.failNext('accept', { code: 138007, message: '(#138007) Connect timeout', details: 'SDP not applied in time' });
    const call = await sim.userCalls({ userWaId: CALLER });
    await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
    await phone.events.waitFor('CALL_CLOSED', 5000);
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'the call to end' });
    expect(ended[0]).toMatchObject({ label: 'whatsapp-accept-failed', sip: 'bye' });
    expect(call.actions()[0]).toBe('pre_accept');
    expect(call.actions()).toContain('accept');
    const failedLine = logLines.map((l) => JSON.parse(l)).find((l) => l.cause === 'whatsapp-accept-failed');
    expect(failedLine?.waCallId).toBe(call.callId);
  });

  it('(j) malformed SIP on the bridge port is survived: the next call still works', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await startBridge(phone.sipUri);
    const { createSocket } = await import('node:dgram');
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.3', () => r()));
    const port = lastSipPort;
    const junk = [
      'garbage\r\n\r\n',
      'INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: nonsense\r\n\r\n',
      'INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:9;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCSeq: banana INVITE\r\nContent-Length: 999\r\n\r\nv=0',
      'SIP/2.0 200 OK\r\nCall-ID: nothing-we-know\r\n\r\n',
      Buffer.alloc(3000, 0xff).toString('latin1'),
    ];
    for (const j of junk) await new Promise<void>((r) => sock.send(Buffer.from(j, 'latin1'), port, '127.0.0.1', () => r()));
    sock.close();
    // No wait: the junk is queued on the bridge's socket before the call below starts.
    const call = await sim.userCalls({ userWaId: CALLER });
    await call.waitFor('accept');
    await phone.events.waitFor('CALL_ESTABLISHED', 5000);
    await call.hangUp();
    await phone.events.waitFor('CALL_CLOSED', 5000);
  });

  // Only rtpengine can die apart from the bridge; the embedded engine lives in its process.
  if (e === 'rtpengine') it('(k) a dead rtpengine: the bridge still answers webhooks, rejects the call at once, rings nothing', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'manual' });
    await startBridge(phone.sipUri, { deadRtpengine: true });
    const health = await fetch(`${app!.url}/readyz`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as any).media.ok).toBe(false);
    const call = await sim.userCalls({ userWaId: CALLER });
    expect(call.webhookStatus).toBe(200);
    await call.waitFor('reject', 5000);
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'the call to end' });
    expect(ended[0]).toMatchObject({ label: 'media-failed', whatsapp: 'reject', sip: 'none' });
    expect(phone.events.all.filter((ev) => ev.type === 'CALL_INCOMING')).toEqual([]);
    app!.media.listSessions = async () => []; // nothing to leak-check on a dead engine
  });

  it('(l) DTMF: digits the caller presses reach the desk phone as telephone-events', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await startBridge(phone.sipUri);
    const call = await sim.userCalls({ userWaId: CALLER });
    await call.waitFor('accept');
    await phone.events.waitFor('CALL_ESTABLISHED', 5000);
    await call.peer.waitConnected(5000);
    await waitForTone(call.peer, 440, 'the WhatsApp user');
    for (const d of [1, 9, 4]) {
      await call.peer.sendDtmf(d, 200);
      await sleep(150); // the gap between two key presses
    }
    const starts = () => phone!.events.all.filter((ev) => ev.type === 'CALL_DTMF_START');
    await waitFor(() => starts().length >= 3, { what: 'three digits at the desk phone' });
    const digits = starts().map((ev) => ev.param);
    expect(digits).toEqual(['1', '9', '4']);
    await call.hangUp();
    await phone.events.waitFor('CALL_CLOSED', 5000);
  });
});
