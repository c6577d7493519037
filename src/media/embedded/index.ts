/**
 * The embedded media engine (werift + pure JS/WASM codecs): the bridge runs with nothing but
 * `npm install`. In this process (./engine.ts), or in worker threads, one per core
 * (./worker-pool.ts).
 */
import { availableParallelism } from 'node:os';
import { MediaError, type MediaEngine } from '../types.js';
import { EmbeddedEngine, type EmbeddedEngineOptions } from './engine.js';
import { EmbeddedWorkerPool } from './worker-pool.js';

export type { EmbeddedEngineOptions, SessionStats } from './engine.js';
export { EmbeddedEngine } from './engine.js';
export { EmbeddedWorkerPool, type WorkerPoolOptions } from './worker-pool.js';

/** The most worker threads `auto` starts: the most a count may ask for (config schema), ~50 MB each. */
export const MAX_AUTO_WORKERS = 64;

/**
 * `media.embedded.workers` as a thread count: `auto` is one per core (at most MAX_AUTO_WORKERS),
 * or none (in-process) on one core.
 */
export function embeddedWorkerCount(setting: 'auto' | number, cores = availableParallelism()): number {
  if (setting !== 'auto') return setting;
  return cores > 1 ? Math.min(cores, MAX_AUTO_WORKERS) : 0;
}

/** The engine in this process (`workers` 0 or absent), or a pool of that many worker threads. */
export async function createEmbeddedEngine(opts: EmbeddedEngineOptions & { workers?: number }): Promise<MediaEngine> {
  if (!Number.isInteger(opts.portMin) || !Number.isInteger(opts.portMax) || opts.portMax - opts.portMin < 1) {
    throw new MediaError(`bad RTP port range ${opts.portMin}-${opts.portMax}`, 'embedded', 'config');
  }
  const { workers = 0, ...engine } = opts;
  if (workers > 0) return EmbeddedWorkerPool.start({ ...engine, workers });
  return new EmbeddedEngine(engine, opts.logger.child({ engine: 'embedded' }));
}
