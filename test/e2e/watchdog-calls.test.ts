import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import type { EndedCallRecord } from '../../src/bridge/bridge.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';
import { startLoopbackBridge } from '../support/bridge-config.js';

/**
 * The media watchdogs end whole calls, on real peers (issue 9): the WhatsApp simulator → the
 * bridge → baresip as the agent. When WhatsApp's media stops mid-call and no terminate webhook
 * comes (embedded engine, and rtpengine), and when the rtpengine serving the call is killed,
 * both legs end within seconds: WhatsApp gets `terminate`, the agent's phone gets a BYE, the
 * call is recorded with the cause, and the media engine holds nothing afterwards.
 */
const PHONE_NUMBER_ID = '436666719526791';
const CALLER = '5511987650001';
const SECRET = 'wd-secret';
const TOKEN = 'wd-token';
const MEDIA_TIMEOUT_SEC = 2;

let sim: WhatsAppSimulator;
let app: RunningApp | undefined;
let phone: BaresipHandle | undefined;
let daemon: RtpengineDaemon | undefined;
let ended: EndedCallRecord[] = [];

async function startBridge(engine: 'embedded' | 'rtpengine'): Promise<RunningApp> {
  phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
  if (engine === 'rtpengine') daemon = await startRtpengine(randomMediaRange());
  ({ app } = await startLoopbackBridge(
    sim,
    {
      whatsapp: { phoneNumberIds: [PHONE_NUMBER_ID] },
      media: { engine, whatsappMediaTimeoutSec: MEDIA_TIMEOUT_SEC, ...(daemon ? { rtpengine: { ng: [daemon.ng], timeoutMs: 500 } } : {}) },
      rest: { routing: { default: phone.sipUri } },
    },
    createLogger({ level: 'silent' }),
  ));
  app.bridge.onCallEnded((r) => ended.push(r));
  return app;
}

/** A call answered by the agent, with audio reaching WhatsApp. */
async function answeredCall() {
  const call = await sim.userCalls({ userWaId: CALLER, toneHz: 1000 });
  await sim.graph.waitForAction((a) => a.action === 'accept' && a.callId === call.callId, 15_000);
  await phone!.events.waitFor('CALL_ESTABLISHED', 10_000);
  await call.peer.waitConnected(10_000);
  await waitFor(() => call.peer.stats.rtpIn > 25, { what: 'audio reaching WhatsApp', timeoutMs: 10_000 });
  return call;
}

describeWithPeers('watchdogs end both legs (simulator + baresip; embedded and rtpengine)', ['baresip', 'rtpengine'], () => {
  beforeAll(async () => {
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: '13175551301', accessToken: TOKEN, appSecret: SECRET });
  });

  afterEach(async () => {
    const [a, p, d] = [app, phone, daemon];
    [app, phone, daemon] = [undefined, undefined, undefined];
    ended = [];
    await a?.close();
    await Promise.all([p?.stop(), d?.stop()]);
  });

  afterAll(async () => {
    await sim?.close();
  });

  for (const engine of ['embedded', 'rtpengine'] as const) {
    it(`${engine}: WhatsApp's media stops mid-call with no terminate webhook → terminate and BYE within seconds`, async () => {
      await startBridge(engine);
      const call = await answeredCall();
      const stoppedAt = performance.now();
      call.peer.stopMedia(); // WhatsApp goes silent (a dead app, a lost network); no webhook follows
      await sim.graph.waitForAction((a) => a.action === 'terminate' && a.callId === call.callId, MEDIA_TIMEOUT_SEC * 1000 + 10_000);
      await phone!.events.waitFor('CALL_CLOSED', 10_000);
      await waitFor(() => ended.length === 1, { what: 'the call to end' });
      expect(ended[0]).toMatchObject({ waCallId: call.callId, label: 'whatsapp-media-timeout', whatsapp: 'terminate', sip: 'bye' });
      // Not before the timeout (a silent second is not a dead call), and not long after it.
      const tookMs = performance.now() - stoppedAt;
      expect(tookMs).toBeGreaterThanOrEqual(MEDIA_TIMEOUT_SEC * 1000 - 100);
      expect(tookMs).toBeLessThan(MEDIA_TIMEOUT_SEC * 1000 + 10_000);
      await waitFor(async () => (await app!.media.listSessions()).length === 0, { what: 'no media session left' });
    }, 60_000);
  }

  it('rtpengine killed mid-call → both legs end within seconds, with the cause', async () => {
    await startBridge('rtpengine');
    const call = await answeredCall();
    await daemon!.stop();
    await sim.graph.waitForAction((a) => a.action === 'terminate' && a.callId === call.callId, 15_000);
    await phone!.events.waitFor('CALL_CLOSED', 10_000);
    await waitFor(() => ended.length === 1, { what: 'the call to end' });
    expect(ended[0]).toMatchObject({ waCallId: call.callId, label: 'media-engine-dead', whatsapp: 'terminate', sip: 'bye' });
    // New calls are refused cleanly while no rtpengine answers: /readyz says why.
    const ready = await fetch(`${app!.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(JSON.stringify(await ready.json())).toMatch(/media/);
  }, 60_000);
});
