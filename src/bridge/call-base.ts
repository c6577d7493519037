import type { Logger } from '../util/log.js';
import type { MediaSession } from '../media/types.js';
import { IllegalTransition, isLegalMove } from './call-state.js';

/**
 * What an inbound and an outbound call share: one `transition()` over the call's own table,
 * the media operation in flight, and the fixed tail of every teardown (after both signalling
 * legs: the media released, the end recorded, listeners told, `ended` resolved).
 */
export abstract class BridgedCall<S extends string> {
  state: S;
  /** Milestone timestamps (ms, from `now`); the teardown sets `ended`. */
  abstract readonly timings: { ended?: number };
  /** Resolves once the call has ended and everything is released. */
  readonly ended: Promise<void>;
  private markEnded!: () => void;
  protected mediaSession: MediaSession | undefined;
  /** The media operation in flight, awaited before the session is closed. */
  protected mediaOp: Promise<unknown> = Promise.resolve();
  protected readonly now: () => number;

  constructor(
    private readonly transitions: Readonly<Record<S, readonly S[]>>,
    initial: S,
    private readonly final: S,
    protected log: Logger,
    now: (() => number) | undefined,
  ) {
    this.state = initial;
    this.now = now ?? (() => performance.now());
    this.ended = new Promise<void>((resolve) => (this.markEnded = resolve));
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

  /** Remember a media operation, so that teardown waits for it before closing the session. */
  protected track<T>(p: Promise<T>): Promise<T> {
    this.mediaOp = p;
    return p;
  }

  /**
   * The end of every teardown: release the media, record when the call ended (duration from
   * `startedAt`), tell the listener (guarded: it cannot break the teardown), resolve `ended`.
   */
  protected async finishTeardown(log: Logger, startedAt: number, notify: () => void): Promise<void> {
    await this.mediaOp.catch(() => undefined);
    await this.mediaSession?.close();
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

/** Milliseconds to one decimal, for log lines. */
export function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}
