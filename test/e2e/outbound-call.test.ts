import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import type { EndedCallRecord } from '../../src/bridge/bridge.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { headerOf, sippMessages, startSipp } from '../harness/sipp.js';
import { freeDualPort } from '../harness/ports.js';
import { startLoopbackBridge } from '../support/bridge-config.js';
import { exchangeTones, recordingParty } from '../support/audio.js';
import { describeWithPeers } from '../support/peers.js';
import { closeAfterLeakCheck } from '../support/sessions.js';
import { waitFor } from '../support/wait.js';

/**
 * Outbound calls against real peers: baresip (the agent's desk phone, 127.0.0.2) dials
 * 9 + a WhatsApp number through the bridge (127.0.0.1); the simulator plays WhatsApp and the
 * called user (answers, declines, has no permission...). SIPp (127.0.0.3) is a source the
 * bridge must refuse. Runs on both media engines.
 */
const PHONE_NUMBER_ID = '436666719526789';
const USER = '5511987654321';
const SECRET = 'out-secret';
const TOKEN = 'out-token';

let rtpengine: RtpengineDaemon;
let sim: WhatsAppSimulator;
let app: RunningApp | undefined;
let agent: BaresipHandle | undefined;
let sipPort = 0;
let ended: EndedCallRecord[] = [];
let engine: 'rtpengine' | 'embedded' = 'rtpengine';
const logLines: string[] = [];
const log: Logger = createLogger({
  level: 'debug',
  destination: { write: (s: string) => (logLines.push(s), true) } as unknown as NodeJS.WritableStream,
});

async function startBridge(over: Record<string, unknown> = {}): Promise<RunningApp> {
  const started = await startLoopbackBridge(
    sim,
    {
      whatsapp: { phoneNumberIds: [PHONE_NUMBER_ID] },
      media: { engine, rtpengine: { ng: [rtpengine.ng] } },
      rest: { outbound: { enabled: true, allowFrom: ['127.0.0.2/32'], dialPrefix: '9', phoneNumberId: PHONE_NUMBER_ID, ringTimeoutSec: 20, ...over } },
    },
    log,
  );
  const a = started.app;
  sipPort = started.sipPort;
  a.bridge.onCallEnded((r) => ended.push(r));
  app = a;
  return a;
}

const dialUri = (number = `+${USER}`) => `sip:9${number}@127.0.0.1:${sipPort}`;

for (const e of ['rtpengine', 'embedded'] as const)
  describeWithPeers(`outbound call end to end, ${e} media (agent on baresip → WhatsApp user)`, ['rtpengine', 'baresip', 'sipp'], () => {
    beforeAll(async () => {
      engine = e;
      rtpengine = await startRtpengine(randomMediaRange());
      sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: '13175551399', accessToken: TOKEN, appSecret: SECRET });
    });

    afterEach(async (ctx) => {
      const [a, peers] = [app, [agent]];
      [app, agent] = [undefined, undefined];
      if (ctx.task.result?.state === 'fail') process.stderr.write(logLines.slice(-80).join(''));
      // Reset once the app is closed: closing ends what is left, and that is this test's record.
      await closeAfterLeakCheck(a, peers).finally(() => {
        logLines.length = 0;
        ended = [];
      });
    });

    afterAll(async () => {
      await sim?.close();
      await rtpengine?.stop();
    });

    it('answered: ringback, then tones both ways; the agent hangs up → terminate', async () => {
      await startBridge();
      const user = sim.user(USER, { kind: 'answer', afterMs: 500, toneHz: 1000 });
      agent = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
      await agent.dial(dialUri());
      await agent.events.waitFor('CALL_RINGING', 5000);
      await user.waitForConnect(10_000);
      await agent.events.waitFor('CALL_ESTABLISHED', 5000);
      await user.peer!.waitConnected(5000);
      const desk = recordingParty(() => agent!.recordedPcm());
      const { atPbx, atPeer } = await exchangeTones(desk, user.peer!, { pbxHears: 1000, peerHears: 440, windowMs: 2000 });
      expect(atPbx.share, 'the agent hears the WhatsApp user').toBeGreaterThan(0.7);
      expect(atPeer.share, 'the WhatsApp user hears the agent').toBeGreaterThan(0.7);
      const connect = user.received.find((a) => a.action === 'connect')!;
      expect((connect.body as any).to).toBe(USER);
      expect((connect.body as any).biz_opaque_callback_data).toMatch(/^wa-sip-bridge:/);
      expect(sim.graph.actions.some((a) => a.action === 'accept')).toBe(false);

      await agent.hangup();
      await waitFor(() => user.received.some((a) => a.action === 'terminate'), { timeoutMs: 5000, what: 'terminate' });
      await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
      expect(ended[0]).toMatchObject({ direction: 'outbound', label: 'agent-hung-up', whatsapp: 'terminate' });
    });

    it('answered with WhatsApp as DTLS server (answer setup:passive): audio both ways, 3 calls in a row', async () => {
      await startBridge();
      for (let i = 0; i < 3; i++) {
        const user = sim.user(USER, { kind: 'answer', afterMs: 100, setup: 'passive', toneHz: 1000 });
        agent = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
        const previous = user.callId;
        await agent.dial(dialUri());
        // The user still holds the previous call until this one rings; its connect is not ours.
        await waitFor(() => user.callId !== previous, { what: `call ${i} to ring the user` });
        await user.waitForConnect(10_000);
        expect(user.peer!.localAnswer).toContain('a=setup:passive');
        await agent.events.waitFor('CALL_ESTABLISHED', 5000);
        await user.peer!.waitConnected(5000);
        const desk = recordingParty(() => agent!.recordedPcm());
        const { atPbx, atPeer } = await exchangeTones(desk, user.peer!, { pbxHears: 1000, peerHears: 440, windowMs: 1500 });
        expect(atPbx.share, `run ${i}: agent hears the user`).toBeGreaterThan(0.6);
        expect(atPeer.share, `run ${i}: user hears the agent`).toBeGreaterThan(0.6);
        await agent.hangup();
        await waitFor(() => ended.length === i + 1, { timeoutMs: 5000, what: 'call end' });
        await agent.stop();
        agent = undefined;
      }
    });

    it('the WhatsApp user hangs up → BYE to the agent', async () => {
      await startBridge();
      const user = sim.user(USER, { kind: 'answer', afterMs: 200 });
      agent = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
      await agent.dial(dialUri());
      const established = await agent.events.waitFor('CALL_ESTABLISHED', 10_000);
      await waitFor(() => app!.bridge.outboundCall(established.id ?? '')?.state === 'active', { what: 'the bridged call to be active' });
      expect(await user.hangUp()).toBe(200);
      await agent.events.waitFor('CALL_CLOSED', 5000);
      await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
      expect(ended[0]).toMatchObject({ label: 'user-hung-up', sip: 'bye', whatsapp: 'none' });
    });

    it('declined → 603 Decline at the agent phone', async () => {
      await startBridge();
      sim.user(USER, { kind: 'decline', afterMs: 300 });
      agent = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto' });
      await agent.dial(dialUri());
      const closed = await agent.events.waitFor('CALL_CLOSED', 10_000);
      expect(closed.param).toMatch(/603/);
      await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
      expect(ended[0]).toMatchObject({ label: 'user-declined', sip: 603 });
    });

    it('no permission → 403 at once, naming the cause, and a permission request is sent', async () => {
      await startBridge({ requestPermission: { enabled: true, bodyText: 'May we call you?' } });
      const user = sim.user('5511900000001', { kind: 'no-permission' });
      agent = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto' });
      const t0 = performance.now();
      await agent.dial(dialUri('+5511900000001'));
      const closed = await agent.events.waitFor('CALL_CLOSED', 10_000);
      expect(closed.param).toMatch(/403/);
      expect(performance.now() - t0).toBeLessThan(3000);
      await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
      expect(ended[0]).toMatchObject({ label: 'wa-no-permission', sip: 403, whatsapp: 'none' });
      expect(user.received.some((a) => a.action === 'connect')).toBe(false);
      const request = sim.graph.actions.find((a) => a.action === 'call_permission_request' && (a.body as any).to === '5511900000001');
      expect(request, 'a call permission request was sent to the user').toBeDefined();
      expect(user.inCall).toBe(false);
    });

    it('the agent hangs up while WhatsApp rings → CANCEL → terminate', async () => {
      await startBridge();
      const user = sim.user(USER, { kind: 'no-answer', giveUpAfterMs: 30_000 });
      agent = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto' });
      await agent.dial(dialUri());
      await agent.events.waitFor('CALL_RINGING', 10_000);
      await waitFor(() => user.received.some((a) => a.action === 'connect'), { timeoutMs: 5000, what: 'connect' });
      await agent.hangup();
      await waitFor(() => user.received.some((a) => a.action === 'terminate'), { timeoutMs: 5000, what: 'terminate' });
      await waitFor(() => ended.length === 1, { timeoutMs: 5000, what: 'call end' });
      expect(ended[0]).toMatchObject({ label: 'agent-cancelled', whatsapp: 'terminate' });
    });

    it('a source that is not allowed gets 403; a malformed number gets 484; nothing reaches WhatsApp', async () => {
      await startBridge();
      const before = sim.graph.actions.length;
      const port = await freeDualPort('127.0.0.3');
      const intruder = startSipp({ scenario: 'bridge-uac-refused.xml', ip: '127.0.0.3', port, remote: `127.0.0.1:${sipPort}`, args: ['-s', `9+${USER}`] });
      const r1 = await intruder.exited;
      expect(r1.code, r1.errors + r1.stderr).toBe(0);
      const refused = sippMessages(r1.messages).received.find((m) => m.startsWith('SIP/2.0 403'));
      expect(refused).toBeDefined();

      agent = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto' });
      await agent.dial(dialUri('12ab'));
      const closed = await agent.events.waitFor('CALL_CLOSED', 10_000);
      expect(closed.param).toMatch(/484/);
      expect(sim.graph.actions.length).toBe(before);
      expect(headerOf(refused!, 'Warning')).toContain('not allowed');
      // The refusal is logged as a warning naming where it came from (the operator's trail).
      const warnings = logLines.map((l) => JSON.parse(l) as { level: number; source?: unknown });
      expect(warnings.some((l) => l.level === 40 && JSON.stringify(l.source ?? '').includes('127.0.0.3'))).toBe(true);
    });
  });
