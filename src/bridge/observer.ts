/**
 * What the bridge tells the operations side (metrics, call records, the live call view) about
 * each call, without depending on it. Every method must be cheap and must not throw; the bridge
 * guards the calls anyway, so a broken observer never breaks a call.
 */
import type { MediaStats } from '../media/types.js';

export interface StartedCall {
  direction: 'inbound' | 'outbound';
  /** The call's first name: its WhatsApp call id (inbound) or SIP Call-ID (outbound). */
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
