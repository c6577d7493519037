import type { GraphApiError } from '../whatsapp/types.js';

/**
 * Why a call ends. Every path that ends a call names one of these; `planTeardown` turns it,
 * with the state of each leg, into what is sent to the other side. This is the one place where
 * a failure on one side becomes an action on the other.
 */
export type EndCause =
  /** The PBX answered the INVITE with a final non-2xx status (or the stack gave up: 408). */
  | { kind: 'pbx-final'; status: number; reason: string }
  /** The PBX hung up an answered call. */
  | { kind: 'pbx-bye' }
  /** WhatsApp's terminate webhook: the user hung up, gave up, or the call failed. */
  | { kind: 'wa-terminate'; status: string; errorCode?: number }
  /** A Graph API call failed (pre_accept, accept). */
  | { kind: 'wa-api-error'; action: string; error: GraphApiError | Error }
  /** The media engine failed (rtpengine down, SDP refused). */
  | { kind: 'media-error'; message: string }
  /** Nobody answered within calls.ringTimeoutSec. */
  | { kind: 'ring-timeout' }
  /** The bridge is shutting down. */
  | { kind: 'shutdown' }
  /** A bug or unexpected exception in the bridge itself. */
  | { kind: 'internal-error'; message: string };

/** What each leg has reached, when the call starts to end. */
export interface LegStates {
  /** `accept` was sent to WhatsApp (it may still be in flight). */
  whatsappAccepted: boolean;
  /** The SIP leg: nothing sent yet, INVITE pending, dialog confirmed. */
  sip: 'none' | 'inviting' | 'confirmed';
}

export interface TeardownPlan {
  whatsapp: 'reject' | 'terminate' | 'none';
  sip: 'cancel' | 'bye' | 'none';
  /** Short, stable label for logs and metrics ("pbx-busy", "caller-hung-up"...). */
  label: string;
}

/**
 * PBX final statuses, most specific first (RFC 3261 section 21). Every row rejects the
 * WhatsApp call: WhatsApp has no busy/decline distinction, but the label keeps it for logs.
 */
const PBX_FINAL: ReadonlyArray<{ match: (s: number) => boolean; label: string }> = [
  { match: (s) => s === 486 || s === 600, label: 'pbx-busy' },
  { match: (s) => s === 603, label: 'pbx-declined' },
  { match: (s) => s === 404 || s === 604, label: 'pbx-not-found' },
  { match: (s) => s === 480, label: 'pbx-unavailable' },
  { match: (s) => s === 408, label: 'pbx-no-answer' },
  { match: (s) => s === 487, label: 'pbx-cancelled' },
  { match: (s) => s === 401 || s === 407 || s === 403, label: 'pbx-refused-auth' },
  { match: (s) => s >= 500 && s < 600, label: 'pbx-error' },
  { match: (s) => s >= 300 && s < 400, label: 'pbx-redirect-unsupported' },
  { match: () => true, label: 'pbx-failed' },
];

export function pbxFinalLabel(status: number): string {
  return PBX_FINAL.find((r) => r.match(status))!.label;
}

/**
 * Which side a cause comes from (that side is already gone and is told nothing), and its label.
 * `both` means neither side knows yet.
 */
const ORIGIN: { [K in EndCause['kind']]: { gone: 'whatsapp' | 'sip' | 'neither'; label: (c: Extract<EndCause, { kind: K }>) => string } } = {
  'pbx-final': { gone: 'sip', label: (c) => pbxFinalLabel(c.status) },
  'pbx-bye': { gone: 'sip', label: () => 'agent-hung-up' },
  'wa-terminate': { gone: 'whatsapp', label: (c) => (c.status === 'FAILED' ? 'whatsapp-failed' : 'caller-hung-up') },
  'wa-api-error': { gone: 'neither', label: (c) => `whatsapp-${c.action}-failed` },
  'media-error': { gone: 'neither', label: () => 'media-failed' },
  'ring-timeout': { gone: 'neither', label: () => 'ring-timeout' },
  shutdown: { gone: 'neither', label: () => 'shutdown' },
  'internal-error': { gone: 'neither', label: () => 'internal-error' },
};

/**
 * The teardown of a call: the side that ended it is left alone; the other is ended the way its
 * protocol wants for the state it reached:
 * - WhatsApp: `reject` before we accepted, `terminate` after.
 * - SIP: CANCEL while the INVITE is pending (RFC 3261 section 9), BYE once confirmed (15.1).
 */
export function planTeardown(cause: EndCause, legs: LegStates): TeardownPlan {
  const origin = ORIGIN[cause.kind] as { gone: 'whatsapp' | 'sip' | 'neither'; label: (c: EndCause) => string };
  const whatsapp = origin.gone === 'whatsapp' ? 'none' : legs.whatsappAccepted ? 'terminate' : 'reject';
  const sip = origin.gone === 'sip' ? 'none' : legs.sip === 'inviting' ? 'cancel' : legs.sip === 'confirmed' ? 'bye' : 'none';
  return { whatsapp, sip, label: origin.label(cause) };
}
