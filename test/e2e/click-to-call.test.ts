import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import type { EndedCallRecord } from '../../src/bridge/bridge.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { headerOf, sippMessages, startSipp, type SippHandle } from '../harness/sipp.js';
import { freeDualPort } from '../harness/ports.js';
import { startLoopbackBridge } from '../support/bridge-config.js';
import { exchangeTones, recordingParty } from '../support/audio.js';
import { describeWithPeers } from '../support/peers.js';
import { finishBridgeTest } from '../support/sessions.js';
import { waitFor } from '../support/wait.js';

/**
 * Click to call against real peers: a CRM (this test, over HTTP with an admin token) asks the
 * bridge to call a WhatsApp user (the simulator: signed webhooks, werift WebRTC peer) and, once
 * they answer, to ring an extension: baresip (127.0.0.2, answers at once) or SIPp (127.0.0.3,
 * busy). Embedded media engine; one call on rtpengine.
 */
const PHONE_NUMBER_ID = '436666719526789';
const USER = '5511987654321';
const SECRET = 'c2c-secret';
const TOKEN = 'c2c-token';
const ADMIN = { name: 'crm', token: 'crm-token-0123456789abcdef' };

let sim: WhatsAppSimulator;
let app: RunningApp | undefined;
let ext: BaresipHandle | undefined;
let sipp: SippHandle | undefined;
let ended: EndedCallRecord[] = [];
const logLines: string[] = [];
const log: Logger = createLogger({
  level: 'debug',
  destination: { write: (s: string) => (logLines.push(s), true) } as unknown as NodeJS.WritableStream,
});

async function startBridge(media: Record<string, unknown> = {}): Promise<RunningApp> {
  const { app: a } = await startLoopbackBridge(
    sim,
    {
      whatsapp: { phoneNumberIds: [PHONE_NUMBER_ID] },
      media,
      rest: { routing: { default: 'sip:queue@127.0.0.2:5060' }, ops: { admin: { tokens: [ADMIN], clickToCallRingSec: 20 } } },
    },
    log,
  );
  a.bridge.onCallEnded((r) => ended.push(r));
  app = a;
  return a;
}

/** POST /admin/calls as the CRM. */
async function clickToCall(body: unknown, token = ADMIN.token): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${app!.url}/admin/calls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describeWithPeers('click to call end to end (CRM → WhatsApp user, then an extension)', ['baresip', 'sipp'], () => {
  beforeAll(async () => {
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: '13175551399', accessToken: TOKEN, appSecret: SECRET });
  });

  afterEach(async (ctx) => {
    const [a, e, s] = [app, ext, sipp];
    [app, ext, sipp] = [undefined, undefined, undefined];
    await finishBridgeTest(ctx.task.result?.state === 'fail', logLines, a, [e, s], () => (ended = []));
  });

  afterAll(async () => {
    await sim?.close();
  });

  it('the user answers, then the extension: tones cross both ways; the extension hangs up → terminate', async () => {
    await startBridge();
    ext = await startBaresip({ sipAddress: '127.0.0.2', user: '2001', answerMode: 'auto', toneHz: 440 });
    const user = sim.user(USER, { kind: 'answer', afterMs: 300, toneHz: 1000 });
    const r = await clickToCall({ to: `+${USER}`, extension: `sip:2001@127.0.0.2:${ext.sipPort}` });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    expect(r.json).toMatchObject({ ok: true, id: expect.stringMatching(/^c2c-/), waCallId: expect.any(String) });

    const connect = await user.waitForConnect(10_000);
    expect(connect).toBeDefined();
    const sent = user.received.find((a) => a.action === 'connect')!;
    expect((sent.body as { to: string }).to).toBe(USER);
    expect((sent.body as { biz_opaque_callback_data: string }).biz_opaque_callback_data).toBe(`wa-sip-bridge:${r.json.id as string}`);
    await ext.events.waitFor('CALL_ESTABLISHED', 10_000);
    await user.peer!.waitConnected(5000);
    const desk = recordingParty(() => ext!.recordedPcm());
    const { atPbx, atPeer } = await exchangeTones(desk, user.peer!, { pbxHears: 1000, peerHears: 440, windowMs: 2000 });
    expect(atPbx.share, 'the extension hears the WhatsApp user').toBeGreaterThan(0.7);
    expect(atPeer.share, 'the WhatsApp user hears the extension').toBeGreaterThan(0.7);
    expect(sim.graph.actions.some((a) => a.action === 'accept' || a.action === 'pre_accept')).toBe(false);

    await ext.hangup();
    await waitFor(() => user.received.some((a) => a.action === 'terminate'), { timeoutMs: 5000, what: 'terminate' });
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
    expect(ended[0]).toMatchObject({ direction: 'click-to-call', key: r.json.id, label: 'agent-hung-up', whatsapp: 'terminate', sip: 'none', whatsappUser: USER });
    expect(ended[0]!.times?.answeredAt).toBeDefined();
    // Who asked is in the logs of the call.
    expect(logLines.some((l) => l.includes('"by":"crm"') && l.includes('both legs up'))).toBe(true);
    // The call view has its ladder under the click-to-call id: connect before the INVITE.
    const view = await fetch(`${app!.url}/admin/calls/${r.json.id as string}`, { headers: { authorization: `Bearer ${ADMIN.token}` } });
    const trace = (await view.json()) as { summary: { direction: string; waCallId: string }; arrows: Array<{ label: string }> };
    expect(trace.summary).toMatchObject({ direction: 'click-to-call', waCallId: r.json.waCallId });
    const labels = trace.arrows.map((a) => a.label);
    const connectAt = labels.findIndex((l) => /connect/.test(l));
    const inviteAt = labels.findIndex((l) => /^INVITE/.test(l));
    expect(connectAt, labels.join(' | ')).toBeGreaterThanOrEqual(0);
    expect(inviteAt, labels.join(' | ')).toBeGreaterThan(connectAt);
  });

  it('the WhatsApp user hangs up → BYE to the extension', async () => {
    await startBridge();
    ext = await startBaresip({ sipAddress: '127.0.0.2', user: '2001', answerMode: 'auto', toneHz: 440 });
    const user = sim.user('5511900000002', { kind: 'answer', afterMs: 200 });
    const r = await clickToCall({ to: '5511900000002', extension: `sip:2001@127.0.0.2:${ext.sipPort}` });
    expect(r.status).toBe(202);
    await ext.events.waitFor('CALL_ESTABLISHED', 10_000);
    await waitFor(() => logLines.some((l) => l.includes('both legs up')), { what: 'the bridged call to be active' });
    expect(await user.hangUp()).toBe(200);
    await ext.events.waitFor('CALL_CLOSED', 5000);
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
    expect(ended[0]).toMatchObject({ label: 'user-hung-up', sip: 'bye', whatsapp: 'none' });
  });

  it('the user declines → the extension is never rung', async () => {
    await startBridge();
    ext = await startBaresip({ sipAddress: '127.0.0.2', user: '2001', answerMode: 'auto' });
    const user = sim.user('5511900000003', { kind: 'decline', afterMs: 300 });
    const r = await clickToCall({ to: '5511900000003', extension: `sip:2001@127.0.0.2:${ext.sipPort}` });
    expect(r.status).toBe(202);
    await waitFor(() => ended.length === 1, { timeoutMs: 10_000, what: 'call end' });
    expect(ended[0]).toMatchObject({ label: 'user-declined', sip: 'none', whatsapp: 'none', sipCallId: undefined });
    // The call is over: an INVITE would have been sent before its end.
    expect(ext.events.all.some((e) => e.type === 'CALL_INCOMING')).toBe(false);
    expect(user.received.map((a) => a.action)).toEqual(['connect']);
  });

  it('the extension is busy (486) → WhatsApp terminate; the INVITE names the WhatsApp user', async () => {
    const port = await freeDualPort('127.0.0.3');
    sipp = startSipp({ scenario: 'sip-uas-busy.xml', ip: '127.0.0.3', port, timeoutSec: 20 });
    await startBridge();
    const user = sim.user('5511900000004', { kind: 'answer', afterMs: 200 });
    const r = await clickToCall({ to: '5511900000004', extension: `sip:sales@127.0.0.3:${port}` });
    expect(r.status).toBe(202);
    await waitFor(() => user.received.some((a) => a.action === 'terminate'), { timeoutMs: 10_000, what: 'terminate' });
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
    expect(ended[0]).toMatchObject({ label: 'pbx-busy', whatsapp: 'terminate', sip: 'none' });
    const result = await sipp.exited;
    expect(result.code, result.errors).toBe(0);
    const invite = sippMessages(result.messages).received.find((m) => m.startsWith('INVITE'))!;
    expect(invite).toMatch(/^INVITE sip:sales@127\.0\.0\.3:\d+ SIP\/2\.0/);
    expect(headerOf(invite, 'From')).toMatch(/<sip:\+5511900000004@/);
    expect(headerOf(invite, 'X-WA-Call-Id')).toBe(r.json.waCallId);
    expect(headerOf(invite, 'X-WA-Click-To-Call')).toBe('crm');
    expect(invite).toContain('RTP/AVP');
    expect(invite).not.toMatch(/a=(ice-ufrag|fingerprint|setup|candidate)/);
  });

  it('no permission → 403 from the API, and no connect', async () => {
    await startBridge();
    const user = sim.user('5511900000001', { kind: 'no-permission' });
    const r = await clickToCall({ to: '5511900000001', extension: '2001' });
    expect(r.status).toBe(403);
    expect(r.json.error).toMatch(/permission/);
    expect(user.received.some((a) => a.action === 'connect')).toBe(false);
  });

  it('bad requests: 401 without a valid token, 400 for a bad number or extension; nothing reaches WhatsApp', async () => {
    await startBridge();
    const before = sim.graph.actions.length;
    expect((await clickToCall({ to: USER, extension: '2001' }, 'wrong-token-0123456789')).status).toBe(401);
    const badNumber = await clickToCall({ to: '55-11-9876', extension: '2001' });
    expect([badNumber.status, badNumber.json.error]).toEqual([400, expect.stringContaining('"to"')]);
    const badExt = await clickToCall({ to: USER, extension: 'sip:x@y\r\nVia: evil' });
    expect([badExt.status, badExt.json.error]).toEqual([400, expect.stringContaining('"extension"')]);
    expect(sim.graph.actions.length).toBe(before);
  });
});

describeWithPeers('click to call on rtpengine', ['rtpengine', 'baresip'], () => {
  let rtpengine: RtpengineDaemon;
  beforeAll(async () => {
    rtpengine = await startRtpengine(randomMediaRange());
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: '13175551399', accessToken: TOKEN, appSecret: SECRET });
  });
  afterEach(async (ctx) => {
    const [a, e] = [app, ext];
    [app, ext] = [undefined, undefined];
    await finishBridgeTest(ctx.task.result?.state === 'fail', logLines, a, [e], () => (ended = []));
  });
  afterAll(async () => {
    await sim?.close();
    await rtpengine?.stop();
  });

  it('the user answers, then the extension: tones cross both ways; the user hangs up → BYE', async () => {
    await startBridge({ engine: 'rtpengine', rtpengine: { ng: [rtpengine.ng] } });
    ext = await startBaresip({ sipAddress: '127.0.0.2', user: '2001', answerMode: 'auto', toneHz: 440, codecs: ['PCMA'] });
    const user = sim.user('5511900000005', { kind: 'answer', afterMs: 300, toneHz: 1000 });
    const r = await clickToCall({ to: '5511900000005', extension: `sip:2001@127.0.0.2:${ext.sipPort}` });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    await user.waitForConnect(10_000);
    await ext.events.waitFor('CALL_ESTABLISHED', 10_000);
    await user.peer!.waitConnected(5000);
    await waitFor(() => logLines.some((l) => l.includes('both legs up')), { what: 'the bridged call to be active' });
    const desk = recordingParty(() => ext!.recordedPcm());
    const { atPbx, atPeer } = await exchangeTones(desk, user.peer!, { pbxHears: 1000, peerHears: 440, windowMs: 2000 });
    expect(atPbx.share, 'the extension hears the WhatsApp user').toBeGreaterThan(0.7);
    expect(atPeer.share, 'the WhatsApp user hears the extension').toBeGreaterThan(0.7);
    expect(await user.hangUp()).toBe(200);
    await ext.events.waitFor('CALL_CLOSED', 5000);
    await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
    expect(ended[0]).toMatchObject({ direction: 'click-to-call', label: 'user-hung-up', sip: 'bye', whatsapp: 'none' });
  });
});
