import { quotedString, warningValue } from '../sip/headers.js';
import type { MediaFailure, MediaFailureKind } from '../media/types.js';
import type { GraphApiError } from '../whatsapp/types.js';
import { describeWaError, SDP_VALIDATION_SUBCODE, WA_ERROR, WA_UNREACHABLE_SIP } from '../whatsapp/errors.js';

/** WhatsApp's terminate webhook: the user hung up, gave up, or the call failed. */
export type WaTerminateCause = { kind: 'wa-terminate'; status: string; errorCode?: number };
/** The media engine reported, on its own, that the call's media failed (MediaSession.onFailure). */
export type MediaFailureCause = { kind: 'media-failure'; failure: MediaFailure };
/** The call reached calls.maxDurationSec. */
export type MaxDurationCause = { kind: 'max-duration' };
/** An operator hung the call up (admin API); `by` names the admin token. */
export type AdminHangupCause = { kind: 'admin-hangup'; by: string };
/** Causes both call directions share; `BridgedCall` raises them. */
export type CommonEndCause = WaTerminateCause | MediaFailureCause | MaxDurationCause | AdminHangupCause;

/** A media failure's label: what the logs, the call record and the Reason header name. */
const MEDIA_FAILURE_LABEL: Readonly<Record<MediaFailureKind, string>> = {
  'webrtc-failed': 'whatsapp-webrtc-failed',
  'whatsapp-media-timeout': 'whatsapp-media-timeout',
  'engine-dead': 'media-engine-dead',
};

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
  | CommonEndCause
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
  'media-failure': { gone: 'neither', label: (c) => MEDIA_FAILURE_LABEL[c.failure.kind] },
  'max-duration': { gone: 'neither', label: () => 'max-duration' },
  'admin-hangup': { gone: 'neither', label: () => 'admin-hangup' },
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
  return { whatsapp, sip: endSipLeg(origin.gone, legs.sip), label: origin.label(cause) };
}

/** The SIP leg we placed (inbound, click to call): CANCEL while pending, BYE once confirmed, unless the PBX ended it. */
function endSipLeg(gone: 'whatsapp' | 'sip' | 'neither', sip: LegStates['sip']): TeardownPlan['sip'] {
  return gone === 'sip' ? 'none' : sip === 'inviting' ? 'cancel' : sip === 'confirmed' ? 'bye' : 'none';
}

// ---- click to call (the bridge calls a WhatsApp user, then an extension) ----------------------

/** Why a click-to-call ends: the causes of both directions, with which ring timer ran out. */
export type ClickEndCause =
  | Exclude<EndCause, { kind: 'ring-timeout' } | { kind: 'wa-api-error' } | { kind: 'media-error' }>
  /** WhatsApp's RINGING → REJECTED: the user declined; the extension is never rung. */
  | { kind: 'wa-rejected' }
  | { kind: 'wa-api-error'; action: string; code: number; subcode?: number; message: string }
  | { kind: 'no-permission' }
  /** `unsupported`: the media engine cannot place such calls (rtpengine). */
  | { kind: 'media-error'; message: string; unsupported?: boolean }
  /** The WhatsApp user (clickToCallRingSec) or the extension (calls.ringTimeoutSec) did not answer. */
  | { kind: 'ring-timeout'; side: 'whatsapp' | 'pbx' };

export interface ClickTeardownPlan {
  whatsapp: 'terminate' | 'none';
  sip: TeardownPlan['sip'];
  label: string;
}

/**
 * The teardown of a click-to-call. WhatsApp: `terminate` once `connect` gave a call id and
 * WhatsApp did not end the call itself (business-initiated calls have no reject). SIP (the
 * extension, INVITEd only once the WhatsApp user answered): CANCEL while ringing, BYE once up.
 */
export function planClickTeardown(cause: ClickEndCause, legs: { whatsappCallStarted: boolean; sip: LegStates['sip'] }): ClickTeardownPlan {
  let gone: 'whatsapp' | 'sip' | 'neither' = 'neither';
  let label: string;
  switch (cause.kind) {
    case 'wa-rejected':
      [gone, label] = ['whatsapp', 'user-declined'];
      break;
    case 'wa-terminate':
      [gone, label] = ['whatsapp', cause.status === 'FAILED' ? 'whatsapp-failed' : 'user-hung-up'];
      break;
    case 'no-permission':
      label = 'wa-no-permission';
      break;
    case 'ring-timeout':
      label = cause.side === 'whatsapp' ? 'no-answer' : 'ring-timeout';
      break;
    case 'wa-api-error':
      // A failed `connect` started nothing on WhatsApp's side.
      [gone, label] = [cause.action === 'connect' ? 'whatsapp' : 'neither', `whatsapp-${cause.action}-failed`];
      break;
    case 'media-error':
      label = 'media-failed';
      break;
    default: {
      const origin = ORIGIN[cause.kind] as { gone: 'whatsapp' | 'sip' | 'neither'; label: (c: EndCause) => string };
      [gone, label] = [origin.gone, origin.label(cause)];
    }
  }
  return { whatsapp: gone === 'whatsapp' || !legs.whatsappCallStarted ? 'none' : 'terminate', sip: endSipLeg(gone, legs.sip), label };
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
  /** WhatsApp's terminate webhook (with the first error code, on FAILED), media failure, max duration. */
  | CommonEndCause
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
  /** Seconds for a Retry-After header (503 refusals). */
  retryAfterSec?: number;
}

export interface OutboundTeardownPlan {
  whatsapp: 'terminate' | 'none';
  sip: { kind: 'final'; final: SipFinal } | { kind: 'bye' } | { kind: 'none' };
  label: string;
}

/**
 * A WhatsApp error code → the SIP final response the agent's phone gets, from the one table of
 * WhatsApp codes (whatsapp/errors.ts). Code 100 is split by its subcode: an SDP Meta refused
 * is 488, any other invalid parameter 500. Code 0 means Graph gave no answer at all.
 */
export function waErrorToSip(code: number | undefined, subcode?: number): { final: SipFinal; label: string } {
  if (code === WA_ERROR.invalidParameter) {
    const sdp = subcode === SDP_VALIDATION_SUBCODE;
    return {
      final: { status: sdp ? 488 : 500, reason: sdp ? 'Not Acceptable Here' : 'Server Internal Error', warning: `WhatsApp ${code}: ${sdp ? 'SDP refused' : 'invalid parameter'}` },
      label: sdp ? 'wa-sdp-refused' : 'wa-invalid-parameter',
    };
  }
  const row = code === undefined ? undefined : code === 0 ? WA_UNREACHABLE_SIP : describeWaError(code)?.sip;
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
        final(403, 'Forbidden', `WhatsApp ${WA_ERROR.noPermission}: no call permission from this user${cause.permissionRequested ? '; a permission request was sent' : ''}`),
      );
    case 'media-error':
      return bridgeEnds('media-failed', cause.beforeConnect ? final(488, 'Not Acceptable Here', `media: ${cause.message}`) : final(500, 'Server Internal Error', `media: ${cause.message}`));
    case 'media-failure':
      return bridgeEnds(MEDIA_FAILURE_LABEL[cause.failure.kind], final(480, 'Temporarily Unavailable', `media: ${cause.failure.detail}`));
    case 'max-duration':
      return bridgeEnds('max-duration', final(480, 'Temporarily Unavailable', 'maximum call duration reached'));
    case 'admin-hangup':
      return bridgeEnds('admin-hangup', final(480, 'Temporarily Unavailable', 'ended by an operator'));
    case 'ring-timeout':
      return bridgeEnds('no-answer', final(480, 'Temporarily Unavailable', 'WhatsApp: no answer'));
    case 'shutdown':
      return bridgeEnds('shutdown', final(503, 'Service Unavailable', 'bridge shutting down'));
    case 'internal-error':
      return bridgeEnds('internal-error', final(500, 'Server Internal Error', 'bridge error'));
  }
}

// ---- what the SIP leg is told -----------------------------------------------------------------

/**
 * The Q.850 cause (RFC 3326 `Reason: Q.850;cause=N`) a BYE or CANCEL carries for a teardown
 * label: a PBX records it as the hang-up cause (Asterisk's HANGUPCAUSE). 16 normal clearing,
 * 19 no answer, 41 temporary failure, 102 recovery on timer expiry; the text names the label.
 */
const Q850: ReadonlyArray<{ labels: readonly string[]; cause: number }> = [
  { labels: ['caller-hung-up', 'user-hung-up', 'agent-hung-up', 'agent-cancelled', 'admin-hangup'], cause: 16 },
  { labels: ['ring-timeout', 'no-answer'], cause: 19 },
  { labels: ['max-duration'], cause: 102 },
];

/** The `Reason` header value for a BYE or CANCEL that ends a call with `label`. */
export function sipReasonHeader(label: string): string {
  const cause = Q850.find((r) => r.labels.includes(label))?.cause ?? 41;
  return `Q.850;cause=${cause};text=${quotedString(label, 80)}`;
}

/**
 * Why the bridge refuses a new INVITE from the PBX before any call exists. Every refusal names
 * its cause in a Warning (RFC 3261 section 20.43); the 503s carry Retry-After (section 21.5.4)
 * so the PBX tries another route or comes back later.
 */
export type RefusalKind = 'outbound-disabled' | 'not-allowed' | 'bad-number' | 'draining' | 'no-business-number' | 'over-capacity' | 'setup-rate';

const REFUSALS: Readonly<Record<RefusalKind, { status: number; reason: string; text: string; retryAfterSec?: number }>> = {
  'outbound-disabled': { status: 403, reason: 'Forbidden', text: 'outbound calls are disabled' },
  'not-allowed': { status: 403, reason: 'Forbidden', text: 'not allowed to place calls' },
  'bad-number': { status: 484, reason: 'Address Incomplete', text: 'not a WhatsApp number' },
  draining: { status: 503, reason: 'Service Unavailable', text: 'bridge shutting down', retryAfterSec: 30 },
  'no-business-number': { status: 503, reason: 'Service Unavailable', text: 'no business number configured' },
  'over-capacity': { status: 503, reason: 'Service Unavailable', text: 'bridge at its concurrent call limit', retryAfterSec: 5 },
  'setup-rate': { status: 503, reason: 'Service Unavailable', text: 'bridge at its call set-up rate limit', retryAfterSec: 1 },
};

/** The final response refusing an INVITE; `detail` (e.g. why a number is invalid) replaces the stock text. */
export function sipRefusal(kind: RefusalKind, detail?: string): SipFinal {
  const r = REFUSALS[kind];
  return { status: r.status, reason: r.reason, warning: detail ?? r.text, ...(r.retryAfterSec !== undefined ? { retryAfterSec: r.retryAfterSec } : {}) };
}

/** The headers of a final response: Warning (what a desk phone shows), Reason, Retry-After. */
export function sipFinalHeaders(f: SipFinal): Record<string, string> {
  // The Warning text may carry outside data (a dialled number's reason): sanitised where every
  // header value built from outside data is (src/sip/headers.ts).
  return {
    Warning: warningValue(f.warning),
    Reason: `SIP;cause=${f.status};text=${quotedString(f.warning, 200)}`,
    ...(f.retryAfterSec !== undefined ? { 'Retry-After': String(f.retryAfterSec) } : {}),
  };
}
