/**
 * SIP session timers (RFC 4028): negotiating the interval and the refresher, and the timer that
 * refreshes the session (when we are the refresher) or ends it when the peer's refresh does not
 * come. The dialog (./dialog.ts) sends the refreshes and ends the call; this module decides when.
 *
 * Policy (what a careful SBC does, stated where RFC 4028 leaves a choice):
 * - `expiresSec` 0: we ask for nothing, but a peer's request is honoured (we answer with the
 *   headers and watch for its refreshes).
 * - As UAC we send `Supported: timer`, `Session-Expires` and `Min-SE`. A 2xx with
 *   `Session-Expires` sets the terms; a 2xx without one still has us refresh at our interval
 *   (a refresh to a UA without timer support is an ordinary re-INVITE/UPDATE and detects a PBX
 *   that has forgotten the call: 408/481 end it).
 * - As UAS we take the INVITE's interval (capped at ours), refuse one below `minSec` with 422,
 *   and leave the refreshing to a peer that supports timers; otherwise we refresh.
 * - Refresh at half the interval (section 10); without a refresh from the peer, the session
 *   ends at interval - min(32 s, interval / 3) (section 10).
 */
import type { Logger } from 'pino';

export interface SessionTimerConfig {
  /** Interval we ask for; 0: we ask for none. */
  expiresSec: number;
  /** Smallest interval we accept (RFC 4028 Min-SE; the RFC's floor is 90 s). */
  minSec: number;
}

export const SESSION_TIMERS_OFF: Readonly<SessionTimerConfig> = Object.freeze({ expiresSec: 0, minSec: 90 });

export interface SessionTerms {
  intervalSec: number;
  /** Who refreshes: we do ('local') or the peer does ('remote'). */
  refresher: 'local' | 'remote';
}

/** `Session-Expires: 1800;refresher=uac` (also the compact form `x`). */
export function parseSessionExpires(value: string | undefined): { sec: number; refresher?: 'uac' | 'uas' } | undefined {
  const m = /^\s*(\d{1,9})\s*((?:;[^;]*)*)$/.exec(value ?? '');
  if (!m?.[1]) return undefined;
  const r = /;\s*refresher\s*=\s*(uac|uas)\b/i.exec(m[2] ?? '')?.[1]?.toLowerCase();
  return { sec: Number(m[1]), ...(r === 'uac' || r === 'uas' ? { refresher: r } : {}) };
}

const supportsTimer = (supported: string | undefined): boolean => /(^|,)\s*timer\s*(,|$)/i.test(supported ?? '');

/** UAC: headers our INVITE carries. */
export function inviteHeaders(cfg: SessionTimerConfig): Record<string, string> {
  if (cfg.expiresSec <= 0) return {};
  return { supported: 'timer', 'session-expires': String(cfg.expiresSec), 'min-se': String(cfg.minSec) };
}

/** UAC: the terms set by the 2xx to our INVITE (header values as text). */
export function termsFromAnswer(cfg: SessionTimerConfig, sessionExpires: string | undefined): SessionTerms | undefined {
  const se = parseSessionExpires(sessionExpires);
  if (se) return { intervalSec: se.sec, refresher: se.refresher === 'uas' ? 'remote' : 'local' };
  return cfg.expiresSec > 0 ? { intervalSec: cfg.expiresSec, refresher: 'local' } : undefined;
}

export type OfferDecision =
  | { kind: 'none' }
  | { kind: 'too-small'; minSec: number }
  | { kind: 'ok'; terms: SessionTerms; headers: Record<string, string> };

/** UAS: what to do with an INVITE's (or a refresh's) Session-Expires / Supported (text values). */
export function termsForOffer(cfg: SessionTimerConfig, sessionExpires: string | undefined, supported: string | undefined): OfferDecision {
  const se = parseSessionExpires(sessionExpires);
  const peerSupports = supportsTimer(supported) || se !== undefined;
  if (se && se.sec < cfg.minSec) return { kind: 'too-small', minSec: cfg.minSec };
  if (!se && cfg.expiresSec <= 0) return { kind: 'none' };
  const intervalSec = se ? (cfg.expiresSec > 0 ? Math.min(se.sec, Math.max(cfg.expiresSec, cfg.minSec)) : se.sec) : cfg.expiresSec;
  // The requester's choice wins; unset, a peer that supports timers refreshes (section 9).
  const peerRefreshes = se?.refresher ? se.refresher === 'uac' : peerSupports;
  if (!peerSupports) return { kind: 'ok', terms: { intervalSec, refresher: 'local' }, headers: {} };
  return {
    kind: 'ok',
    terms: { intervalSec, refresher: peerRefreshes ? 'remote' : 'local' },
    headers: { 'session-expires': `${intervalSec};refresher=${peerRefreshes ? 'uac' : 'uas'}`, ...(peerRefreshes ? { require: 'timer' } : {}) },
  };
}

export interface SessionTimerActions {
  /** Send a refresh; resolves with its final status and the 2xx's Session-Expires, if any. */
  refresh(): Promise<{ status: number; sessionExpires?: string | undefined }>;
  /** End the call (send BYE, tell the dialog's owner as for a remote BYE). */
  expire(cause: string): void;
}

/** Runs one dialog's session timer. */
export class SessionTimer {
  private timer: NodeJS.Timeout | undefined;
  private expiresAt = 0;
  private stopped = false;

  constructor(
    private terms: SessionTerms,
    private readonly actions: SessionTimerActions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.refreshed();
  }

  get current(): SessionTerms {
    return this.terms;
  }

  /** A refresh succeeded (ours or the peer's); `terms` when it changed them. */
  refreshed(terms?: SessionTerms): void {
    if (this.stopped) return;
    if (terms) this.terms = terms;
    this.expiresAt = this.now() + this.terms.intervalSec * 1000;
    const ms = this.terms.intervalSec * 1000;
    clearTimeout(this.timer);
    this.timer =
      this.terms.refresher === 'local'
        ? setTimeout(() => void this.refresh(), ms / 2)
        : setTimeout(() => this.expire('no session refresh from the peer (RFC 4028)'), ms - Math.min(32_000, ms / 3));
    this.timer.unref?.();
  }

  private async refresh(): Promise<void> {
    if (this.stopped) return;
    const r = await this.actions.refresh().catch(() => ({ status: 408, sessionExpires: undefined }));
    if (this.stopped) return;
    if (r.status >= 200 && r.status < 300) {
      const se = parseSessionExpires(r.sessionExpires);
      this.refreshed(se ? { intervalSec: se.sec, refresher: se.refresher === 'uas' ? 'remote' : 'local' } : undefined);
      return;
    }
    // Section 10: a refresh that times out or gets 408/481 ends the session.
    if (r.status === 408 || r.status === 481) return this.expire(`session refresh failed with ${r.status}`);
    const left = this.expiresAt - this.now();
    if (left <= 2000) return this.expire(`session refresh failed with ${r.status} and the session interval ran out`);
    this.log.warn({ status: r.status }, 'sip: session refresh refused, trying again');
    this.timer = setTimeout(() => void this.refresh(), Math.min(left / 2, 10_000));
    this.timer.unref?.();
  }

  private expire(cause: string): void {
    if (this.stopped) return;
    this.stop();
    this.actions.expire(cause);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
