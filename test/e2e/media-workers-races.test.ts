/**
 * The embedded engine in worker threads under the races production meets: a call hung up while
 * its offer is still being made (nothing may stay behind in the worker), a worker that keeps
 * dying right after it comes up (the restarts must back off, not spin), and the pool closed twice.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedWorkerPool } from '../../src/media/embedded/index.js';
import { silentLogger } from '../../src/util/log.js';
import { MediaError, type MediaFailure } from '../../src/media/types.js';
import { WhatsAppMediaPeer } from '../../src/simulator/webrtc-peer.js';
import { RtpEndpoint } from '../harness/rtp-endpoint.js';
import { loopbackEmbeddedEngine, loopbackWorkerPool } from '../support/embedded.js';
import { waitFor } from '../support/wait.js';

/** UDP sockets bound on 127.0.0.1 in [lo, hi], from the kernel's table (looking takes no port). */
function boundIn([lo, hi]: [number, number]): number {
  let n = 0;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const local = line.trim().split(/\s+/)[1];
    if (!local?.startsWith('0100007F:')) continue;
    const port = parseInt(local.slice(9), 16);
    if (port >= lo && port <= hi) n++;
  }
  return n;
}

describe('worker pool races', () => {
  let pool: EmbeddedWorkerPool | undefined;
  const peers: WhatsAppMediaPeer[] = [];
  const endpoints: RtpEndpoint[] = [];

  afterEach(async () => {
    for (const p of peers.splice(0)) await p.close().catch(() => undefined);
    for (const e of endpoints.splice(0)) await e.close();
    await pool?.close();
    pool = undefined;
  });

  it('a session closed while its offer is in flight: the offer rejects (closed), and the worker holds no session and no port afterwards', async () => {
    // ICE above the kernel's ephemeral ports (32768-60999), so that no other socket lands there.
    const ice: [number, number] = [61000 + Math.floor(Math.random() * 9) * 500, 0];
    ice[1] = ice[0] + 499;
    const iceBefore = boundIn(ice);
    pool = await loopbackWorkerPool(1, { icePortRange: ice });
    const full = (await pool.readiness()).detail!;
    const stamp = Date.now();
    const results: Array<Promise<unknown>> = [];
    const pbx = await RtpEndpoint.create({ codec: 'PCMU' });
    endpoints.push(pbx);
    // Every direction's first step: inbound (WhatsApp's offer), outbound (the PBX's), click to call.
    for (let i = 0; i < 6; i++) {
      const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
      peers.push(peer);
      const s = pool.createSession(`race-offer-${i}-${stamp}`);
      const step = i % 3 === 0 ? s.offerFromWhatsApp(await peer.createOffer()) : i % 3 === 1 ? s.offerFromPbx(pbx.createOffer()) : s.offerToWhatsApp();
      const offer = step.then(
        (sdp) => ({ sdp }),
        (e: unknown) => e,
      );
      // The caller hangs up while the offer is being made.
      await s.close();
      results.push(offer);
    }
    for (const r of await Promise.all(results)) {
      expect(r, 'an offer on a closed session does not come back as a usable SDP').toBeInstanceOf(MediaError);
      expect((r as MediaError).reason).toBe('closed');
    }
    await waitFor(async () => (await pool!.listSessions()).length === 0, { what: 'the worker to hold no session' });
    await waitFor(async () => (await pool!.readiness()).detail!.freePortPairs === full.freePortPairs, {
      what: `every RTP port pair free again (${String(full.freePortPairs)})`,
    });
    // No WebRTC leg made after the close is left holding its ICE sockets.
    await waitFor(() => boundIn(ice) <= iceBefore, { what: `no ICE socket left in ${ice[0]}-${ice[1]}` });
  });

  it('the same race in the engine itself, close() a moment after the offer started: no port pair stays allocated', async () => {
    const engine = await loopbackEmbeddedEngine();
    try {
      const pbx = await RtpEndpoint.create({ codec: 'PCMU' });
      endpoints.push(pbx);
      const results: unknown[] = [];
      for (let i = 0; i < 4; i++) {
        const s = engine.createSession(`race-inproc-${i}-${Date.now()}`);
        const offer = s.offerFromPbx(pbx.createOffer()).catch((e: unknown) => e);
        await new Promise((r) => setImmediate(r)); // the offer is now binding its port pair
        await s.close();
        results.push(await offer);
      }
      for (const r of results) expect((r as MediaError).reason).toBe('closed');
      expect(engine.ports.inUse.size).toBe(0);
      expect(await engine.listSessions()).toEqual([]);
    } finally {
      await engine.close();
    }
  });

  it('a worker that dies right after it comes up is restarted with a growing back-off, not at once', async () => {
    pool = await loopbackWorkerPool(1);
    const p = pool;
    const gaps: number[] = [];
    for (let i = 0; i < 3; i++) {
      await p.killWorker(0);
      const t0 = performance.now();
      await waitFor(async () => (await p.readiness()).detail?.workersUp === 1, { what: `replacement ${i + 1} up`, timeoutMs: 20_000 });
      gaps.push(performance.now() - t0);
    }
    // Each worker died within moments of starting: its replacement waits 1 s, then 2 s, then 4 s.
    expect(gaps[0]).toBeGreaterThanOrEqual(900);
    expect(gaps[1]).toBeGreaterThanOrEqual(1900);
    expect(gaps[2]).toBeGreaterThanOrEqual(3900);
  }, 40_000);

  it('a session created while no worker is up fails fast with engine-dead, and leaves nothing behind', async () => {
    pool = await loopbackWorkerPool(1);
    await pool.killWorker(0);
    await waitFor(async () => (await pool!.readiness()).detail?.workersUp === 0, { what: 'the worker to be down' });
    const s = pool.createSession(`race-down-${Date.now()}`);
    const failures: MediaFailure[] = [];
    s.onFailure((f) => failures.push(f));
    const t0 = performance.now();
    const err = await s.offerToWhatsApp().catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err).toBeInstanceOf(MediaError);
    expect((err as MediaError).reason).toBe('engine-dead');
    expect(pool.placement().size).toBe(0);
    await s.close();
    await s.close();
  });

  it('a worker that throws while starting (a port range it cannot use): start() rejects with a clear MediaError naming the worker and the range', async () => {
    const err = await EmbeddedWorkerPool.start({
      rtpHost: '127.0.0.1',
      rtpAdvertiseHost: '127.0.0.1',
      iceAddresses: ['127.0.0.1'],
      portMin: 65000,
      portMax: 65999, // past 65535: the second worker's allocator refuses its slice
      workers: 2,
      logger: silentLogger(),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MediaError);
    expect(err).toMatchObject({ reason: 'engine-dead', message: expect.stringMatching(/did not start: media worker 1 exited .*bad RTP port range 65500-65999/) });
  });

  it("the same call id live on two workers: one session's failure is told to that session only", async () => {
    pool = await loopbackWorkerPool(2, { whatsappMediaTimeoutSec: 1 });
    const pbx = await RtpEndpoint.create({ codec: 'PCMU' });
    endpoints.push(pbx);
    const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
    peers.push(peer);
    const id = `race-dup-${Date.now()}`;
    const first = pool.createSession(id);
    const second = pool.createSession(id);
    await second.pbxSending(true); // the second exists in its worker too
    const told: Array<[string, MediaFailure]> = [];
    first.onFailure((f) => told.push(['first', f]));
    second.onFailure((f) => told.push(['second', f]));
    // The first gets WhatsApp's offer and the PBX's answer, and then no media: its timeout fires in its worker.
    await first.answerFromPbx(pbx.answer(await first.offerFromWhatsApp(await peer.createOffer())));
    expect((await pool.workerSessions()).map((w) => w.sessions), 'one on each worker').toEqual([[id], [id]]);
    await waitFor(() => told.length > 0, { what: 'the media timeout of the first session' });
    expect(told).toEqual([['first', expect.objectContaining({ kind: 'whatsapp-media-timeout' })]]);
    await first.close();
    await second.close();
  });

  it('close() with the same call id open on two workers closes both sessions first: neither is told engine-dead by the shutdown', async () => {
    pool = await loopbackWorkerPool(2);
    const id = `race-dup-close-${Date.now()}`;
    const sessions = [pool.createSession(id), pool.createSession(id)];
    const told: MediaFailure[] = [];
    for (const s of sessions) {
      s.onFailure((f) => told.push(f));
      await s.pbxSending(true); // created in its worker
    }
    expect((await pool.workerSessions()).map((w) => w.sessions)).toEqual([[id], [id]]);
    await pool.close();
    expect(told).toEqual([]);
  });

  it('requests that time out (a slow worker): close() still removes the session the worker made', async () => {
    // 1 ms to answer: the create, or the offer after it, times out on this side while the worker carries it out.
    pool = await loopbackWorkerPool(1, { rpcTimeoutMs: 1 });
    const stamp = Date.now();
    for (let i = 0; i < 5; i++) {
      const s = pool.createSession(`race-slow-${i}-${stamp}`);
      const err = await s.offerToWhatsApp().catch((e: unknown) => e);
      expect((err as MediaError).reason).toBe('timeout');
      await s.close();
    }
    // readiness asks each worker with its own 2 s limit: its own count of its sessions.
    await waitFor(async () => (await pool!.readiness()).detail?.sessionsPerWorker, { what: 'a readiness answer' });
    await waitFor(async () => ((await pool!.readiness()).detail?.sessionsPerWorker as number[])[0] === 0, { what: 'the worker to hold no session' });
  });

  it('close() twice: the second call resolves only once the pool is closed', async () => {
    pool = await loopbackWorkerPool(2);
    const first = pool.close();
    await pool.close();
    expect((await pool.readiness()).ready).toBe(false);
    expect(await pool.workerSessions()).toEqual([
      expect.objectContaining({ up: false }),
      expect.objectContaining({ up: false }),
    ]);
    await first;
  });
});
