import { availableParallelism } from 'node:os';
import type { Config } from '../config/schema.js';

/**
 * The capacity guard: the most calls at once and the most set-ups per second, both directions.
 * Past its ceiling a media engine degrades every call's audio, so refusing a new call (WhatsApp
 * `reject`, SIP 503) is the better failure.
 *
 * The set-up rate is a token bucket measured against the clock (performance.now): it holds up
 * to one second's worth of set-ups, refills continuously, and keeps no per-call state.
 */
export type CapacityRefusal = 'over-capacity' | 'setup-rate';

export interface CapacityLimits {
  maxConcurrent: number;
  maxSetupsPerSec: number;
}

/**
 * Calls per CPU core the embedded engine carries with clean audio (loss < 1 %, added latency
 * < 60 ms each way; bench/media-capacity.ts, 2 shared cores). Five Opus<->G.711 capacity
 * searches: 35-65 calls with the media on the main thread, 35-95 on worker threads (the other
 * tenants' load moves it; docs/scaling.md); Opus<->G.722: 35 and 55. 15 per core stays below
 * every run, either way.
 */
export const EMBEDDED_CALLS_PER_CORE = 15;
/** rtpengine forwards in the kernel or its own threads; the bridge itself is the limit. */
export const RTPENGINE_DEFAULT_MAX_CALLS = 1000;

/** calls.maxConcurrent, or the configured engine's default. */
export function capacityLimits(config: Readonly<Config>, cores = availableParallelism()): CapacityLimits {
  const engineDefault = config.media.engine === 'embedded' ? EMBEDDED_CALLS_PER_CORE * cores : RTPENGINE_DEFAULT_MAX_CALLS;
  return { maxConcurrent: config.calls.maxConcurrent ?? engineDefault, maxSetupsPerSec: config.calls.maxSetupsPerSec };
}

export class CapacityGuard {
  private tokens: number;
  private last: number;
  private readonly burst: number;

  constructor(
    readonly limits: CapacityLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.burst = Math.max(1, limits.maxSetupsPerSec);
    this.tokens = this.burst;
    this.last = now();
  }

  /** Admit one new call when `active` calls are up; a refused call takes no set-up token. */
  admit(active: number): { ok: true } | { ok: false; reason: CapacityRefusal } {
    if (active >= this.limits.maxConcurrent) return { ok: false, reason: 'over-capacity' };
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.limits.maxSetupsPerSec);
    this.last = t;
    if (this.tokens < 1) return { ok: false, reason: 'setup-rate' };
    this.tokens -= 1;
    return { ok: true };
  }
}
