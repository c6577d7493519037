import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import type { EndedCallRecord } from '../../src/bridge/bridge.js';
import type { GraphFault, RecordedAction, SimAction } from '../../src/simulator/graph-server.js';
import { buildUserConnectWebhook, newCallId } from '../../src/simulator/webhook-sender.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { startSipp, type SippHandle } from '../harness/sipp.js';
import { freeDualPort } from '../harness/ports.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';
import { startLoopbackBridge } from '../support/bridge-config.js';

/**
 * Graph having a bad second, on real peers: the WhatsApp simulator (Graph API with injected
 * faults, signed webhooks, werift peer) → the bridge (embedded media) → baresip or SIPp as the
 * PBX / agent. Each call action meets a 500, a 429 with Retry-After, or a request that never
 * answers; each call either completes (the retry succeeded) or ends with both legs cleanly closed,
 * and the media engine holds no session afterwards. Then the lost `connect` answer: carried on
 * when WhatsApp's webhook names the call in time, terminated when it arrives after the bridge
 * gave up. Addresses: bridge 127.0.0.1, baresip 127.0.0.2, SIPp 127.0.0.3.
 */
const PHONE_NUMBER_ID = '436666719526789';
const BUSINESS = '13175551399';
const CALLER = '5511987654321';
const SECRET = 'faults-secret';
const TOKEN = 'faults-token';
// Long enough that a real answer on a loaded machine is not taken for a lost one (which adds a retry).
const REQUEST_TIMEOUT_MS = 1500;

let sim: WhatsAppSimulator;
let app: RunningApp | undefined;
let phone: BaresipHandle | undefined;
let sipp: SippHandle | undefined;
let sipPort = 0;
let ended: EndedCallRecord[] = [];
const logLines: string[] = [];
const log: Logger = createLogger({
  level: process.env.E2E_LOG_LEVEL ?? 'info',
  destination: { write: (s: string) => (logLines.push(s), true) } as unknown as NodeJS.WritableStream,
});

async function startBridge(target: string): Promise<RunningApp> {
  ({ app, sipPort } = await startLoopbackBridge(
    sim,
    {
      whatsapp: { phoneNumberIds: [PHONE_NUMBER_ID], requestTimeoutMs: REQUEST_TIMEOUT_MS, retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 1500 } },
      rest: {
        outbound: { enabled: true, allowFrom: ['127.0.0.2/32'], dialPrefix: '9', phoneNumberId: PHONE_NUMBER_ID, ringTimeoutSec: 20 },
        routing: { default: target },
      },
    },
    log,
  ));
  app.bridge.onCallEnded((r) => ended.push(r));
  return app;
}

/** A bounded wait on a condition: the reason is in the error. */
const until = async (cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> => {
  await waitFor(cond, { timeoutMs, what });
};

/** The first answered-200 request for `action` on `callId`. */
const done = (action: SimAction, callId: string, timeoutMs = 10_000): Promise<RecordedAction> =>
  sim.graph.waitForAction((a) => a.action === action && a.callId === callId && a.response.status === 200, timeoutMs);
const tries = (action: SimAction, callId: string) => sim.graph.actions.filter((a) => a.action === action && a.callId === callId);

const FAULTS: [string, GraphFault][] = [
  ['500', { kind: 'http-500' }],
  ['429 + Retry-After', { kind: 'rate-limit', retryAfterSec: 1 }],
  ['no answer (timeout)', { kind: 'hang' }],
];

describeWithPeers('Graph faults at each call action (simulator + baresip/SIPp, embedded media)', ['baresip', 'sipp'], () => {
  beforeAll(async () => {
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: BUSINESS, accessToken: TOKEN, appSecret: SECRET });
  });

  afterEach(async (ctx) => {
    const [a, p, s] = [app, phone, sipp];
    [app, phone, sipp] = [undefined, undefined, undefined];
    sim.graph.clearFaults();
    sim.graph.actions.length = 0;
    try {
      // Every call must leave nothing behind in the media engine, whatever Graph did.
      const left = async () => (a ? await a.media.listSessions() : []);
      await until(async () => (await left()).length === 0, 5000, 'no media session left').catch(async (e: Error) => {
        throw new Error(`${e.message}: ${(await left()).join(', ')}`);
      });
    } finally {
      s?.stop();
      await Promise.all([a?.close(), p?.stop()]);
      if (ctx.task.result?.state === 'fail') process.stderr.write(logLines.slice(-80).join(''));
      logLines.length = 0;
      ended = [];
    }
  });

  afterAll(async () => {
    await sim?.close();
  });

  for (const action of ['pre_accept', 'accept'] as const) {
    for (const [name, fault] of FAULTS) {
      it(`inbound: ${name} on ${action} is retried and the call completes; the user hangs up and both legs close`, async () => {
        phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
        await startBridge(phone.sipUri);
        sim.graph.injectFault(action, fault);
        const call = await sim.userCalls({ userWaId: CALLER, userName: 'Ana', toneHz: 1000 });
        expect(call.webhookStatus).toBe(200);
        await done('accept', call.callId, 15_000);
        expect(tries(action, call.callId).map((a) => a.response.status)).toEqual([fault.kind === 'hang' ? 0 : fault.kind === 'http-500' ? 500 : 429, 200]);
        await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
        await call.peer.waitConnected(5000);
        expect(app!.whatsappCounters.get('graph_retries', { action })).toBe(1);
        await call.hangUp();
        await phone.events.waitFor('CALL_CLOSED', 5000);
        await until(() => ended.length === 1, 5000, 'the call to end');
        expect(ended[0]).toMatchObject({ waCallId: call.callId, direction: 'inbound' });
      }, 40_000);
    }
  }

  for (const [name, fault] of FAULTS) {
    it(`inbound: ${name} on terminate (the agent hangs up) is retried until WhatsApp's leg ends`, async () => {
      phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
      await startBridge(phone.sipUri);
      const call = await sim.userCalls({ userWaId: CALLER, toneHz: 1000 });
      await done('accept', call.callId, 15_000);
      await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
      sim.graph.injectFault('terminate', fault);
      await phone.hangup();
      await done('terminate', call.callId, 10_000);
      expect(tries('terminate', call.callId)).toHaveLength(2);
      expect(sim.graph.getCall(call.callId)!.state).toBe('terminated');
      await until(() => ended.length === 1, 5000, 'the call to end');
      expect(ended[0]).toMatchObject({ waCallId: call.callId, whatsapp: 'terminate' });
    }, 40_000);

    it(`inbound: ${name} on reject (the PBX is busy) is retried until WhatsApp's leg is rejected`, async () => {
      const port = await freeDualPort('127.0.0.3');
      sipp = startSipp({ scenario: 'sip-uas-busy.xml', ip: '127.0.0.3', port, timeoutSec: 20 });
      await startBridge(`sip:support@127.0.0.3:${port}`);
      sim.graph.injectFault('reject', fault);
      const call = await sim.userCalls({ userWaId: CALLER });
      await done('reject', call.callId, 10_000);
      expect(tries('reject', call.callId)).toHaveLength(2);
      expect(sim.graph.getCall(call.callId)!.state).toBe('rejected');
      expect((await sipp.exited).code).toBe(0);
      await until(() => ended.length === 1, 5000, 'the call to end');
    }, 40_000);
  }

  it('inbound: accept failing every try ends the call cleanly on both sides (BYE to the PBX, terminate to WhatsApp)', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await startBridge(phone.sipUri);
    sim.graph.injectFault('accept', { kind: 'http-500' }, 3);
    const call = await sim.userCalls({ userWaId: CALLER });
    await done('terminate', call.callId, 15_000);
    expect(tries('accept', call.callId).map((a) => a.response.status)).toEqual([500, 500, 500]);
    await phone.events.waitFor('CALL_CLOSED', 10_000);
    await until(() => ended.length === 1, 5000, 'the call to end');
    expect(app!.whatsappCounters.get('graph_gave_up', { action: 'accept' })).toBe(1);
  }, 40_000);

  for (const [name, fault] of FAULTS.slice(0, 2)) {
    it(`outbound: ${name} on connect is retried; exactly one WhatsApp call, which the agent talks on`, async () => {
      await startBridge('sip:unused@127.0.0.1:5999');
      const user = sim.user(CALLER, { kind: 'answer', afterMs: 200, toneHz: 1000 });
      sim.graph.injectFault('connect', fault);
      phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
      await phone.dial(`sip:9+${CALLER}@127.0.0.1:${sipPort}`);
      await user.waitForConnect(15_000);
      await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
      const connects = sim.graph.actions.filter((a) => a.action === 'connect');
      expect(connects.map((a) => a.response.status)).toEqual([fault.kind === 'http-500' ? 500 : 429, 200]);
      await phone.hangup();
      await until(() => ended.length === 1, 5000, 'the call to end');
      expect(sim.graph.getCall(connects[1]!.callId!)!.state).toBe('terminated');
    }, 40_000);
  }

  it('outbound: connect that never answers (not done at Meta) is not re-sent; the agent gets a final answer', async () => {
    await startBridge('sip:unused@127.0.0.1:5999');
    sim.graph.injectFault('connect', { kind: 'hang' });
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await phone.dial(`sip:9+${CALLER}@127.0.0.1:${sipPort}`);
    // timeout (REQUEST_TIMEOUT_MS) + the wait for a webhook naming the call (5 s), then a final response
    await phone.events.waitFor('CALL_CLOSED', 15_000);
    await until(() => ended.length === 1, 5000, 'the call to end');
    expect(sim.graph.actions.filter((a) => a.action === 'connect')).toHaveLength(1);
    expect(ended[0]).toMatchObject({ direction: 'outbound', waCallId: undefined });
  }, 40_000);

  it("outbound: connect created at Meta but its answer lost → the webhook names the call and it carries on", async () => {
    await startBridge('sip:unused@127.0.0.1:5999');
    const user = sim.user(CALLER, { kind: 'answer', afterMs: 200, toneHz: 1000 });
    sim.graph.injectFault('connect', { kind: 'lost-response' });
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await phone.dial(`sip:9+${CALLER}@127.0.0.1:${sipPort}`);
    await user.waitForConnect(15_000);
    await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
    await user.peer!.waitConnected(5000);
    // Past the connect's own timeout: the call is still up (carried on, not torn down).
    await until(() => app!.whatsappCounters.get('connect_reconciled', { outcome: 'carried-on' }) === 1, REQUEST_TIMEOUT_MS * 10, 'the lost connect to time out and be carried on');
    expect(ended).toEqual([]);
    expect(sim.graph.actions.filter((a) => a.action === 'connect')).toHaveLength(1);
    await phone.hangup();
    await until(() => ended.length === 1, 5000, 'the call to end');
    const callId = sim.graph.actions.find((a) => a.action === 'connect')!.callId!;
    expect(ended[0]).toMatchObject({ direction: 'outbound', waCallId: callId, whatsapp: 'terminate' });
    expect(sim.graph.getCall(callId)!.state).toBe('terminated');
  }, 40_000);

  it("outbound: connect created at Meta, answer lost, webhooks late → after the bridge gave up, WhatsApp's call is terminated", async () => {
    await startBridge('sip:unused@127.0.0.1:5999');
    const liveUrl = `${app!.url}/webhook`;
    // WhatsApp's webhooks cannot reach the bridge for now (Meta will redeliver later).
    sim.setWebhookUrl(`http://127.0.0.1:${await freeDualPort('127.0.0.1')}/webhook`);
    sim.user(CALLER, { kind: 'answer', afterMs: 60_000 });
    sim.graph.injectFault('connect', { kind: 'lost-response' });
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await phone.dial(`sip:9+${CALLER}@127.0.0.1:${sipPort}`);
    await phone.events.waitFor('CALL_CLOSED', 15_000);
    await until(() => ended.length === 1, 5000, 'the bridge to give up');
    expect(ended[0]!.waCallId).toBeUndefined();
    const connect = sim.graph.actions.find((a) => a.action === 'connect')!;
    expect(sim.graph.getCall(connect.callId!)!.state).toBe('calling'); // alive at "Meta", ringing the user
    // The redelivered RINGING arrives: the bridge matches its opaque data and ends the call.
    sim.setWebhookUrl(liveUrl);
    const opaque = (connect.body as { biz_opaque_callback_data: string }).biz_opaque_callback_data;
    expect(await sim.webhooks.status({ callId: connect.callId!, userWaId: CALLER, status: 'RINGING', bizOpaqueCallbackData: opaque })).toBe(200);
    await done('terminate', connect.callId!, 10_000);
    expect(sim.graph.getCall(connect.callId!)!.state).toBe('terminated');
    expect(app!.whatsappCounters.get('connect_reconciled', { outcome: 'terminated' })).toBe(1);
  }, 40_000);

  it('a connect redelivered after an outage (older than maxWebhookAgeSec) is not rung; the call is rejected on WhatsApp', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await startBridge(phone.sipUri);
    const callId = newCallId();
    sim.graph.registerCall(callId, PHONE_NUMBER_ID);
    const hourAgo = Math.floor(Date.now() / 1000) - 3600;
    const payload = buildUserConnectWebhook({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: BUSINESS, callId, userWaId: CALLER, sdp: 'v=0\r\n', timestamp: hourAgo });
    expect(await sim.webhooks.send(payload)).toBe(200);
    await done('reject', callId, 10_000);
    // The decision not to ring is taken before the reject is sent: no INVITE can follow it.
    expect(phone.events.all.filter((e) => e.type === 'CALL_INCOMING')).toEqual([]);
    expect(sim.graph.getCall(callId)!.state).toBe('rejected');
    expect(app!.whatsappCounters.get('webhook_connect_stale')).toBe(1);
    expect(ended).toEqual([]);
  }, 40_000);
});
