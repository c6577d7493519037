/**
 * What the bridge tells the operations side (metrics, call records, the live call view) about
 * each call, without depending on it. Every method must be cheap and must not throw; the bridge
 * guards the calls anyway, so a broken observer never breaks a call.
 */
import type { MediaStats } from '../media/types.js';
import type { Logger } from '../util/log.js';
import type { ClickTeardownPlan, OutboundTeardownPlan, TeardownPlan } from './failure-map.js';

/**
 * A call's media session is named by the call: an inbound or click-to-call session by the call's
 * key (StartedCall.key), an outbound one by `out-` + the SIP Call-ID (an agent's INVITE may carry
 * any Call-ID, even one equal to a WhatsApp call id).
 */
export function outboundMediaSessionId(sipCallId: string): string {
  return `out-${sipCallId}`;
}

/** The call key (StartedCall.key) a media session belongs to. */
export function callKeyOfMediaSession(sessionId: string): string {
  return sessionId.startsWith('out-') ? sessionId.slice(4) : sessionId;
}

export interface StartedCall {
  direction: 'inbound' | 'outbound' | 'click-to-call';
  /** The call's first name: its WhatsApp call id (inbound), SIP Call-ID (outbound), or its own id (click to call). */
  key: string;
  waCallId?: string | undefined;
  sipCallId?: string | undefined;
  /** Outbound: the biz_opaque_callback_data naming the call in Graph requests and webhooks. */
  opaque?: string | undefined;
  phoneNumberId?: string | undefined;
  whatsappUser?: string | undefined;
  pbx?: string | undefined;
}

/** Wall-clock milestones (ms since the epoch) and the bridge's own set-up stages (ms). */
export interface CallTimes {
  receivedAt: number;
  ringingAt?: number | undefined;
  answeredAt?: number | undefined;
  endedAt: number;
  /** inbound: webhook → INVITE, PBX 200 → accept; outbound: PBX INVITE → connect, WhatsApp answer → 200. */
  setupMs: Partial<Record<'webhookToInvite' | 'pbxAnswerToAccept' | 'pbxInviteToConnect' | 'whatsappAnswerTo200', number>>;
}

export interface CallObserver {
  started(call: StartedCall): void;
  /** A name learned later: the SIP Call-ID of an inbound call, the WhatsApp call id of an outbound one. */
  identified(key: string, ids: { waCallId?: string; sipCallId?: string }): void;
}

/** What the call-ended listeners (call records, metrics, tests) learn of every ended call. */
export interface EndedCallRecord extends CallFacts {
  direction: 'inbound' | 'outbound' | 'click-to-call';
  /** The call's first name when it is neither id (a click-to-call's own id). */
  key?: string | undefined;
  waCallId: string | undefined;
  sipCallId: string | undefined;
  label: string;
  whatsapp: TeardownPlan['whatsapp'] | OutboundTeardownPlan['whatsapp'] | ClickTeardownPlan['whatsapp'];
  /** What the SIP leg got: 'cancel' / 'bye' / 'none', or the final status of an outbound INVITE. */
  sip: TeardownPlan['sip'] | number;
}

/** The per-call facts the call record needs, beyond the teardown's outcome. */
export interface CallFacts {
  phoneNumberId?: string | undefined;
  whatsappUser?: string | undefined;
  businessNumber?: string | undefined;
  pbxTarget?: string | undefined;
  route?: string | undefined;
  times?: CallTimes | undefined;
  media?: MediaStats | undefined;
}

/** Milestones measured on `now` (performance.now()-like) to wall-clock time, at the call's end. */
export function wallClock(now: number, t: number | undefined): number | undefined {
  return t === undefined ? undefined : Math.round(Date.now() - (now - t));
}

/** The bridge's call-ended listeners and its observer, each call guarded: a broken one never breaks a call. */
export class CallNotices {
  private readonly listeners = new Set<(rec: EndedCallRecord) => void>();

  constructor(
    private readonly log: Logger,
    private readonly observer: CallObserver | undefined,
  ) {}

  onEnded(listener: (rec: EndedCallRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  ended(rec: EndedCallRecord): void {
    for (const l of this.listeners) {
      try {
        l(rec);
      } catch (err) {
        this.log.error({ err }, 'call-ended listener failed');
      }
    }
  }

  observe(fn: (o: CallObserver) => void): void {
    const o = this.observer;
    if (!o) return;
    try {
      fn(o);
    } catch (err) {
      this.log.error({ err }, 'call observer failed');
    }
  }
}
