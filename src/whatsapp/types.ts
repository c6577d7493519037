/**
 * WhatsApp Business Calling: the closed set of webhook events the bridge understands and the
 * call actions it takes. Shapes follow Meta's Cloud API calling pages (user-initiated and
 * business-initiated calls); 360dialog forwards the same payloads.
 */

export type CallDirection = 'USER_INITIATED' | 'BUSINESS_INITIATED';

/** Common to every event of the `calls` field: which business number it concerns. */
export interface WaEventBase {
  /** `metadata.phone_number_id`: the Graph id the bridge acts on. */
  phoneNumberId: string;
  /** `metadata.display_phone_number`: the business number in digits. */
  businessNumber: string;
  /** Webhook timestamp, seconds since the epoch. */
  timestamp: number;
}

export interface WaConnectEvent extends WaEventBase {
  kind: 'connect';
  callId: string;
  direction: CallDirection;
  /** The WhatsApp user's number (`from` on user-initiated calls, `to` on business-initiated). */
  userWaId: string;
  /** `contacts[].profile.name` for the user, if WhatsApp sent one. */
  userName?: string;
  /** `offer` on user-initiated calls, `answer` on business-initiated ones. */
  sdpType: 'offer' | 'answer';
  /** `session.sdp`, or `connection.webrtc.sdp` when only that is present. */
  sdp: string;
  bizOpaqueCallbackData?: string;
}

export interface WaCallError {
  code: number;
  message?: string;
  details?: string;
}

export interface WaTerminateEvent extends WaEventBase {
  kind: 'terminate';
  callId: string;
  direction?: CallDirection;
  status: 'COMPLETED' | 'FAILED' | string;
  durationSec?: number;
  /** From the call's own `errors` or `value.errors`. */
  errors: WaCallError[];
  bizOpaqueCallbackData?: string;
}

export interface WaStatusEvent extends WaEventBase {
  kind: 'status';
  callId: string;
  status: 'RINGING' | 'ACCEPTED' | 'REJECTED' | string;
  bizOpaqueCallbackData?: string;
}

export interface WaPermissionReplyEvent extends WaEventBase {
  kind: 'permission_reply';
  userWaId: string;
  response: 'accept' | 'reject';
  isPermanent: boolean;
  /** Seconds since the epoch, for temporary grants. */
  expiresAt?: number;
  responseSource?: string;
}

export type WaEvent = WaConnectEvent | WaTerminateEvent | WaStatusEvent | WaPermissionReplyEvent;

/** A part of a webhook payload that is not one of the events above: logged and acknowledged. */
export interface WaIgnored {
  reason: string;
  field?: string;
  /** Set when the part failed strict validation (hostile or broken input): which check. */
  invalid?: 'call-id' | 'number' | 'phone-number-id' | 'sdp' | 'opaque' | 'status' | 'schema';
  /** The event's call id, when it had a valid one. */
  callId?: string;
  /** Set on the one entry that stands for the items beyond the per-POST cap: how many. */
  overCap?: number;
}

/** A field left out of an otherwise valid event (e.g. a profile name with control characters). */
export interface WaNote {
  kind: 'name-dropped';
  callId?: string;
  reason: string;
}

export interface ParsedWebhook {
  events: WaEvent[];
  ignored: WaIgnored[];
  /** Present only when something was left out. */
  notes?: WaNote[];
}

/** Graph `/calls` actions the bridge performs. Implemented for Meta and 360dialog. */
export interface WhatsAppCallsApi {
  preAccept(phoneNumberId: string, callId: string, sdp: string): Promise<void>;
  accept(phoneNumberId: string, callId: string, sdp: string, bizOpaqueCallbackData?: string): Promise<void>;
  reject(phoneNumberId: string, callId: string): Promise<void>;
  terminate(phoneNumberId: string, callId: string): Promise<void>;
  /** Business-initiated call; returns WhatsApp's call id (`wacid.…`). */
  connect(phoneNumberId: string, to: string, sdp: string, bizOpaqueCallbackData?: string): Promise<{ callId: string }>;
}

// ---- call permissions (UCP) -----------------------------------------------------------------

export type CallPermissionStatus = 'no_permission' | 'temporary' | 'permanent';

export interface CallPermissionLimit {
  /** ISO 8601 duration: `PT24H`, `P7D`. */
  timePeriod: string;
  maxAllowed?: number;
  currentUsage?: number;
  /** Seconds since the epoch. */
  limitExpirationTime?: number;
}

export interface CallPermissionAction {
  /** `send_call_permission_request` | `start_call` (others passed through). */
  actionName: string;
  canPerformAction: boolean;
  limits: CallPermissionLimit[];
}

export interface CallPermissions {
  status: CallPermissionStatus | string;
  /** Seconds since the epoch; Meta names it `expiration_time` or `expiration`. */
  expirationTime?: number;
  actions: CallPermissionAction[];
  /** `start_call.can_perform_action`: gate outbound dialling on this (Kapso). */
  canStartCall: boolean;
  /** `send_call_permission_request.can_perform_action`. */
  canRequestPermission: boolean;
}

/** The `/calls` actions plus the permission APIs of UCP. */
export interface WhatsAppCallingApi extends WhatsAppCallsApi {
  getCallPermissions(phoneNumberId: string, waId: string): Promise<CallPermissions>;
  /** Sends the interactive call_permission_request message; returns the message id (`wamid.…`). */
  sendCallPermissionRequest(phoneNumberId: string, to: string, bodyText?: string): Promise<{ messageId: string }>;
}

/**
 * A Graph API error (`{"error":{message,type,code,error_subcode,error_data,fbtrace_id}}`) or a
 * transport failure (code 0 with the HTTP status or network error in `message`).
 */
export class GraphApiError extends Error {
  override readonly name = 'GraphApiError';
  constructor(
    message: string,
    readonly httpStatus: number,
    readonly code: number,
    readonly subcode?: number,
    readonly fbtraceId?: string,
    readonly details?: string,
    readonly isTransient?: boolean,
  ) {
    super(message);
  }

  /** Transport failures: 'not-sent' (the connection never opened), 'lost' (sent, no answer). */
  transport?: 'not-sent' | 'lost';
  /** From a Retry-After header on the answer. */
  retryAfterMs?: number;
  /** Set when a non-idempotent action (connect) may have been done at Graph although it failed here. */
  outcomeUnknown?: boolean;
}
