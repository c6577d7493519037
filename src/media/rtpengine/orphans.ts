/**
 * Sessions rtpengine may hold that no call owns any more, deleted until rtpengine confirms.
 *
 * - An `offer` that timed out: an overloaded rtpengine works through its queue and may still
 *   carry it out later. A delete sent at once can be lost (its socket's receive queue full) or,
 *   with several ng threads, handled before the offer; either way the session would stay up,
 *   unowned, until rtpengine's own no-media timeout.
 * - A session whose `delete` failed (timed out) when its call ended.
 *
 * Each is deleted at once and again every `intervalMs` until a delete succeeds (rtpengine held
 * the session: gone now; only one offer is ever sent per call id, so it cannot come back) or
 * `keepMs` has passed with rtpengine answering "unknown call" (it never created it). Bounded:
 * at most `max` entries (the oldest give way, counted) and `perTick` deletes per tick, so an
 * overloaded rtpengine is not flooded by the sweeper itself.
 */
import type { Logger } from 'pino';
import type { NgTarget } from 'rtpengine-client';
import { DELETE_NOW } from './flags.js';
import type { NgClient } from './ng-client.js';

export interface OrphanSweeperOptions {
  intervalMs: number;
  keepMs: number;
  max: number;
  perTick: number;
}

const DEFAULTS: OrphanSweeperOptions = { intervalMs: 2000, keepMs: 30_000, max: 10_000, perTick: 32 };

interface Orphan {
  target: NgTarget;
  callId: string;
  why: string;
  until: number;
  inFlight: boolean;
}

export class OrphanSweeper {
  private readonly entries = new Map<string, Orphan>();
  private readonly timer: NodeJS.Timeout;
  private readonly o: OrphanSweeperOptions;
  /** Sessions rtpengine held and deleted here (each one would have stayed up without the sweeper). */
  deleted = 0;
  /** Entries given up after `keepMs` (rtpengine never created the session, or never answered). */
  expired = 0;
  /** Entries pushed out by `max`. */
  displaced = 0;

  constructor(
    private readonly ng: NgClient,
    private readonly log: Logger,
    opts: Partial<OrphanSweeperOptions> = {},
  ) {
    this.o = { ...DEFAULTS, ...opts };
    this.timer = setInterval(() => this.tick(), this.o.intervalMs);
    this.timer.unref();
  }

  get pending(): number {
    return this.entries.size;
  }

  /** Delete `callId` on `target` now, and again until rtpengine confirms or `keepMs` passes. */
  add(target: NgTarget, callId: string, why: string): void {
    const key = `${target.host}:${target.port}|${callId}`;
    if (this.entries.has(key)) return;
    if (this.entries.size >= this.o.max) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.displaced++;
    }
    const orphan: Orphan = { target, callId, why, until: performance.now() + this.o.keepMs, inFlight: false };
    this.entries.set(key, orphan);
    this.sweep(key, orphan);
  }

  private tick(): void {
    const now = performance.now();
    let sent = 0;
    for (const [key, orphan] of this.entries) {
      if (orphan.until <= now) {
        this.entries.delete(key);
        this.expired++;
        continue;
      }
      if (sent >= this.o.perTick) continue;
      if (!orphan.inFlight) {
        sent++;
        this.sweep(key, orphan);
      }
    }
  }

  private sweep(key: string, orphan: Orphan): void {
    orphan.inFlight = true;
    this.ng.request(orphan.target, 'delete', { 'call-id': orphan.callId, ...DELETE_NOW }).then(
      () => {
        this.entries.delete(key);
        this.deleted++;
        this.log.info({ callId: orphan.callId, rtpengine: `${orphan.target.host}:${orphan.target.port}`, why: orphan.why }, 'rtpengine session no call owns deleted');
      },
      () => {
        // Unknown call (not created yet, or never), a timeout or a send error: try again next tick.
        orphan.inFlight = false;
      },
    );
  }

  close(): void {
    clearInterval(this.timer);
    this.entries.clear();
  }
}
