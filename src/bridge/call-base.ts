import type { Logger } from '../util/log.js';
import { MediaError, type MediaSession, type MediaStats } from '../media/types.js';
import type { WaTerminateEvent } from '../whatsapp/types.js';
import { IllegalTransition, isLegalMove } from './call-state.js';
import { sipReasonHeader, type CommonEndCause, type TeardownPlan } from './failure-map.js';
import type { OutgoingCall, SipDialog } from '../sip/types.js';

/** Limits every call runs under (calls.* in the config). */
export interface CallLimits {
  /** End the call (both legs) this long after it started; 0 disables. */
  maxDurationMs: number;
  /** Abandon a media operation (offer, answer, close) that has not settled after this long. */
  mediaOpTimeoutMs: number;
}

export const DEFAULT_CALL_LIMITS: CallLimits = { maxDurationMs: 4 * 3600_000, mediaOpTimeoutMs: 10_000 };

/**
 * What an inbound and an outbound call share: one `transition()` over the call's own table,
 * the media operation in flight (bounded in time), the watchdogs (the media engine's failure
 * report, the maximum duration), WhatsApp's terminate webhook, and the fixed tail of every
 * teardown (after both signalling legs: the media released, the end recorded, listeners told,
 * `ended` resolved).
 */
export abstract class BridgedCall<S extends string, C extends { kind: string }> {
  state: S;
  /** Milestone timestamps (ms, from `now`); the teardown sets `ended`. */
  abstract readonly timings: { ended?: number };
  /** Resolves once the call has ended and everything is released. */
  readonly ended: Promise<void>;
  private markEnded!: () => void;
  protected mediaSession: MediaSession | undefined;
  /** The media operation in flight, awaited (at most mediaOpTimeoutMs) before the session is closed. */
  protected mediaOp: Promise<unknown> = Promise.resolve();
  protected readonly now: () => number;
  /** Settles when the PBX answered the BYE that ended the call (or at once when none was sent). */
  sipLegEnded: Promise<void> = Promise.resolve();
  private maxDurationTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly transitions: Readonly<Record<S, readonly S[]>>,
    initial: S,
    private readonly final: S,
    protected log: Logger,
    now: (() => number) | undefined,
    protected readonly limits: CallLimits = DEFAULT_CALL_LIMITS,
  ) {
    this.state = initial;
    this.now = now ?? (() => performance.now());
    this.ended = new Promise<void>((resolve) => (this.markEnded = resolve));
    if (limits.maxDurationMs > 0) {
      this.maxDurationTimer = setTimeout(() => {
        this.log.warn({ maxDurationSec: limits.maxDurationMs / 1000 }, 'maximum call duration reached; ending both legs');
        void this.end({ kind: 'max-duration' });
      }, limits.maxDurationMs);
      this.maxDurationTimer.unref();
    }
  }

  /** What the media session carried (the engine's counters; readable after it closed). */
  mediaStats(): MediaStats | undefined {
    try {
      return this.mediaSession?.mediaStats?.();
    } catch {
      return undefined;
    }
  }

  /** End the call with `cause`. Idempotent: the first cause wins. */
  abstract end(cause: C | CommonEndCause): Promise<void>;

  /** WhatsApp's terminate webhook for this call. */
  onWhatsAppTerminate(ev: WaTerminateEvent): void {
    const errorCode = ev.errors[0]?.code;
    this.log.info({ status: ev.status, errorCode, durationSec: ev.durationSec }, 'WhatsApp ended the call');
    void this.end({ kind: 'wa-terminate', status: ev.status, ...(errorCode !== undefined ? { errorCode } : {}) });
  }

  /**
   * Take the call's media session, and watch it: a failure the engine reports on its own
   * (WebRTC failed, no media from WhatsApp, engine dead) ends both legs.
   */
  protected adoptSession(session: MediaSession): MediaSession {
    this.mediaSession = session;
    session.onFailure((failure) => {
      this.log.warn({ failure: failure.kind, detail: failure.detail }, 'media failed; ending both legs');
      void this.end({ kind: 'media-failure', failure });
    });
    return session;
  }

  protected transition(next: S): void {
    if (this.state === next) return;
    if (!isLegalMove(this.transitions, this.state, next)) {
      const err = new IllegalTransition(this.state, next);
      this.log.error({ err }, 'illegal transition');
      throw err;
    }
    this.log.debug({ from: this.state, to: next }, 'call state');
    this.state = next;
  }

  /**
   * Remember a media operation, so that teardown waits for it before closing the session. One
   * that has not settled after mediaOpTimeoutMs is abandoned: it rejects with a MediaError, and
   * a teardown waiting for it goes on.
   */
  protected track<T>(p: Promise<T>, what = 'media operation'): Promise<T> {
    const bounded = withTimeout(p, this.limits.mediaOpTimeoutMs, () => new MediaError(`${what} did not settle within ${this.limits.mediaOpTimeoutMs} ms; abandoned`, this.mediaSession?.callId ?? 'media', 'timeout'));
    this.mediaOp = bounded;
    return bounded;
  }

  /**
   * End a SIP leg the bridge placed (its INVITE is ours): CANCEL while pending, BYE once confirmed,
   * with the teardown's label as Reason. Sent now; the PBX's answer to a BYE is not waited for
   * (`sipLegEnded` settles with it).
   */
  protected endPlacedSipLeg(action: TeardownPlan['sip'], label: string, legs: { outgoing?: OutgoingCall | undefined; dialog?: SipDialog | undefined }, log: Logger): void {
    try {
      if (action === 'cancel') legs.outgoing?.cancel(sipReasonHeader(label));
      else if (action === 'bye') this.sipLegEnded = legs.dialog?.bye(sipReasonHeader(label)) ?? Promise.resolve();
    } catch (err) {
      log.warn({ err }, 'ending the SIP leg failed');
    }
  }

  /**
   * The end of every teardown: release the media (each step bounded in time), record when the
   * call ended (duration from `startedAt`), tell the listener (guarded: it cannot break the
   * teardown), resolve `ended`.
   */
  protected async finishTeardown(log: Logger, startedAt: number, notify: () => void): Promise<void> {
    clearTimeout(this.maxDurationTimer);
    await this.mediaOp.catch(() => undefined);
    if (this.mediaSession) {
      await withTimeout(this.mediaSession.close(), this.limits.mediaOpTimeoutMs, () => new Error('media session close timed out')).catch((err) =>
        log.warn({ err: (err as Error).message }, 'media session did not close in time; abandoned'),
      );
    }
    this.timings.ended = this.now();
    this.transition(this.final);
    log.info({ durationMs: roundMs(this.timings.ended - startedAt) }, 'call ended');
    try {
      notify();
    } catch (err) {
      log.error({ err }, 'onEnded listener failed');
    }
    this.markEnded();
  }
}

/** `p`, or a rejection with `onTimeout()` once `ms` passed first. The timer never holds the process. */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

/** Milliseconds to one decimal, for log lines. */
export function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}
