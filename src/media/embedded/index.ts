/**
 * The embedded media engine (werift + pure JS/WASM codecs), in this process: the bridge runs
 * with nothing but `npm install`. See ./engine.ts for the design.
 */
import { MediaError, type MediaEngine } from '../types.js';
import { EmbeddedEngine, type EmbeddedEngineOptions } from './engine.js';

export type { EmbeddedEngineOptions, SessionStats } from './engine.js';
export { EmbeddedEngine } from './engine.js';

export async function createEmbeddedEngine(opts: EmbeddedEngineOptions): Promise<MediaEngine> {
  if (!Number.isInteger(opts.portMin) || !Number.isInteger(opts.portMax) || opts.portMax - opts.portMin < 1) {
    throw new MediaError(`bad RTP port range ${opts.portMin}-${opts.portMax}`, 'embedded', 'config');
  }
  return new EmbeddedEngine(opts, opts.logger.child({ engine: 'embedded' }));
}
