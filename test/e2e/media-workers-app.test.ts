/**
 * The bridge with its embedded media in two worker threads, on real peers: the WhatsApp
 * simulator → the bridge → baresip as the agent. A worker dies mid-call (terminated, as a crash
 * would end it): the call's both legs end within seconds (WhatsApp `terminate`, BYE to the
 * agent, cause media-engine-dead), /readyz shows the worker down then replaced, and the next
 * call carries audio on the replacement.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import type { EndedCallRecord } from '../../src/bridge/bridge.js';
import { EmbeddedWorkerPool } from '../../src/media/embedded/index.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { startLoopbackBridge } from '../support/bridge-config.js';
import { describeWithPeers } from '../support/peers.js';
import { expectNoSessionLeft } from '../support/sessions.js';
import { waitFor } from '../support/wait.js';

const PHONE_NUMBER_ID = '436666719526795';
const SECRET = 'mw-secret';
const TOKEN = 'mw-token';

let sim: WhatsAppSimulator;
let app: RunningApp;
let phone: BaresipHandle;
const ended: EndedCallRecord[] = [];

async function readyz(): Promise<{ status: number; media: { detail?: { workersUp?: number; sessionsPerWorker?: Array<number | null> } } }> {
  const r = await fetch(`${app.url}/readyz`);
  return { status: r.status, ...((await r.json()) as { media: { detail?: { workersUp?: number } } }) };
}

/** A call answered by the agent, with audio reaching WhatsApp. */
async function answeredCall(caller: string) {
  const call = await sim.userCalls({ userWaId: caller, toneHz: 1000 });
  await sim.graph.waitForAction((a) => a.action === 'accept' && a.callId === call.callId, 15_000);
  await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
  await call.peer.waitConnected(10_000);
  await waitFor(() => call.peer.stats.rtpIn > 25, { what: 'audio reaching WhatsApp', timeoutMs: 10_000 });
  return call;
}

describeWithPeers('the bridge with its media in worker threads (simulator + baresip)', ['baresip'], () => {
  beforeAll(async () => {
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: '13175551305', accessToken: TOKEN, appSecret: SECRET });
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    ({ app } = await startLoopbackBridge(
      sim,
      {
        whatsapp: { phoneNumberIds: [PHONE_NUMBER_ID] },
        media: { whatsappMediaTimeoutSec: 20 },
        embedded: { workers: 2 },
        rest: { routing: { default: phone.sipUri } },
      },
      createLogger({ level: 'silent' }),
    ));
    app.bridge.onCallEnded((r) => ended.push(r));
  });

  afterAll(async () => {
    await app?.close();
    await phone?.stop();
    await sim?.close();
  });

  it('a worker dies mid-call → terminate and BYE within seconds; its replacement carries the next call', async () => {
    const pool = app.media;
    expect(pool).toBeInstanceOf(EmbeddedWorkerPool);
    if (!(pool instanceof EmbeddedWorkerPool)) return;
    expect((await readyz()).media.detail?.workersUp).toBe(2);

    const call = await answeredCall('5511987650011');
    const worker = pool.placement().get(call.callId);
    expect(worker, 'the call has a media session on a worker').toBeDefined();
    expect((await pool.workerSessions())[worker!]!.sessions).toEqual([call.callId]);

    const killedThread = (await pool.workerSessions())[worker!]!.threadId;
    const t0 = performance.now();
    await pool.killWorker(worker!);
    await sim.graph.waitForAction((a) => a.action === 'terminate' && a.callId === call.callId, 10_000);
    await phone.events.waitFor('CALL_CLOSED', 10_000);
    await waitFor(() => ended.length === 1, { what: 'the call to end' });
    expect(ended[0]).toMatchObject({ waCallId: call.callId, label: 'media-engine-dead', whatsapp: 'terminate', sip: 'bye' });
    expect(performance.now() - t0, 'both legs ended within seconds').toBeLessThan(10_000);

    // The pool itself first (a worker that ran under 30 s is replaced after a back-off of 1 s),
    // then /readyz (its probe is cached for 1 s, so it may still show the old worker).
    await waitFor(async () => { const w = (await pool.workerSessions())[worker!]!; return w.up && w.threadId !== killedThread; }, { what: 'the replacement worker up' });
    await waitFor(async () => (await readyz()).media.detail?.workersUp === 2, { what: '/readyz to show the replacement worker up' });
    const next = await answeredCall('5511987650012');
    expect(pool.placement().get(next.callId)).toBe(worker); // the emptier worker: the replacement
    await next.hangUp();
    await phone.events.waitFor('CALL_CLOSED', 10_000);
    await waitFor(() => ended.length === 2, { what: 'the second call to end' });
    expect(ended[1]).toMatchObject({ waCallId: next.callId, whatsapp: 'none' });
    await expectNoSessionLeft(app.media);
  }, 90_000);
});
