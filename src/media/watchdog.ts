/**
 * What both engines share for MediaSession.onFailure (issue 9's watchdogs): a failure told to
 * the listener once and never after close(), and the WhatsApp media timer.
 */
import type { Logger } from 'pino';
import type { MediaFailure } from './types.js';

/**
 * WhatsApp gives up on a call after about 20 s without media at the start and 30 s mid-call;
 * the bridge gives up on WhatsApp's media after this long, at the start or mid-call.
 */
export const DEFAULT_WA_MEDIA_TIMEOUT_SEC = 20;

export class FailureSignal {
  private listener: ((f: MediaFailure) => void) | undefined;
  private failed: MediaFailure | undefined;
  private closed = false;

  constructor(
    private readonly callId: string,
    private readonly log: Logger,
  ) {}

  get failure(): MediaFailure | undefined {
    return this.failed;
  }

  onFailure(listener: (failure: MediaFailure) => void): void {
    this.listener = listener;
    if (this.failed && !this.closed) this.tell(this.failed); // it failed before anyone listened
  }

  /** The first failure is told (logged with the call); later ones and any after close() are not. */
  fire(kind: MediaFailure['kind'], detail: string): void {
    if (this.failed || this.closed) return;
    this.failed = { kind, detail };
    this.log.warn({ callId: this.callId, failure: kind, detail }, 'media failed');
    if (this.listener) this.tell(this.failed);
  }

  close(): void {
    this.closed = true;
  }

  private tell(f: MediaFailure): void {
    try {
      this.listener?.(f);
    } catch (err) {
      this.log.error({ callId: this.callId, err: (err as Error).message }, 'media failure listener threw');
    }
  }
}

/**
 * Time since WhatsApp last sent media: armed once WhatsApp can send (our answer is out, or its
 * answer applied), reset by its connection and by every sign of its media.
 */
export class WhatsAppMediaTimer {
  private lastMs: number | undefined;
  /** Whether anything came at all (for the failure's wording). */
  heard = false;

  constructor(private readonly timeoutSec: number = DEFAULT_WA_MEDIA_TIMEOUT_SEC) {}

  arm(now: number): void {
    this.lastMs ??= now;
  }

  /** WhatsApp's media moved (or its leg connected: `heard` stays as it was). */
  activity(now: number, media = true): void {
    this.lastMs = now;
    if (media) this.heard = true;
  }

  /** The failure detail once the timeout has passed, else undefined. */
  expired(now: number): string | undefined {
    const limitMs = this.timeoutSec * 1000;
    if (this.lastMs === undefined || limitMs <= 0 || now - this.lastMs < limitMs) return undefined;
    return `${this.heard ? 'RTP from WhatsApp stopped' : 'no RTP from WhatsApp'} for ${Math.round((now - this.lastMs) / 1000)} s`;
  }
}
