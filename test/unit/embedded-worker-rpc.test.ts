/**
 * The RPC between the main thread and an embedded media worker (worker-rpc.ts), over a real
 * MessageChannel with a scripted worker side; and how the pool slices the port ranges.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { embeddedWorkerCount } from '../../src/media/embedded/index.js';
import { splitRange } from '../../src/media/embedded/worker-pool.js';
import { RpcClient, toWire, type FromWorker, type Reply, type ToWorker } from '../../src/media/embedded/worker-rpc.js';
import { MediaError } from '../../src/media/types.js';
import { waitFor } from '../support/wait.js';

/** A client on one end of a channel; the test plays the worker on the other. */
function channel(timeoutMs: number): { rpc: RpcClient; worker: MessagePort; requests: ToWorker[]; close: () => void } {
  const { port1, port2 } = new MessageChannel();
  const rpc = new RpcClient((m) => port1.postMessage(m), timeoutMs);
  port1.on('message', (m: FromWorker) => {
    if (m.kind === 'res') rpc.settle(m);
  });
  const requests: ToWorker[] = [];
  port2.on('message', (m: ToWorker) => requests.push(m));
  return { rpc, worker: port2, requests, close: () => (port1.close(), port2.close()) };
}

describe('worker RPC', () => {
  const open: Array<() => void> = [];
  afterEach(() => {
    for (const c of open.splice(0)) c();
  });

  it('a reply resolves its own request, matched by id, whatever the order', async () => {
    const c = channel(5000);
    open.push(c.close);
    const a = c.rpc.request({ op: 'offerFromWhatsApp', callId: 'a', sdp: 'offer-a' });
    const b = c.rpc.request({ op: 'listSessions' });
    await waitFor(() => c.requests.length === 2, { what: 'both requests at the worker' });
    const [ra, rb] = c.requests as [ToWorker, ToWorker];
    expect(ra.req).toEqual({ op: 'offerFromWhatsApp', callId: 'a', sdp: 'offer-a' });
    expect(ra.id).not.toBe(rb.id);
    c.worker.postMessage({ kind: 'res', id: rb.id, ok: true, value: ['a'] } satisfies Reply);
    c.worker.postMessage({ kind: 'res', id: ra.id, ok: true, value: 'plain-a' } satisfies Reply);
    expect(await b).toEqual(['a']);
    expect(await a).toBe('plain-a');
    expect(c.rpc.inFlight).toBe(0);
  });

  it("a worker's error comes back as a MediaError with the same reason; a plain Error has none", async () => {
    const c = channel(5000);
    open.push(c.close);
    const p = c.rpc.request({ op: 'answerFromPbx', callId: 'x', sdp: 'v=0' });
    const q = c.rpc.request({ op: 'readiness' });
    await waitFor(() => c.requests.length === 2, { what: 'the requests at the worker' });
    c.worker.postMessage({ kind: 'res', id: c.requests[0]!.id, ok: false, error: toWire(new MediaError('answerFromPbx before offerFromWhatsApp', 'embedded', 'no offer')) } satisfies Reply);
    c.worker.postMessage({ kind: 'res', id: c.requests[1]!.id, ok: false, error: toWire(new TypeError('boom')) } satisfies Reply);
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MediaError);
    expect(err).toMatchObject({ engine: 'embedded', reason: 'no offer', message: 'answerFromPbx before offerFromWhatsApp' });
    const plain = await q.catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(MediaError);
    expect(plain).toMatchObject({ reason: undefined, message: 'boom' });
  });

  it('a request with no reply rejects with reason timeout; the late reply is dropped', async () => {
    const c = channel(150);
    open.push(c.close);
    const t0 = performance.now();
    const err = await c.rpc.request({ op: 'offerToWhatsApp', callId: 'slow' }).catch((e: unknown) => e);
    const took = performance.now() - t0;
    expect(err).toBeInstanceOf(MediaError);
    expect((err as MediaError).reason).toBe('timeout');
    expect((err as MediaError).message).toContain('offerToWhatsApp');
    expect(took).toBeGreaterThanOrEqual(140);
    expect(c.rpc.inFlight).toBe(0);
    // The worker answers after all: nothing happens (no throw, nothing resolved twice).
    expect(() => c.rpc.settle({ kind: 'res', id: c.requests[0]!.id, ok: true, value: 'late' })).not.toThrow();
    // A per-request timeout overrides the client's.
    const quick = await c.rpc.request({ op: 'readiness' }, 30).catch((e: unknown) => e);
    expect((quick as MediaError).reason).toBe('timeout');
  });

  it('close (the worker died) rejects what is pending and every later request with its error; a reply after close is dropped', async () => {
    const c = channel(5000);
    open.push(c.close);
    const p = c.rpc.request({ op: 'closeSession', callId: 'y' });
    await waitFor(() => c.requests.length === 1, { what: 'the request at the worker' });
    const dead = new MediaError('embedded media worker 0 exited with code 1', 'embedded', 'engine-dead');
    c.rpc.close(dead);
    expect(await p.catch((e: unknown) => e)).toBe(dead);
    c.rpc.settle({ kind: 'res', id: c.requests[0]!.id, ok: true, value: null });
    expect(await c.rpc.request({ op: 'listSessions' }).catch((e: unknown) => e)).toBe(dead);
    expect(c.rpc.inFlight).toBe(0);
  });

  it('a request that cannot be posted rejects at once with engine-dead', async () => {
    const rpc = new RpcClient(() => {
      throw new Error('worker is terminated');
    }, 5000);
    const err = await rpc.request({ op: 'listSessions' }).catch((e: unknown) => e);
    expect((err as MediaError).reason).toBe('engine-dead');
    expect(rpc.inFlight).toBe(0);
  });
});

describe('port slices per worker', () => {
  it('RTP slices are disjoint, start on even ports and cover the range; ICE slices too', () => {
    expect(splitRange(40000, 40499, 2, true)).toEqual([
      [40000, 40249],
      [40250, 40499],
    ]);
    expect(splitRange(40001, 40499, 2, true)).toEqual([
      [40002, 40249],
      [40250, 40499],
    ]);
    const ice = splitRange(40500, 40999, 3, false);
    expect(ice).toEqual([
      [40500, 40665],
      [40666, 40831],
      [40832, 40999],
    ]);
    for (const [lo, hi] of splitRange(20000, 20499, 3, true)) {
      expect(lo % 2).toBe(0);
      expect(hi - lo).toBeGreaterThanOrEqual(1);
    }
  });

  it('a range too small for the workers is a config error', () => {
    expect(() => splitRange(40000, 40002, 4, true)).toThrow(/too small for 4 media workers/);
  });
});

describe('media.embedded.workers', () => {
  const workers = (w: unknown) => buildConfig({ media: { embedded: { workers: w } } }).media.embedded.workers;

  it("defaults to auto: one worker per core, in-process on one core; a count is taken as is (0 = in-process)", () => {
    expect(buildConfig({}).media.embedded.workers).toBe('auto');
    expect(embeddedWorkerCount('auto', 2)).toBe(2);
    expect(embeddedWorkerCount('auto', 8)).toBe(8);
    expect(embeddedWorkerCount('auto', 1)).toBe(0);
    // A 128-core host gets no more threads than a count may ask for (each is ~50 MB of isolate).
    expect(embeddedWorkerCount('auto', 128)).toBe(64);
    expect(() => workers(embeddedWorkerCount('auto', 128))).not.toThrow();
    expect(workers(0)).toBe(0);
    expect(embeddedWorkerCount(workers(3), 2)).toBe(3);
  });

  it('refuses anything else', () => {
    for (const bad of [-1, 1.5, 'many', 65]) expect(() => workers(bad), String(bad)).toThrow(ConfigError);
  });
});
