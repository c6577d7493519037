import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { startRedis, type RedisDaemon } from '../harness/redis.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';
import { APP_SECRET, cleanUp, dumpPair, logged, startPair, type ProcessInstance } from './cluster-process.js';

/**
 * Two bridge processes behind "one webhook URL", sharing call state in a real redis-server: A
 * is the real process (`src/main.ts`), B runs in the test's process. The simulator sends each
 * webhook to whichever instance the test names (a load balancer's choice); baresip (127.0.0.2)
 * is the PBX and the agent. (cluster.test.ts runs the same flows with both instances in one
 * process, where their ended-call records can be read directly.)
 */
const PNID = '436666719526789';
const CALLER = '5511987654321';

let redis: RedisDaemon;
let sim: WhatsAppSimulator;
let phone: BaresipHandle | undefined;
let a: ProcessInstance | undefined;
let b: RunningApp | undefined;
let bLogs: string[] = [];

async function twoInstances(tag: string, outbound: boolean): Promise<{ idA: string; idB: string; httpA: string; sipB: number }> {
  const section = outbound ? { enabled: true, allowFrom: ['127.0.0.2/32'], dialPrefix: '9', phoneNumberId: PNID, ringTimeoutSec: 20 } : undefined;
  const pair = await startPair({ redisUrl: redis.url, graphUrl: sim.graphUrl, pbxUri: phone!.sipUri, tag: `proc-${tag}`, ...(section ? { outbound: section } : {}) });
  [a, b, bLogs] = [pair.a, pair.b, pair.bLogs];
  return { ...pair, httpA: `http://127.0.0.1:${pair.a.httpPort}` };
}

/** A's pino lines (its stdout) with message `msg`. */
function loggedByA(msg: string): Array<Record<string, unknown>> {
  return a!
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

describeWithPeers('two bridge processes sharing call state in Redis (real process + redis + baresip + simulator)', ['baresip'], () => {
  beforeAll(async () => {
    redis = await startRedis();
    sim = await WhatsAppSimulator.start({ phoneNumberId: PNID, businessNumber: '13175551399', accessToken: 'tok', appSecret: APP_SECRET });
  }, 30_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') dumpPair(a, bLogs);
    await cleanUp([() => a?.cleanup(), () => b?.close(), () => phone?.stop()]);
    [a, b, phone] = [undefined, undefined, undefined];
  });

  afterAll(async () => {
    await sim?.close();
    await redis?.stop();
  });

  it('inbound: the connect reaches process A, its redelivery and the terminate reach B: one INVITE, B forwards, A sends the BYE', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    const { idA, httpA } = await twoInstances('in', false);

    sim.setWebhookUrl(`${httpA}/webhook`);
    const sender = sim.webhooks;
    let connectSpec: Parameters<typeof sender.userCall>[0] | undefined;
    const userCall = sender.userCall.bind(sender);
    sender.userCall = (spec, sign) => ((connectSpec = spec), userCall(spec, sign));
    const call = await sim.userCalls({ userWaId: CALLER });
    await call.waitFor('accept');
    await phone.events.waitFor('CALL_ESTABLISHED', 10_000);

    // From here the load balancer sends WhatsApp's webhooks to B.
    sim.setWebhookUrl(`${b!.url}/webhook`);
    expect((await sim.webhooks.userCall({ ...connectSpec!, callId: call.callId })).status).toBe(200);
    // Bounded wait: B must say it dropped the redelivery as a cluster-wide duplicate.
    await waitFor(() => logged(bLogs, 'duplicate webhook event ignored (seen by the cluster)').some((l) => l.waCallId === call.callId), { what: 'B to drop the redelivered connect' });

    expect(await call.hangUp()).toBe(200);
    await phone.events.waitFor('CALL_CLOSED', 10_000);
    // Bounded wait: A (the other process) logs the end once its teardown is done.
    await waitFor(() => loggedByA('call ended').some((l) => l.waCallId === call.callId), { what: 'A to end the call' });
    expect(logged(bLogs, 'webhook events forwarded to the owning instance')).toEqual([expect.objectContaining({ owner: idA, waCallIds: [call.callId], events: ['terminate'] })]);
    expect(phone.events.all.filter((e) => e.type === 'CALL_ESTABLISHED')).toHaveLength(1);
    expect(b!.bridge.activeCalls).toBe(0);
    expect(call.actions()).toEqual(['pre_accept', 'accept']);
  });

  it("outbound: the agent's INVITE reaches B, WhatsApp's webhooks reach process A: A forwards them to B; one call, a clean end", async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    const { idB, httpA, sipB } = await twoInstances('out', true);
    sim.setWebhookUrl(`${httpA}/webhook`);
    const user = sim.user(CALLER, { kind: 'answer', afterMs: 300, toneHz: 1000 });
    await phone.dial(`sip:9+${CALLER}@127.0.0.1:${sipB}`);
    await user.waitForConnect(10_000);
    await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
    await user.peer!.waitConnected(5000);

    expect(await user.hangUp()).toBe(200);
    await phone.events.waitFor('CALL_CLOSED', 10_000);
    // Every webhook of the call (the connect with the answer, the terminate) went A → B.
    await waitFor(() => loggedByA('webhook events forwarded to the owning instance').flatMap((l) => l.events as string[]).includes('terminate'), { what: 'A to forward the terminate' });
    const forwards = loggedByA('webhook events forwarded to the owning instance');
    expect(forwards.flatMap((l) => l.events as string[])).toContain('connect');
    expect(forwards.every((l) => l.owner === idB)).toBe(true);
    expect(loggedByA('call ended')).toEqual([]);
    expect(phone.events.all.filter((e) => e.type === 'CALL_ESTABLISHED')).toHaveLength(1);
    await waitFor(() => b!.bridge.activeCalls === 0, { what: 'B to end the call' });
  });
});
