/**
 * Remembers keys for a while. WhatsApp delivers webhooks at least once and out of order, so
 * every event is keyed (call id + event) and a key seen within `ttlMs` is a duplicate.
 */
export class ExpiringSet {
  private readonly seen = new Map<string, number>();
  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    /** Most keys held; past it the oldest key is forgotten first (bounded memory under a flood). */
    private readonly maxKeys = Infinity,
  ) {}

  /** Adds `key`; returns false when it was already there (a duplicate). */
  add(key: string): boolean {
    this.purge();
    if (this.seen.has(key)) return false;
    this.seen.set(key, this.now() + this.ttlMs);
    if (this.seen.size > this.maxKeys) this.seen.delete(this.seen.keys().next().value!);
    return true;
  }

  has(key: string): boolean {
    this.purge();
    return this.seen.has(key);
  }

  get size(): number {
    return this.seen.size;
  }

  private purge(): void {
    const t = this.now();
    // Map iterates in insertion order and every entry has the same TTL: stop at the first live one.
    for (const [k, expires] of this.seen) {
      if (expires > t) break;
      this.seen.delete(k);
    }
  }
}
