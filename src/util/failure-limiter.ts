/**
 * Failed authentication attempts per source (SIP digest, the admin API): after `maxFailures` within `windowMs`, the source
 * is refused without a check for `blockMs`. Bounded: at most `maxSources` are tracked.
 */
export class FailureLimiter {
  private readonly bySource = new Map<string, { failures: number; since: number; blockedUntil: number }>();

  constructor(
    private readonly maxFailures = 5,
    private readonly windowMs = 60_000,
    private readonly blockMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
    private readonly maxSources = 10_000,
  ) {}

  blocked(source: string): boolean {
    const e = this.bySource.get(source);
    return e !== undefined && e.blockedUntil > this.now();
  }

  fail(source: string): void {
    const t = this.now();
    let e = this.bySource.get(source);
    if (!e || t - e.since > this.windowMs) {
      if (!e && this.bySource.size >= this.maxSources) this.bySource.delete(this.bySource.keys().next().value!);
      e = { failures: 0, since: t, blockedUntil: 0 };
      this.bySource.set(source, e);
    }
    if (++e.failures >= this.maxFailures) e.blockedUntil = t + this.blockMs;
  }

  succeed(source: string): void {
    this.bySource.delete(source);
  }
}
