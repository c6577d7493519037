/**
 * The rtpengine engine's watchdog (issue 9): every few seconds, a cheap ng `ping` to each
 * rtpengine that serves a live session, and a `query` of each live session.
 * - An rtpengine that misses `deadAfterMisses` pings in a row is dead: every session on it gets
 *   `engine-dead`. A session rtpengine no longer knows (restarted, or it timed the call out)
 *   gets `engine-dead` too.
 * - A session whose WhatsApp-side packet counters (from `query`) stop moving for the WhatsApp
 *   media timeout gets `whatsapp-media-timeout`.
 * - Every configured rtpengine is pinged each round, sessions or not: one that missed its last
 *   ping (or whose last offer timed out) is not `healthy` and gets no new calls until it answers.
 * One round at a time; a round never throws.
 */
import type { Logger } from 'pino';
import type { NgMessage, NgTarget } from 'rtpengine-client';
import { MediaError } from '../types.js';
import type { FailureSignal, WhatsAppMediaTimer } from '../watchdog.js';
import type { NgClient } from './ng-client.js';

export interface WatchedSession {
  readonly callId: string;
  readonly target: NgTarget | undefined;
  /** WhatsApp's leg's tag once WhatsApp can send media; undefined before (not queried yet). */
  readonly whatsAppTag: string | undefined;
  readonly failure: FailureSignal;
  readonly waTimer: WhatsAppMediaTimer;
}

export interface WatchOptions {
  /** Time between rounds; default 2000 ms. */
  intervalMs?: number;
  /** Consecutive failed pings that make an rtpengine dead; default 2. */
  deadAfterMisses?: number;
  /**
   * Least time between two `query`s of one session; default intervalMs. A query per session
   * per round was 1,000 ng requests/s at 2,000 calls, more than their set-ups cost.
   */
  queryIntervalMs?: number;
}

const key = (t: NgTarget): string => `${t.host}:${t.port}`;
/** A rate of WhatsApp-side packets above RTCP's (about 1/s) and far below audio's (50/s). */
const MIN_MEDIA_PPS = 5;
/** ng `query`s a round keeps in flight. */
const QUERIES_IN_FLIGHT = 8;

/** Packets rtpengine counted on every stream of one tag (RTP and RTCP alike). */
export function tagPackets(reply: NgMessage, tag: string): number | undefined {
  const tags = reply['tags'] as Record<string, { medias?: Array<{ streams?: Array<{ stats?: { packets?: number } }> }> }> | undefined;
  const t = tags?.[tag];
  if (!t) return undefined;
  let n = 0;
  for (const m of t.medias ?? []) for (const st of m.streams ?? []) n += Number(st.stats?.packets ?? 0);
  return n;
}

/**
 * How often the watchdog queries one session: a quarter of the WhatsApp media timeout (it then
 * fires within 1.25x the timeout), at least every round, at most every 10 s (a session rtpengine
 * forgot is noticed by then too).
 */
export function queryIntervalFor(roundMs = 2000, whatsappMediaTimeoutSec = 20): number {
  const timeoutMs = whatsappMediaTimeoutSec * 1000;
  return timeoutMs > 0 ? Math.min(10_000, Math.max(roundMs, timeoutMs / 4)) : 10_000;
}

export class RtpengineWatch {
  private readonly timer: NodeJS.Timeout;
  private readonly misses = new Map<string, number>();
  /** rtpengines whose last offer timed out: skipped for new calls until a ping answers. */
  private readonly suspect = new Set<string>();
  /** WhatsApp-side packets at the last sign of media, per session. */
  private readonly lastPackets = new WeakMap<WatchedSession, { packets: number; at: number }>();
  private running = false;
  private readonly deadAfter: number;
  private readonly queryEvery: number;
  private readonly lastQuery = new WeakMap<WatchedSession, number>();

  constructor(
    private readonly ng: NgClient,
    private readonly sessions: () => Iterable<WatchedSession>,
    private readonly log: Logger,
    opts: WatchOptions = {},
    /** Every configured rtpengine: pinged each round even with no session, so new calls skip a dead one. */
    private readonly configured: readonly NgTarget[] = [],
  ) {
    this.deadAfter = opts.deadAfterMisses ?? 2;
    this.queryEvery = opts.queryIntervalMs ?? opts.intervalMs ?? 2000;
    this.timer = setInterval(() => void this.round(), opts.intervalMs ?? 2000);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const live = [...this.sessions()].filter((s) => s.target && !s.failure.failure);
      const targets = new Map([...this.configured, ...live.map((s) => s.target!)].map((t) => [key(t), t]));
      const dead = new Set<string>();
      await Promise.all(
        [...targets.values()].map(async (t) => {
          const sent = performance.now();
          try {
            await this.ng.request(t, 'ping');
            if (this.misses.has(key(t)) || this.suspect.has(key(t))) this.log.info({ rtpengine: key(t) }, 'rtpengine answers again');
            this.misses.delete(key(t));
            this.suspect.delete(key(t));
          } catch (err) {
            // Overloaded, not dead: it answered other requests while this ping waited in its queue.
            if (this.ng.repliedSince(t, sent)) return;
            const n = (this.misses.get(key(t)) ?? 0) + 1;
            this.misses.set(key(t), n);
            this.log.warn({ rtpengine: key(t), misses: n, err: (err as Error).message }, 'rtpengine missed a watchdog ping');
            if (n >= this.deadAfter) dead.add(key(t));
          }
        }),
      );
      const toQuery: WatchedSession[] = [];
      for (const s of live) {
        const k = key(s.target!);
        if (dead.has(k)) s.failure.fire('engine-dead', `rtpengine ${k} stopped answering ng ping`);
        else if (!this.misses.has(k)) toQuery.push(s); // one not answering right now waits for the verdict
      }
      // A few queries in flight at a time: all at once (1,700 at 1,700 calls) stalled the event
      // loop and queued every call set-up's offer behind them in rtpengine.
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < toQuery.length) await this.query(toQuery[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(QUERIES_IN_FLIGHT, toQuery.length) }, worker));
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'rtpengine watchdog round failed');
    } finally {
      this.running = false;
    }
  }

  /** Whether new calls may go to `t`: it answered its last ping and its last offer. */
  healthy(t: NgTarget): boolean {
    return !this.misses.has(key(t)) && !this.suspect.has(key(t));
  }

  /** An offer to `t` timed out: skip it for new calls until it answers a ping. */
  offerTimedOut(t: NgTarget): void {
    this.suspect.add(key(t));
  }

  private async query(s: WatchedSession): Promise<void> {
    if (!s.whatsAppTag) return;
    const now = performance.now();
    s.waTimer.arm(now);
    // Rounds come every intervalMs; each session is queried every queryEvery (within a round).
    if (now - (this.lastQuery.get(s) ?? -Infinity) < this.queryEvery - 50) return;
    this.lastQuery.set(s, now);
    let reply: NgMessage;
    try {
      reply = await this.ng.request(s.target!, 'query', { 'call-id': s.callId });
    } catch (err) {
      if (err instanceof MediaError && /unknown call/i.test(err.reason ?? '')) {
        s.failure.fire('engine-dead', `rtpengine ${key(s.target!)} no longer knows the call`);
      }
      return; // a lost reply: the ping decides
    }
    const packets = tagPackets(reply, s.whatsAppTag);
    const last = this.lastPackets.get(s);
    if (packets !== undefined) {
      // rtpengine 10.5 counts muxed RTCP with RTP, per stream only (its per-SSRC table stays
      // empty): a peer that stopped its audio still sends RTCP (about one a second). Media is
      // 50 packets/s; anything above MIN_MEDIA_PPS is media.
      const dtSec = last ? (now - last.at) / 1000 : 0;
      if (last && packets - last.packets >= MIN_MEDIA_PPS * dtSec) s.waTimer.activity(now);
      else if (!last && packets > 0) s.waTimer.activity(now);
      if (!last || packets - last.packets >= MIN_MEDIA_PPS * dtSec) this.lastPackets.set(s, { packets, at: now });
    }
    const expired = s.waTimer.expired(now);
    if (expired) s.failure.fire('whatsapp-media-timeout', expired);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
