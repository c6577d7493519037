/**
 * The embedded engine in worker threads (src/media/embedded/worker-pool.ts), end to end with
 * real peers: the werift WhatsApp simulator peer <-> a worker's EmbeddedEngine <-> a plain RTP
 * endpoint (PCMU). Calls spread over two workers carry tones both ways; a worker killed mid-call
 * fails its calls with `engine-dead` within seconds, frees their ports, and its replacement
 * takes the next call.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'sdp-transform';
import type { EmbeddedWorkerPool } from '../../src/media/embedded/index.js';
import { MediaError, type MediaFailure, type MediaSession } from '../../src/media/types.js';
import { WhatsAppMediaPeer } from '../../src/simulator/webrtc-peer.js';
import { createLogger } from '../../src/util/log.js';
import { portFree } from '../harness/ports.js';
import { RtpEndpoint } from '../harness/rtp-endpoint.js';
import { expectTwoWayAudio } from '../support/audio.js';
import { loopbackWorkerPool } from '../support/embedded.js';
import { waitFor } from '../support/wait.js';

interface Call {
  id: string;
  peer: WhatsAppMediaPeer;
  pbx: RtpEndpoint;
  session: MediaSession;
  ports: number[];
  failures: MediaFailure[];
}

async function setupCall(pool: EmbeddedWorkerPool, id: string): Promise<Call> {
  const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
  const pbx = await RtpEndpoint.create({ codec: 'PCMU', toneHz: 440 });
  const session = pool.createSession(id);
  const failures: MediaFailure[] = [];
  session.onFailure((f) => failures.push(f));
  const plainOffer = await session.offerFromWhatsApp(await peer.createOffer());
  const waAnswer = await session.answerFromPbx(pbx.answer(plainOffer));
  await peer.applyAnswer(waAnswer);
  await peer.waitConnected(15_000);
  const pm = parse(plainOffer).media[0]!;
  const ice = parse(waAnswer).media[0]!.candidates!.map((c) => c.port);
  return { id, peer, pbx, session, ports: [pm.port, pm.port + 1, ...ice], failures };
}

async function hangUp(c: Call): Promise<void> {
  await c.peer.close();
  await c.pbx.close();
  await c.session.close();
}

describe('the embedded engine in worker threads', () => {
  let pool: EmbeddedWorkerPool | undefined;
  const calls: Call[] = [];

  afterEach(async () => {
    for (const c of calls.splice(0)) await hangUp(c).catch(() => undefined);
    await pool?.close();
    pool = undefined;
  });

  it('four calls spread over two workers (2 + 2, each worker says so); tones cross both ways on each; logs name the call', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', destination: new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }) });
    pool = await loopbackWorkerPool(2, { logger });
    const stamp = Date.now();
    for (let i = 0; i < 4; i++) calls.push(await setupCall(pool, `workers-${i}-${stamp}`));

    const seen = await pool.workerSessions();
    expect(seen.map((w) => w.sessions.length)).toEqual([2, 2]);
    expect(new Set(seen.map((w) => w.threadId)).size, 'two distinct threads').toBe(2);
    expect(seen.every((w) => w.threadId > 0)).toBe(true);
    expect(new Set(seen.flatMap((w) => w.sessions))).toEqual(new Set(calls.map((c) => c.id)));

    for (const c of calls) await expectTwoWayAudio(c.pbx, c.peer, { pbxHears: 1000, peerHears: 440 });
    const live = await pool.sessionStats(calls[0]!.id);
    expect(live?.dtlsState).toBe('connected');
    expect(live?.waIn).toBeGreaterThan(0);

    // A worker's own log line, written by this thread's logger with the call's id and its level.
    const ownLine = lines.find((l) => l.includes(calls[0]!.id) && l.includes('WhatsApp leg connected (ICE + DTLS)'));
    const own = ownLine === undefined ? undefined : (JSON.parse(ownLine) as Record<string, unknown>);
    expect(own, 'the worker logged the leg up with its callId').toBeDefined();
    expect(ownLine!.match(/"engine":/g), 'each key once in the JSON line').toHaveLength(1);
    expect(own!.level).toBe(20);
    expect(own!.mediaWorker).toEqual(expect.any(Number));

    const first = calls[0]!;
    await hangUp(first);
    // mediaStats() after close(): the final counters came back with the close reply.
    const st = first.session.mediaStats!();
    expect(st.whatsapp.packetsIn).toBeGreaterThan(50);
    expect(st.pbx.packetsIn).toBeGreaterThan(50);
    expect(st.pbx.codec).toBe('PCMU');
    for (const c of calls.splice(0)) await hangUp(c);
    expect(await pool.listSessions()).toEqual([]);
    for (const p of first.ports) expect(await portFree('127.0.0.1', p), `port ${p} released`).toBe(true);
  });

  it("a worker's errors come back as MediaError with the engine's reason", async () => {
    pool = await loopbackWorkerPool(2);
    const s = pool.createSession(`errors-${Date.now()}`);
    const err = await s.answerFromPbx('v=0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MediaError);
    expect((err as MediaError).reason).toBe('no offer');
    const bad = await s.offerFromWhatsApp('not sdp at all').catch((e: unknown) => e);
    expect((bad as MediaError).reason).toBe('sdp');
    await s.close();
    expect(await pool.listSessions()).toEqual([]);
  });

  it('a worker that stops answering (no heartbeat for hangMs) is terminated: its call fails with engine-dead', async () => {
    // Heartbeats every 60 s against a 1.5 s hang limit: to the pool, every worker goes silent.
    pool = await loopbackWorkerPool(1, { statsIntervalMs: 60_000, hangMs: 1500 });
    const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
    try {
      const s = pool.createSession(`hung-${Date.now()}`);
      const failures: MediaFailure[] = [];
      s.onFailure((f) => failures.push(f));
      await s.offerFromWhatsApp(await peer.createOffer());
      const t0 = performance.now();
      await waitFor(() => failures.length > 0, { what: 'engine-dead for the silent worker’s call', timeoutMs: 8000 });
      expect(failures[0]).toEqual({ kind: 'engine-dead', detail: expect.stringContaining('stopped answering') });
      expect(performance.now() - t0).toBeLessThan(5000);
      await s.close();
    } finally {
      await peer.close();
    }
  });

  it('a worker killed mid-call: its call fails with engine-dead within seconds, its ports are freed, the other call carries on, the replacement takes a new call', async () => {
    pool = await loopbackWorkerPool(2);
    const stamp = Date.now();
    calls.push(await setupCall(pool, `kill-a-${stamp}`), await setupCall(pool, `kill-b-${stamp}`));
    const [a, b] = calls as [Call, Call];
    const placed = pool.placement();
    const victim = placed.get(a.id)!;
    expect(placed.get(b.id)).not.toBe(victim);
    const before = await pool.workerSessions();
    const oldThread = before[victim]!.threadId;

    const t0 = performance.now();
    await pool.killWorker(victim);
    await waitFor(() => a.failures.length > 0, { what: 'engine-dead on the killed worker’s call', timeoutMs: 5000 });
    expect(a.failures).toEqual([{ kind: 'engine-dead', detail: expect.stringContaining('exited') }]);
    expect(performance.now() - t0).toBeLessThan(5000);
    const late = await a.session.offerFromPbx('v=0').catch((e: unknown) => e);
    expect((late as MediaError).reason).toBe('engine-dead');
    for (const p of a.ports) expect(await portFree('127.0.0.1', p), `port ${p} of the dead worker released`).toBe(true);

    // The other worker's call is untouched.
    expect(b.failures).toEqual([]);
    await expectTwoWayAudio(b.pbx, b.peer, { pbxHears: 1000, peerHears: 440 });

    await waitFor(async () => (await pool!.readiness()).detail?.workersUp === 2, { what: 'the replacement worker to be up' });
    const c = await setupCall(pool, `kill-c-${stamp}`);
    calls.push(c);
    const after = await pool.workerSessions();
    expect(after[victim]!.threadId).not.toBe(oldThread);
    expect(after[victim]!.sessions).toEqual([c.id]);
    await expectTwoWayAudio(c.pbx, c.peer, { pbxHears: 1000, peerHears: 440 });
    await a.session.close(); // idempotent on a dead session
  });
});
