/**
 * Waiting in tests. Wait for an event (`waitFor`), never for a guessed time; where a test must
 * let time pass (a "nothing happened" check, a measurement window, RFC pacing) it calls `sleep`
 * with the reason written beside the call.
 */

/** Let `ms` pass. Every caller states why a bounded time is the right wait there. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface WaitOptions {
  /** Give up after this long (default 10 s): a generous bound, since a busy machine is slow. */
  timeoutMs?: number;
  /** What is awaited, for the error message ("the PBX to receive the 200 OK"). */
  what: string;
  /** How often to look (default 20 ms). */
  intervalMs?: number;
}

export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Resolve with the first truthy value `probe` returns, looking every `intervalMs`, or reject
 * after `timeoutMs` (measured with performance.now()) naming `what`. `probe` may be async; an
 * error it throws is kept and shown if the wait times out (e.g. a failing `expect`).
 */
export async function waitFor<T>(probe: () => T | Promise<T>, opts: WaitOptions): Promise<Truthy<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const end = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v as Truthy<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() >= end) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}${why}`);
    }
    await sleep(opts.intervalMs ?? 20);
  }
}
