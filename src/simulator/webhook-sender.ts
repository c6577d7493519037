/**
 * Meta-shaped WhatsApp calling webhooks for tests and the simulator: pure builders (so unit
 * tests can feed them to `parseWebhook`) and a sender that POSTs them signed like Meta
 * (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>`, section 2 of
 * docs/whatsapp-calling-api.md), or like 360dialog (`x-360dialog-signature`).
 *
 * Shapes follow the UIC/BIC/UCP samples (see test/fixtures/whatsapp).
 */
import { randomBytes } from 'node:crypto';
import { sign, sign360dialog } from '../whatsapp/signature.js';
import type { CallDirection, WaCallError } from '../whatsapp/types.js';

/** Which business number a webhook concerns (`metadata`) and its WABA (`entry[].id`). */
export interface WebhookTarget {
  phoneNumberId: string;
  businessNumber: string;
  wabaId?: string;
}

export type WebhookPayload = {
  object: 'whatsapp_business_account';
  entry: { id: string; changes: { field: string; value: Record<string, unknown> }[] }[];
};

const DEFAULT_WABA_ID = '366634483210360';

export function newCallId(): string {
  return `wacid.${randomBytes(18).toString('base64url')}`;
}

function nowSec(): string {
  return String(Math.floor(Date.now() / 1000));
}

function envelope(target: WebhookTarget, field: string, rest: Record<string, unknown>): WebhookPayload {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: target.wabaId ?? DEFAULT_WABA_ID,
        changes: [
          {
            field,
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: target.businessNumber, phone_number_id: target.phoneNumberId },
              ...rest,
            },
          },
        ],
      },
    ],
  };
}

function contacts(waId: string, name: string | undefined): Record<string, unknown> {
  return name === undefined ? {} : { contacts: [{ profile: { name }, wa_id: waId }] };
}

// ---- builders ------------------------------------------------------------------------------

export interface UserConnectSpec extends WebhookTarget {
  callId: string;
  userWaId: string;
  userName?: string;
  sdp: string;
  /** Seconds since the epoch; default now. */
  timestamp?: number;
}

/** A user-initiated `connect` with WhatsApp's SDP offer (UIC). */
export function buildUserConnectWebhook(s: UserConnectSpec): WebhookPayload {
  return envelope(s, 'calls', {
    ...contacts(s.userWaId, s.userName),
    calls: [
      {
        id: s.callId,
        from: s.userWaId,
        to: s.businessNumber,
        event: 'connect',
        timestamp: s.timestamp !== undefined ? String(s.timestamp) : nowSec(),
        direction: 'USER_INITIATED',
        session: { sdp_type: 'offer', sdp: s.sdp },
      },
    ],
  });
}

export interface BusinessConnectSpec extends WebhookTarget {
  callId: string;
  userWaId: string;
  /** WhatsApp's SDP answer. */
  sdp: string;
  bizOpaqueCallbackData?: string;
  /** Where the SDP sits: `session` (default `both`, like Meta's sample). */
  sdpAt?: 'session' | 'connection' | 'both';
  timestamp?: number;
}

/** A business-initiated `connect` carrying WhatsApp's SDP answer (BIC). */
export function buildBusinessConnectWebhook(s: BusinessConnectSpec): WebhookPayload {
  const at = s.sdpAt ?? 'both';
  const call: Record<string, unknown> = {
    id: s.callId,
    from: s.businessNumber,
    to: s.userWaId,
    event: 'connect',
    timestamp: s.timestamp !== undefined ? String(s.timestamp) : nowSec(),
    direction: 'BUSINESS_INITIATED',
  };
  if (s.bizOpaqueCallbackData !== undefined) call['biz_opaque_callback_data'] = s.bizOpaqueCallbackData;
  call['session'] = at === 'connection' ? { sdp_type: 'answer' } : { sdp_type: 'answer', sdp: s.sdp };
  if (at !== 'session') call['connection'] = { webrtc: { sdp: s.sdp } };
  return envelope(s, 'calls', { calls: [call] });
}

export interface TerminateSpec extends WebhookTarget {
  callId: string;
  userWaId: string;
  direction?: CallDirection;
  status: 'COMPLETED' | 'FAILED' | string;
  /** Set for answered calls: adds start_time, end_time and duration. */
  durationSec?: number;
  errors?: WaCallError[];
  /** Where `errors[]` goes: on the call (pion) or at `value.errors` (pipecat, default). */
  errorsAt?: 'call' | 'value';
  bizOpaqueCallbackData?: string;
  timestamp?: number;
}

/** A `terminate` (UIC/BIC); FAILED ones usually carry `errors`. */
export function buildTerminateWebhook(s: TerminateSpec): WebhookPayload {
  const direction = s.direction ?? 'USER_INITIATED';
  const ts = s.timestamp ?? Math.floor(Date.now() / 1000);
  const user = direction === 'USER_INITIATED';
  const call: Record<string, unknown> = {
    id: s.callId,
    from: user ? s.userWaId : s.businessNumber,
    to: user ? s.businessNumber : s.userWaId,
    event: 'terminate',
    direction,
    timestamp: String(ts),
    status: s.status,
  };
  if (s.bizOpaqueCallbackData !== undefined) call['biz_opaque_callback_data'] = s.bizOpaqueCallbackData;
  if (s.durationSec !== undefined) {
    call['start_time'] = String(ts - s.durationSec);
    call['end_time'] = String(ts);
    call['duration'] = s.durationSec;
  }
  const rest: Record<string, unknown> = { calls: [call] };
  if (s.errors && s.errors.length > 0) {
    const errors = s.errors.map((e) => {
      const o: Record<string, unknown> = { code: e.code };
      if (e.message !== undefined) o['message'] = e.message;
      o['href'] = 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/';
      if (e.details !== undefined) o['error_data'] = { details: e.details };
      return o;
    });
    if ((s.errorsAt ?? 'value') === 'call') call['errors'] = errors;
    else rest['errors'] = errors;
  }
  return envelope(s, 'calls', rest);
}

export interface StatusSpec extends WebhookTarget {
  callId: string;
  userWaId: string;
  status: 'RINGING' | 'ACCEPTED' | 'REJECTED' | string;
  bizOpaqueCallbackData?: string;
  timestamp?: number;
}

/** A `statuses[]` entry of a business-initiated call (BIC). */
export function buildStatusWebhook(s: StatusSpec): WebhookPayload {
  const st: Record<string, unknown> = {
    id: s.callId,
    type: 'call',
    status: s.status,
    timestamp: s.timestamp !== undefined ? String(s.timestamp) : nowSec(),
    recipient_id: s.userWaId,
  };
  if (s.bizOpaqueCallbackData !== undefined) st['biz_opaque_callback_data'] = s.bizOpaqueCallbackData;
  return envelope(s, 'calls', { statuses: [st] });
}

export interface PermissionReplySpec extends WebhookTarget {
  userWaId: string;
  userName?: string;
  response: 'accept' | 'reject';
  isPermanent?: boolean;
  /** Seconds since the epoch; temporary accepts only. */
  expiresAt?: number;
  responseSource?: 'user_action' | 'automatic' | string;
  /** The wamid of the request message this answers; omitted for profile grants. */
  contextId?: string;
  timestamp?: number;
}

/** A `call_permission_reply` on the `messages` field (UCP). */
export function buildPermissionReplyWebhook(s: PermissionReplySpec): WebhookPayload {
  const reply: Record<string, unknown> = { response: s.response, is_permanent: s.isPermanent ?? false };
  if (s.expiresAt !== undefined) reply['expiration_timestamp'] = s.expiresAt;
  reply['response_source'] = s.responseSource ?? 'user_action';
  const message: Record<string, unknown> = {
    from: s.userWaId,
    id: `wamid.${randomBytes(24).toString('base64url')}`,
    timestamp: s.timestamp !== undefined ? String(s.timestamp) : nowSec(),
    type: 'interactive',
  };
  if (s.contextId !== undefined) message['context'] = { from: s.businessNumber, id: s.contextId };
  message['interactive'] = { type: 'call_permission_reply', call_permission_reply: reply };
  return envelope(s, 'messages', { ...contacts(s.userWaId, s.userName), messages: [message] });
}

// ---- sending -------------------------------------------------------------------------------

export interface SendWebhookOptions {
  /** HMAC secret; '' sends no signature header (a 360dialog direct client). */
  appSecret: string;
  /**
   * 360dialog's custom webhook header (its authentication for direct clients), sent on every
   * POST; with `signature: 'wrong'` its value is wrong too, with 'none' it is left out.
   */
  authHeader?: { name: string; value: string } | undefined;
  /** `valid` (default), `wrong` (signed with another secret) or `none` (no header). */
  signature?: 'valid' | 'wrong' | 'none';
  /** Header format: Meta's `X-Hub-Signature-256` (default) or 360dialog's. */
  provider?: 'meta' | '360dialog';
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * POST a payload (an object, serialised once, or raw bytes/text sent as is) and return the
 * HTTP status. The signature covers exactly the bytes sent.
 */
export async function sendWebhook(url: string, payload: unknown, opts: SendWebhookOptions): Promise<number> {
  const raw = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  const mode = opts.signature ?? 'valid';
  if (opts.authHeader && mode !== 'none') headers[opts.authHeader.name.toLowerCase()] = mode === 'wrong' ? `${opts.authHeader.value}-wrong` : opts.authHeader.value;
  if (mode !== 'none' && opts.appSecret !== '') {
    const secret = mode === 'wrong' ? `${opts.appSecret}-wrong` : opts.appSecret;
    if ((opts.provider ?? 'meta') === 'meta') headers['x-hub-signature-256'] = sign(raw, secret);
    else headers['x-360dialog-signature'] = sign360dialog(raw, secret);
  }
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: raw,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 5_000),
  });
  await res.arrayBuffer(); // drain so the connection is reusable
  return res.status;
}

/** The part of the Graph simulator the sender keeps in step with the webhooks it sends. */
export interface CallRegistry {
  registerCall(callId: string, phoneNumberId: string): void;
  markTerminated(callId: string): void;
}

export interface WebhookSenderOptions extends WebhookTarget {
  url: string;
  appSecret: string;
  provider?: 'meta' | '360dialog';
  authHeader?: { name: string; value: string } | undefined;
  /** When given, user-initiated connects register the call and terminates end it. */
  simulator?: CallRegistry;
}

type Sign = Pick<SendWebhookOptions, 'signature'>;

/** A sender bound to one webhook URL and one business number. */
export interface WebhookSender {
  /** A user calls the business. Registers the call with the simulator. */
  userCall(spec: { userWaId: string; sdp: string; userName?: string; callId?: string }, sign?: Sign): Promise<{ callId: string; status: number }>;
  businessConnect(spec: Omit<BusinessConnectSpec, keyof WebhookTarget>, sign?: Sign): Promise<number>;
  terminate(spec: Omit<TerminateSpec, keyof WebhookTarget>, sign?: Sign): Promise<number>;
  status(spec: Omit<StatusSpec, keyof WebhookTarget>, sign?: Sign): Promise<number>;
  permissionReply(spec: Omit<PermissionReplySpec, keyof WebhookTarget>, sign?: Sign): Promise<number>;
  send(payload: unknown, sign?: Sign): Promise<number>;
}

export function createWebhookSender(opts: WebhookSenderOptions): WebhookSender {
  const target: WebhookTarget = { phoneNumberId: opts.phoneNumberId, businessNumber: opts.businessNumber };
  if (opts.wabaId !== undefined) target.wabaId = opts.wabaId;
  const send = (payload: unknown, s?: Sign) =>
    sendWebhook(opts.url, payload, {
      appSecret: opts.appSecret,
      authHeader: opts.authHeader,
      ...(opts.provider ? { provider: opts.provider } : {}),
      ...(s?.signature ? { signature: s.signature } : {}),
    });
  return {
    async userCall(spec, s) {
      const callId = spec.callId ?? newCallId();
      // Register before sending: the bridge may pre_accept before the webhook POST returns.
      opts.simulator?.registerCall(callId, opts.phoneNumberId);
      const c: UserConnectSpec = { ...target, callId, userWaId: spec.userWaId, sdp: spec.sdp };
      if (spec.userName !== undefined) c.userName = spec.userName;
      const status = await send(buildUserConnectWebhook(c), s);
      return { callId, status };
    },
    businessConnect: (spec, s) => send(buildBusinessConnectWebhook({ ...target, ...spec }), s),
    async terminate(spec, s) {
      opts.simulator?.markTerminated(spec.callId);
      return send(buildTerminateWebhook({ ...target, ...spec }), s);
    },
    status: (spec, s) => send(buildStatusWebhook({ ...target, ...spec }), s),
    permissionReply: (spec, s) => send(buildPermissionReplyWebhook({ ...target, ...spec }), s),
    send,
  };
}
