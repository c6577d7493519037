import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { RunningApp } from '../../src/app.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { freeDualPort, freePort } from '../harness/ports.js';
import { randomMediaRange } from '../harness/rtpengine.js';
import { startRedis, type RedisDaemon } from '../harness/redis.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';
import { APP_SECRET, clusterSection, logged, spawnInstance, startSurvivor, type ProcessInstance } from './cluster-process.js';

/**
 * Instance A is the real process (`node --import tsx src/main.ts`) and is killed with SIGKILL
 * mid-call; instance B (in this process) must end A's call on both sides from what A kept in
 * Redis. baresip (127.0.0.2) is the PBX, the simulator plays WhatsApp.
 */
const PNID = '436666719526789';

let redis: RedisDaemon;
let sim: WhatsAppSimulator;
let phone: BaresipHandle;
let b: RunningApp;
const bLogs: string[] = [];
let a: ProcessInstance | undefined;

describeWithPeers('a cluster instance killed with SIGKILL mid-call (real process + redis + baresip)', ['baresip'], () => {
  beforeAll(async () => {
    redis = await startRedis();
    sim = await WhatsAppSimulator.start({ phoneNumberId: PNID, businessNumber: '13175551399', accessToken: 'tok', appSecret: APP_SECRET });
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
  }, 30_000);

  afterAll(async () => {
    // Each step on its own: one failing must not leave the daemons after it running.
    const steps: Array<() => unknown> = [() => a?.cleanup(), () => b?.close(), () => phone?.stop(), () => sim?.close(), () => redis?.stop()];
    for (const step of steps) await Promise.resolve().then(step).catch((err: unknown) => process.stderr.write(`cleanup: ${String(err)}\n`));
  });

  it('B ends the killed instance\'s call: WhatsApp terminate and BYE to the PBX, within seconds; its /metrics show the takeover', async () => {
    const [internalA, internalB] = [await freePort('127.0.0.1', 'tcp'), await freePort('127.0.0.1', 'tcp')];
    const mediaA = randomMediaRange();
    const bMin = mediaA.portMin >= 39_000 ? mediaA.portMin - 1000 : mediaA.portMin + 1000;
    const common = { whatsapp: { provider: 'meta', graphBaseUrl: sim.graphUrl }, routing: { default: phone.sipUri } };
    a = await spawnInstance({
      ...common,
      sip: { udp: { host: '127.0.0.1', port: await freeDualPort('127.0.0.1') }, tcp: null },
      media: { engine: 'embedded', embedded: { rtpHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...mediaA } },
      cluster: clusterSection({ redisUrl: redis.url, instanceId: 'killed-a', internalPort: internalA }),
    });
    b = await startSurvivor(
      {
        ...common,
        sip: { udp: { host: '127.0.0.1', port: await freeDualPort('127.0.0.1') }, tcp: null },
        media: { engine: 'embedded', embedded: { rtpHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], portMin: bMin, portMax: bMin + 999 } },
        cluster: clusterSection({ redisUrl: redis.url, instanceId: 'survivor-b', internalPort: internalB }),
      },
      bLogs,
    );

    sim.setWebhookUrl(`http://127.0.0.1:${a.httpPort}/webhook`);
    const call = await sim.userCalls({ userWaId: '5511987654321' });
    await call.waitFor('accept');
    await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
    const r = new Redis(redis.url);
    try {
      // Bounded wait: A writes its confirmed dialog at its next heartbeat.
      await waitFor(async () => (await r.hlen('wsb:dlg:killed-a')) === 1, { what: "A's dialog in Redis" });
    } finally {
      r.disconnect();
    }
    // Bounded wait: B's sweep (every 500 ms) has counted both members alive.
    await waitFor(async () => /wasip_cluster_members_alive 2\b/.test(await (await fetch(`${b.url}/metrics`)).text()), { what: 'B to see two members alive' });

    const killedAt = performance.now();
    a.kill();
    await phone.events.waitFor('CALL_CLOSED', 10_000);
    await call.waitFor('terminate', 10_000);
    const tookMs = performance.now() - killedAt;
    expect(tookMs).toBeLessThan(6000);
    const ended = await waitFor(() => logged(bLogs, "cluster: a dead instance's call ended by this survivor").filter((l) => l.waCallId === call.callId).at(0), { what: "B's takeover outcome" });
    expect(ended.outcome).toEqual(['whatsapp terminated', 'BYE answered 200', 'media ran in the dead instance (embedded engine): lost with it']);
    expect(ended.reason).toBe('confirmed');
    expect(call.actions()).toEqual(['pre_accept', 'accept', 'terminate']);

    // The survivor's /metrics: one call taken over (confirmed), the latency observed, one member left.
    const metrics = await waitFor(async () => {
      const t = await (await fetch(`${b.url}/metrics`)).text();
      return /wasip_cluster_takeover_seconds_count 1\b/.test(t) && /wasip_cluster_members_alive 1\b/.test(t) ? t : undefined;
    }, { what: "B's metrics after the takeover" });
    expect(metrics).toMatch(/wasip_cluster_takeovers_total\{reason="confirmed"\} 1\b/);
    const sum = Number(/wasip_cluster_takeover_seconds_sum ([\d.]+)/.exec(metrics)?.[1]);
    // From A's last lease renewal (at most one heartbeat before the kill) to the call ended.
    expect(sum).toBeGreaterThan(1);
    expect(sum).toBeLessThan(6.5);
    expect(metrics).toMatch(/wasip_cluster_lease_renewals_failed_total 0\b/);
    process.stderr.write(`cluster SIGKILL: call ended on both sides ${Math.round(tookMs)} ms after the kill; B's takeover histogram: ${sum.toFixed(2)} s from A's last renewal (lease 2000 ms, heartbeat 500 ms)\n`);
  });
});
