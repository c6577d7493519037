import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app.js';
import { buildConfig } from '../../src/config/load.js';
import type { EndedCallRecord } from '../../src/bridge/bridge.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { freeDualPort, freePort } from '../harness/ports.js';
import { randomMediaRange } from '../harness/rtpengine.js';
import { startRedis, type RedisDaemon } from '../harness/redis.js';
import { describeWithPeers } from '../support/peers.js';
import { closeAfterLeakCheck } from '../support/sessions.js';
import { waitFor } from '../support/wait.js';
import { Redis } from 'ioredis';

/**
 * Two bridge instances in one process behind "one webhook URL", sharing call state in a real
 * redis-server: the WhatsApp simulator sends each webhook to whichever instance the test names
 * (a load balancer's choice), baresip (127.0.0.2) is the PBX. Embedded media.
 */

const PHONE_NUMBER_ID = '436666719526789';
const BUSINESS = '13175551399';
const CALLER = '5511987654321';
const SECRET = 'e2e-app-secret';
const TOKEN = 'e2e-access-token';
const CLUSTER_SECRET = 'e2e-cluster-secret-0123456789';

interface Instance {
  app: RunningApp;
  /** Left as a crash would: its calls and media are not checked for leaks, only freed. */
  abandoned?: boolean;
  ended: EndedCallRecord[];
  logs: string[];
  sipPort: number;
}

let redis: RedisDaemon;
let sim: WhatsAppSimulator;
let phone: BaresipHandle | undefined;
let instances: Instance[] = [];

async function startInstance(name: string, media: { portMin: number; portMax: number }, over: Record<string, unknown> = {}): Promise<Instance> {
  const logs: string[] = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => (logs.push(s), true) } as unknown as NodeJS.WritableStream });
  const sipPort = await freeDualPort('127.0.0.1');
  const internalPort = await freePort('127.0.0.1', 'tcp');
  const config = buildConfig({
    http: { host: '127.0.0.1', port: 0 },
    whatsapp: { provider: 'meta', graphBaseUrl: sim.graphUrl, graphVersion: 'v23.0', accessToken: TOKEN, appSecret: SECRET, verifyToken: 'vt' },
    sip: { udp: { host: '127.0.0.1', port: sipPort }, tcp: { host: '127.0.0.1', port: sipPort } },
    media: { engine: 'embedded', embedded: { rtpHost: '127.0.0.1', rtpAdvertiseHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...media } },
    routing: { default: phone!.sipUri },
    cluster: {
      redisUrl: redis.url,
      instanceId: name,
      internal: { host: '127.0.0.1', port: internalPort },
      advertiseUrl: `http://127.0.0.1:${internalPort}`,
      secret: CLUSTER_SECRET,
      heartbeatMs: 500,
      leaseMs: 2000,
    },
    ...over,
  });
  const app = await startApp(config, log);
  const inst: Instance = { app, ended: [], logs, sipPort };
  app.bridge.onCallEnded((r) => inst.ended.push(r));
  instances.push(inst);
  return inst;
}

function mediaRanges(): Array<{ portMin: number; portMax: number }> {
  const a = randomMediaRange();
  const bMin = a.portMin >= 39_000 ? a.portMin - 1000 : a.portMin + 1000;
  return [a, { portMin: bMin, portMax: bMin + 999 }];
}

const logged = (i: Instance, msg: string) => i.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);

describeWithPeers('two bridge instances sharing call state in Redis (baresip + simulator)', ['baresip'], () => {
  beforeAll(async () => {
    redis = await startRedis();
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: BUSINESS, accessToken: TOKEN, appSecret: SECRET });
  }, 30_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') for (const i of instances) process.stderr.write(i.logs.slice(-40).join(''));
    const [all, p] = [instances, phone];
    [instances, phone] = [[], undefined];
    for (const i of all) await (i.abandoned ? i.app.close() : closeAfterLeakCheck(i.app, []));
    await p?.stop();
  });

  afterAll(async () => {
    await sim?.close();
    await redis?.stop();
  });

  it('(a) connect on A, its redelivery and the terminate on B: one INVITE, B forwards, A ends the call cleanly', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    const [rangeA, rangeB] = mediaRanges();
    const a = await startInstance('bridge-a', rangeA!);
    const b = await startInstance('bridge-b', rangeB!);

    // The connect webhook lands on A; keep it to redeliver it to B (WhatsApp delivers at least once).
    sim.setWebhookUrl(`${a.app.url}/webhook`);
    const sender = sim.webhooks;
    let connectSpec: Parameters<typeof sender.userCall>[0] | undefined;
    const userCall = sender.userCall.bind(sender);
    sender.userCall = (spec, sign) => ((connectSpec = spec), userCall(spec, sign));
    const call = await sim.userCalls({ userWaId: CALLER, userName: 'Ana Souza' });
    expect(call.webhookStatus).toBe(200);
    await call.waitFor('accept');
    await phone.events.waitFor('CALL_ESTABLISHED');
    await waitFor(() => a.app.bridge.call(call.callId)?.state === 'active', { what: 'the call to be active on A' });

    // From here the load balancer sends WhatsApp's webhooks to B.
    sim.setWebhookUrl(`${b.app.url}/webhook`);
    expect((await sim.webhooks.userCall({ ...connectSpec!, callId: call.callId })).status).toBe(200);
    // Bounded wait: B must say it dropped the redelivery as a cluster-wide duplicate.
    await waitFor(() => logged(b, 'duplicate webhook event ignored (seen by the cluster)').some((l) => l.waCallId === call.callId), { what: 'B to drop the redelivered connect' });

    expect(await call.hangUp()).toBe(200);
    const closed = await phone.events.waitFor('CALL_CLOSED', 5000);
    expect(closed.param ?? '').toMatch(/peer|BYE|reset/i);
    await waitFor(() => a.ended.length === 1, { timeoutMs: 5000, what: 'A to end the call' });
    expect(a.ended[0]).toMatchObject({ waCallId: call.callId, label: 'caller-hung-up', sip: 'bye', whatsapp: 'none' });
    expect(logged(b, 'webhook events forwarded to the owning instance')).toEqual([expect.objectContaining({ owner: 'bridge-a', waCallIds: [call.callId], events: ['terminate'] })]);

    // One INVITE reached the phone, B never held the call, WhatsApp got one pre_accept and accept.
    // (baresip auto-answers without CALL_INCOMING: a second INVITE would be a second established call.)
    expect(phone.events.all.filter((e) => e.type === 'CALL_ESTABLISHED')).toHaveLength(1);
    expect(phone.events.all.filter((e) => e.type === 'CALL_CLOSED')).toHaveLength(1);
    expect(b.ended).toEqual([]);
    expect(b.app.bridge.activeCalls).toBe(0);
    expect(call.actions()).toEqual(['pre_accept', 'accept']);
  });

  it('(b) instance A dies mid-call (lease not renewed, listeners gone): B ends its call on both sides within seconds', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    const [rangeA, rangeB] = mediaRanges();
    const a = await startInstance('bridge-a2', rangeA!);
    const b = await startInstance('bridge-b2', rangeB!);
    sim.setWebhookUrl(`${a.app.url}/webhook`);
    const call = await sim.userCalls({ userWaId: CALLER });
    await call.waitFor('accept');
    await phone.events.waitFor('CALL_ESTABLISHED');
    await waitFor(() => a.app.bridge.call(call.callId)?.state === 'active', { what: 'the call to be active on A' });
    const sipCallId = a.app.bridge.call(call.callId)!.sipCallId!;
    // Bounded wait: A writes its confirmed dialog to Redis at its next heartbeat (500 ms).
    const r = new Redis(redis.url);
    try {
      await waitFor(async () => (await r.hget('wsb:dlg:bridge-a2', sipCallId)) !== null, { what: "A's dialog in Redis" });
    } finally {
      r.disconnect();
    }

    a.abandoned = true;
    const diedAt = performance.now();
    await a.app.abandon();
    const closed = await phone.events.waitFor('CALL_CLOSED', 10_000);
    await call.waitFor('terminate', 10_000);
    const tookMs = performance.now() - diedAt;
    expect(closed.param ?? '').toMatch(/peer|BYE|reset/i);
    // The lease is 2 s and B looks every 500 ms: the call ends within seconds, not at a timeout.
    expect(tookMs).toBeLessThan(6000);
    // Bounded wait: B logs the outcome once all three steps are done (the BYE's 200 may come after baresip's event).
    const ended = await waitFor(() => { const l = logged(b, "cluster: a dead instance's call ended by this survivor"); return l.length ? l : undefined; }, { what: "B's takeover outcome", timeoutMs: 5000 });
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ deadInstance: 'bridge-a2', waCallId: call.callId, sipCallId });
    expect(ended[0]!.outcome).toEqual(['whatsapp terminated', 'BYE answered 200', 'media ran in the dead instance (embedded engine): lost with it']);
    expect(call.actions()).toEqual(['pre_accept', 'accept', 'terminate']);
    process.stderr.write(`cluster takeover: call ended on both sides ${Math.round(tookMs)} ms after instance A stopped (lease 2000 ms, heartbeat 500 ms)\n`);
  });

  it('(c) outbound: the agent\'s INVITE reaches B, WhatsApp\'s webhooks reach A: A forwards them to B by the opaque; one call, a clean end', async () => {
    const outbound = { outbound: { enabled: true, allowFrom: ['127.0.0.2/32'], dialPrefix: '9', phoneNumberId: PHONE_NUMBER_ID, ringTimeoutSec: 20 } };
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    const [rangeA, rangeB] = mediaRanges();
    const a = await startInstance('bridge-a3', rangeA!, outbound);
    const b = await startInstance('bridge-b3', rangeB!, outbound);
    sim.setWebhookUrl(`${a.app.url}/webhook`);
    const user = sim.user(CALLER, { kind: 'answer', afterMs: 300, toneHz: 1000 });
    await phone.dial(`sip:9+${CALLER}@127.0.0.1:${b.sipPort}`);
    await user.waitForConnect(10_000);
    await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
    await user.peer!.waitConnected(5000);

    expect(await user.hangUp()).toBe(200);
    await phone.events.waitFor('CALL_CLOSED', 5000);
    await waitFor(() => b.ended.length === 1, { timeoutMs: 5000, what: 'B to end the call' });
    expect(b.ended[0]).toMatchObject({ direction: 'outbound', sip: 'bye' });
    expect(a.ended).toEqual([]);
    // Every webhook of the call (the connect with the answer, the terminate) went A → B.
    const forwarded = logged(a, 'webhook events forwarded to the owning instance').flatMap((l) => l.events as string[]);
    expect(forwarded).toContain('connect');
    expect(forwarded).toContain('terminate');
    expect(logged(a, 'webhook events forwarded to the owning instance').every((l) => l.owner === 'bridge-b3')).toBe(true);
    expect(phone.events.all.filter((e) => e.type === 'CALL_ESTABLISHED')).toHaveLength(1);
  });
});
