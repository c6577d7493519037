import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startApp, type RunningApp } from '../../src/app.js';
import { buildConfig } from '../../src/config/load.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { freeDualPort, freePort } from '../harness/ports.js';
import { randomMediaRange } from '../harness/rtpengine.js';
import { startRedis, type RedisDaemon } from '../harness/redis.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

/**
 * Instance A is the real process (`node --import tsx src/main.ts`) and is killed with SIGKILL
 * mid-call; instance B (in this process) must end A's call on both sides from what A kept in
 * Redis. baresip (127.0.0.2) is the PBX, the simulator plays WhatsApp.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const PNID = '436666719526789';
const SECRET = 'kill-app-secret';
const CLUSTER_SECRET = 'kill-cluster-secret-0123456789';

let redis: RedisDaemon;
let sim: WhatsAppSimulator;
let phone: BaresipHandle;
let b: RunningApp;
const bLogs: string[] = [];
let child: ChildProcess | undefined;
let dir: string | undefined;

describeWithPeers('a cluster instance killed with SIGKILL mid-call (real process + redis + baresip)', ['baresip'], () => {
  beforeAll(async () => {
    redis = await startRedis();
    sim = await WhatsAppSimulator.start({ phoneNumberId: PNID, businessNumber: '13175551399', accessToken: 'tok', appSecret: SECRET });
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
  }, 30_000);

  afterAll(async () => {
    // Each step on its own: one failing must not leave the daemons after it running.
    const steps: Array<() => unknown> = [
      () => child?.pid && child.exitCode === null && child.signalCode === null && process.kill(child.pid, 'SIGKILL'),
      () => b?.close(),
      () => phone?.stop(),
      () => sim?.close(),
      () => redis?.stop(),
      () => dir && rmSync(dir, { recursive: true, force: true }),
    ];
    for (const step of steps) await Promise.resolve().then(step).catch((err: unknown) => process.stderr.write(`cleanup: ${String(err)}\n`));
  });

  it('B ends the killed instance\'s call: WhatsApp terminate and BYE to the PBX, within seconds', async () => {
    const [httpA, internalA, internalB] = [await freePort('127.0.0.1', 'tcp'), await freePort('127.0.0.1', 'tcp'), await freePort('127.0.0.1', 'tcp')];
    const sipA = await freeDualPort('127.0.0.1');
    const mediaA = randomMediaRange();
    const bMin = mediaA.portMin >= 39_000 ? mediaA.portMin - 1000 : mediaA.portMin + 1000;
    const cluster = (id: string, port: number) => ({ redisUrl: redis.url, instanceId: id, internal: { host: '127.0.0.1', port }, advertiseUrl: `http://127.0.0.1:${port}`, heartbeatMs: 500, leaseMs: 2000 });
    dir = mkdtempSync(join(tmpdir(), 'wa-cluster-kill-'));
    writeFileSync(
      join(dir, 'a.json'),
      JSON.stringify({
        http: { host: '127.0.0.1', port: httpA },
        whatsapp: { provider: 'meta', graphBaseUrl: sim.graphUrl },
        sip: { udp: { host: '127.0.0.1', port: sipA }, tcp: null },
        media: { engine: 'embedded', embedded: { rtpHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...mediaA } },
        routing: { default: phone.sipUri },
        cluster: cluster('killed-a', internalA),
      }),
    );
    let out = '';
    child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, WA_SIP_BRIDGE_CONFIG: join(dir, 'a.json'), WA_ACCESS_TOKEN: 'tok', WA_APP_SECRET: SECRET, WA_VERIFY_TOKEN: 'vt', WA_SIP_BRIDGE_CLUSTER_SECRET: CLUSTER_SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const log = createLogger({ level: 'info', destination: { write: (s: string) => (bLogs.push(s), true) } as unknown as NodeJS.WritableStream });
    b = await startApp(
      buildConfig({
        http: { host: '127.0.0.1', port: 0 },
        whatsapp: { provider: 'meta', graphBaseUrl: sim.graphUrl, accessToken: 'tok', appSecret: SECRET, verifyToken: 'vt' },
        sip: { udp: { host: '127.0.0.1', port: await freeDualPort('127.0.0.1') }, tcp: null },
        media: { engine: 'embedded', embedded: { rtpHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], portMin: bMin, portMax: bMin + 999 } },
        routing: { default: phone.sipUri },
        cluster: { ...cluster('survivor-b', internalB), secret: CLUSTER_SECRET },
      }),
      log,
    );
    // Bounded wait: A starts up (tsx compiles on the fly; slow on a busy machine).
    await waitFor(async () => (await fetch(`http://127.0.0.1:${httpA}/readyz`).catch(() => undefined))?.status === 200, { what: `A ready:\n${out.slice(-3000)}`, timeoutMs: 60_000 });

    sim.setWebhookUrl(`http://127.0.0.1:${httpA}/webhook`);
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

    const killedAt = performance.now();
    process.kill(child.pid!, 'SIGKILL');
    await phone.events.waitFor('CALL_CLOSED', 10_000);
    await call.waitFor('terminate', 10_000);
    const tookMs = performance.now() - killedAt;
    expect(tookMs).toBeLessThan(6000);
    const ended = await waitFor(() => bLogs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "cluster: a dead instance's call ended by this survivor" && l.waCallId === call.callId).at(0), { what: "B's takeover outcome" });
    expect(ended.outcome).toEqual(['whatsapp terminated', 'BYE answered 200', 'media ran in the dead instance (embedded engine): lost with it']);
    expect(call.actions()).toEqual(['pre_accept', 'accept', 'terminate']);
    process.stderr.write(`cluster SIGKILL: call ended on both sides ${Math.round(tookMs)} ms after the kill (lease 2000 ms, heartbeat 500 ms)\n`);
  });
});
