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

// ---- outbound calls (an agent dials a WhatsApp user) ------------------------------------------

/** Why an outbound call ends. */
export type OutboundEndCause =
  /** The PBX CANCELled before WhatsApp answered. */
  | { kind: 'pbx-cancel' }
  /** The PBX hung up the answered call. */
  | { kind: 'pbx-bye' }
  /** WhatsApp's RINGING → REJECTED: the user declined. */
  | { kind: 'wa-rejected' }
  /** WhatsApp's terminate webhook (with the first error code, on FAILED). */
  | { kind: 'wa-terminate'; status: string; errorCode?: number }
  /** Graph refused `connect` (or another action) with a Graph error code (0: no answer at all). */
  | { kind: 'wa-api-error'; action: string; code: number; subcode?: number; message: string }
  /** The permission check said the business may not call this user. */
  | { kind: 'no-permission'; permissionRequested: boolean }
  /** The PBX's SDP could not be bridged (offerless INVITE, no common codec) or media failed. */
  | { kind: 'media-error'; message: string; beforeConnect: boolean }
  | { kind: 'ring-timeout' }
  | { kind: 'shutdown' }
  | { kind: 'internal-error'; message: string };

export interface SipFinal {
  status: number;
  reason: string;
  /** `Warning: 399 <agent> "<text>"` (RFC 3261 section 20.43): what a desk phone can show. */
  warning: string;
}

export interface OutboundTeardownPlan {
  whatsapp: 'terminate' | 'none';
  sip: { kind: 'final'; final: SipFinal } | { kind: 'bye' } | { kind: 'none' };
  label: string;
}

/**
 * WhatsApp calling error codes → the SIP final response the agent's phone gets. A PBX shows
 * 403/404/480/486/503 sensibly; the Warning text names the WhatsApp cause.
 */
const WA_ERROR_TO_SIP: ReadonlyArray<{ codes: readonly number[]; status: number; reason: string; text: string; label: string }> = [
  { codes: [138006], status: 403, reason: 'Forbidden', text: 'no WhatsApp call permission from this user', label: 'wa-no-permission' },
  { codes: [138001], status: 404, reason: 'Not Found', text: 'this number cannot receive WhatsApp calls', label: 'wa-uncallable' },
  { codes: [138012], status: 403, reason: 'Forbidden', text: 'daily limit of calls to this user reached', label: 'wa-user-daily-limit' },
  { codes: [138013], status: 403, reason: 'Forbidden', text: 'business-initiated calls unavailable in this country', label: 'wa-country' },
  { codes: [138000, 138014, 138015, 138018, 131055], status: 403, reason: 'Forbidden', text: 'calling not enabled for this business number', label: 'wa-calling-disabled' },
  { codes: [138002], status: 503, reason: 'Service Unavailable', text: 'too many concurrent WhatsApp calls', label: 'wa-concurrency-limit' },
  { codes: [138005, 613], status: 503, reason: 'Service Unavailable', text: 'WhatsApp call rate limit reached', label: 'wa-rate-limit' },
  { codes: [138003], status: 486, reason: 'Busy Here', text: 'a call to this user is already in progress', label: 'wa-duplicate-call' },
  { codes: [138007], status: 408, reason: 'Request Timeout', text: 'WhatsApp connect timeout', label: 'wa-connect-timeout' },
  { codes: [138021, 138022, 138023], status: 480, reason: 'Temporarily Unavailable', text: 'WhatsApp media failed', label: 'wa-media-timeout' },
  { codes: [190], status: 503, reason: 'Service Unavailable', text: 'bridge cannot authenticate to WhatsApp', label: 'wa-auth' },
  { codes: [0], status: 503, reason: 'Service Unavailable', text: 'WhatsApp API unreachable', label: 'wa-unreachable' },
];

export function waErrorToSip(code: number | undefined, subcode?: number): { final: SipFinal; label: string } {
  if (code === 100) {
    const sdp = subcode === 2494010;
    return {
      final: { status: sdp ? 488 : 500, reason: sdp ? 'Not Acceptable Here' : 'Server Internal Error', warning: `WhatsApp 100: ${sdp ? 'SDP refused' : 'invalid parameter'}` },
      label: sdp ? 'wa-sdp-refused' : 'wa-invalid-parameter',
    };
  }
  const row = code === undefined ? undefined : WA_ERROR_TO_SIP.find((r) => r.codes.includes(code));
  if (!row) {
    return { final: { status: 480, reason: 'Temporarily Unavailable', warning: code === undefined ? 'WhatsApp call failed' : `WhatsApp ${code}: call failed` }, label: 'wa-failed' };
  }
  return { final: { status: row.status, reason: row.reason, warning: `WhatsApp ${code}: ${row.text}` }, label: row.label };
}

const final = (status: number, reason: string, warning: string): OutboundTeardownPlan['sip'] => ({ kind: 'final', final: { status, reason, warning } });

/**
 * The teardown of an outbound call. WhatsApp: `terminate` once a call id exists and WhatsApp
 * did not end it itself (there is no reject for business-initiated calls). SIP: a final
 * response while the INVITE is unanswered, BYE once confirmed.
 */
export function planOutboundTeardown(cause: OutboundEndCause, legs: { whatsappCallStarted: boolean; sip: 'proceeding' | 'confirmed' }): OutboundTeardownPlan {
  const answered = legs.sip === 'confirmed';
  const waEnds = (label: string, sipFinal: OutboundTeardownPlan['sip']): OutboundTeardownPlan => ({
    whatsapp: 'none',
    sip: answered ? { kind: 'bye' } : sipFinal,
    label,
  });
  const bridgeEnds = (label: string, sipFinal: OutboundTeardownPlan['sip']): OutboundTeardownPlan => ({
    whatsapp: legs.whatsappCallStarted ? 'terminate' : 'none',
    sip: answered ? { kind: 'bye' } : sipFinal,
    label,
  });
  switch (cause.kind) {
    case 'pbx-cancel':
      return { whatsapp: legs.whatsappCallStarted ? 'terminate' : 'none', sip: { kind: 'none' }, label: 'agent-cancelled' };
    case 'pbx-bye':
      return { whatsapp: legs.whatsappCallStarted ? 'terminate' : 'none', sip: { kind: 'none' }, label: 'agent-hung-up' };
    case 'wa-rejected':
      return waEnds('user-declined', final(603, 'Decline', 'WhatsApp: the user declined the call'));
    case 'wa-terminate': {
      if (answered) return waEnds('user-hung-up', { kind: 'bye' });
      if (cause.errorCode !== undefined) {
        const m = waErrorToSip(cause.errorCode);
        return waEnds(m.label, { kind: 'final', final: m.final });
      }
      return waEnds('user-unavailable', final(480, 'Temporarily Unavailable', 'WhatsApp: the user did not answer'));
    }
    case 'wa-api-error': {
      const m = waErrorToSip(cause.code, cause.subcode);
      // The call never started on WhatsApp's side when `connect` itself failed.
      return { whatsapp: cause.action === 'connect' ? 'none' : legs.whatsappCallStarted ? 'terminate' : 'none', sip: answered ? { kind: 'bye' } : { kind: 'final', final: m.final }, label: m.label };
    }
    case 'no-permission':
      return bridgeEnds(
        'wa-no-permission',
        final(403, 'Forbidden', `WhatsApp 138006: no call permission from this user${cause.permissionRequested ? '; a permission request was sent' : ''}`),
      );
    case 'media-error':
      return bridgeEnds('media-failed', cause.beforeConnect ? final(488, 'Not Acceptable Here', `media: ${cause.message}`) : final(500, 'Server Internal Error', `media: ${cause.message}`));
    case 'ring-timeout':
      return bridgeEnds('no-answer', final(480, 'Temporarily Unavailable', 'WhatsApp: no answer'));
    case 'shutdown':
      return bridgeEnds('shutdown', final(503, 'Service Unavailable', 'bridge shutting down'));
    case 'internal-error':
      return bridgeEnds('internal-error', final(500, 'Server Internal Error', 'bridge error'));
  }
}
