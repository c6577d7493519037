/** The embedded media engine as the media-level e2e tests run it: loopback only, a random port block. */
import { createEmbeddedEngine, EmbeddedWorkerPool, type EmbeddedEngine, type WorkerPoolOptions } from '../../src/media/embedded/index.js';
import { silentLogger } from '../../src/util/log.js';

function loopbackOptions(): { rtpHost: string; rtpAdvertiseHost: string; iceAddresses: string[]; portMin: number; portMax: number } {
  const portMin = 40000 + Math.floor(Math.random() * 20) * 1000;
  return { rtpHost: '127.0.0.1', rtpAdvertiseHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], portMin, portMax: portMin + 999 };
}

/** An embedded engine in this process on 127.0.0.1 (RTP and ICE), with 1000 ports from a random block in 40000-59999. */
export async function loopbackEmbeddedEngine(): Promise<EmbeddedEngine> {
  return (await createEmbeddedEngine({ ...loopbackOptions(), logger: silentLogger() })) as EmbeddedEngine;
}

/**
 * The same in `workers` worker threads: plain RTP in the lower half of the block, ICE in the
 * upper half (as the app splits it), each half sliced between the workers.
 */
export function loopbackWorkerPool(workers: number, more: Partial<WorkerPoolOptions> = {}): Promise<EmbeddedWorkerPool> {
  const o = loopbackOptions();
  const mid = o.portMin + 500;
  return EmbeddedWorkerPool.start({ ...o, portMax: mid - 1, icePortRange: [mid, o.portMax], workers, logger: silentLogger(), ...more });
}
