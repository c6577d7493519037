/**
 * WhatsApp calling over HTTP: Meta's Graph API or 360dialog's pass-through of it.
 *
 * Meta (UIC/BIC pages, docs/whatsapp-calling-api.md section 1):
 *   POST {baseUrl}/{version}/{phoneNumberId}/calls          Authorization: Bearer <token>
 *   GET  {baseUrl}/{version}/{phoneNumberId}/call_permissions?user_wa_id=<digits>   (UCP)
 *   POST {baseUrl}/{version}/{phoneNumberId}/messages       (call_permission_request)
 * 360dialog (docs.360dialog.com calling API reference):
 *   POST {baseUrl}/calling/calls                            D360-API-KEY: <key>
 *   GET  {baseUrl}/calling/permissions/{wa_id}
 *   POST {baseUrl}/messages
 *   The API key is bound to one number, so `phoneNumberId` is only used for logs there.
 *
 * Bodies are Meta's in both cases. Errors: Meta sends
 * `{"error":{message,type,code,error_subcode,error_data:{details},is_transient,fbtrace_id}}`,
 * 360dialog `{"error":"<string>"}` (from which a `(#code)` prefix is read when present); both
 * become a GraphApiError. A network failure or timeout (`timeoutMs` for the whole exchange, body
 * included) is GraphApiError with code 0 and httpStatus 0.
 *
 * HTTP: undici's `request` on one keep-alive `Agent` per client (so per Graph base URL), not
 * `fetch`: fetch's Request/Response objects and web streams cost about 0.5 ms of CPU per action
 * at 100 set-ups/s (docs/scaling.md), the largest cost on the bridge's set-up path.
 *
 * Retries: every action goes through ./graph-retry.ts (bounded, backoff with jitter, Retry-After,
 * "already done" = success; a connect whose answer was lost is never sent again).
 *
 * Logging: every request at debug, on a pino child carrying the call id; never headers, token,
 * key or SDP text (only its length).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Agent, request as httpRequest } from 'undici';
import type { WhatsAppCounters } from './counters.js';
import { DEFAULT_RETRY_POLICY, parseRetryAfter, withRetries, type GraphAction, type RetryPolicy } from './graph-retry.js';
import {
  GraphApiError,
  type CallPermissionAction,
  type CallPermissionLimit,
  type CallPermissions,
  type WhatsAppCallingApi,
} from './types.js';

export const DEFAULT_GRAPH_TIMEOUT_MS = 10_000;

interface CommonOptions {
  /** Default DEFAULT_RETRY_POLICY (3 tries); `{ attempts: 1, … }` disables retries. */
  retry?: RetryPolicy | undefined;
  counters?: WhatsAppCounters | undefined;
  /** For tests: replaces the delay between retries. */
  sleep?: (ms: number) => Promise<void>;
}

export interface MetaCallsApiOptions extends CommonOptions {
  provider: 'meta';
  /** e.g. `https://graph.facebook.com` */
  baseUrl: string;
  /** e.g. `v23.0` */
  version: string;
  accessToken: string;
  timeoutMs?: number;
  logger: Logger;
}

export interface D360CallsApiOptions extends CommonOptions {
  provider: '360dialog';
  /** e.g. `https://waba-v2.360dialog.io` */
  baseUrl: string;
  apiKey: string;
  timeoutMs?: number;
  logger: Logger;
}

export type CallsApiOptions = MetaCallsApiOptions | D360CallsApiOptions;

export type { CallPermissionStatus, CallPermissionLimit, CallPermissionAction, CallPermissions, WhatsAppCallingApi } from './types.js';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

/** Turn a non-2xx answer into a GraphApiError (Meta's shape, 360dialog's string, or neither). */
export function graphErrorFromResponse(httpStatus: number, body: unknown, rawText: string): GraphApiError {
  const derivedTransient = httpStatus >= 500 || httpStatus === 429;
  if (isObject(body) && isObject(body['error'])) {
    const e = body['error'];
    const code = num(e['code']) ?? 0;
    const message = typeof e['message'] === 'string' ? e['message'] : `HTTP ${httpStatus}`;
    const errorData = isObject(e['error_data']) ? e['error_data'] : undefined;
    const details = typeof errorData?.['details'] === 'string' ? errorData['details'] : undefined;
    const transient = typeof e['is_transient'] === 'boolean' ? e['is_transient'] : derivedTransient || code === 138004;
    return new GraphApiError(
      message,
      httpStatus,
      code,
      num(e['error_subcode']),
      typeof e['fbtrace_id'] === 'string' ? e['fbtrace_id'] : undefined,
      details,
      transient,
    );
  }
  if (isObject(body) && typeof body['error'] === 'string') {
    // 360dialog: {"error":"<string>"}; a Graph message inside keeps its "(#138006) …" prefix.
    const message = body['error'];
    const m = /\(#(\d+)\)/.exec(message);
    const code = m ? Number(m[1]) : 0;
    return new GraphApiError(message, httpStatus, code, undefined, undefined, undefined, derivedTransient || code === 138004);
  }
  const snippet = rawText.length > 200 ? `${rawText.slice(0, 200)}…` : rawText;
  return new GraphApiError(`HTTP ${httpStatus}${snippet ? `: ${snippet}` : ''}`, httpStatus, 0, undefined, undefined, undefined, derivedTransient);
}

function parsePermissions(body: unknown): CallPermissions {
  const root = isObject(body) ? body : {};
  const p = isObject(root['permission']) ? root['permission'] : {};
  const actions: CallPermissionAction[] = (Array.isArray(root['actions']) ? root['actions'] : [])
    .filter(isObject)
    .map((a) => ({
      actionName: typeof a['action_name'] === 'string' ? a['action_name'] : '',
      canPerformAction: a['can_perform_action'] === true,
      limits: (Array.isArray(a['limits']) ? a['limits'] : []).filter(isObject).map((l) => {
        const limit: CallPermissionLimit = { timePeriod: typeof l['time_period'] === 'string' ? l['time_period'] : '' };
        const max = num(l['max_allowed']);
        const used = num(l['current_usage']);
        const exp = num(l['limit_expiration_time']);
        if (max !== undefined) limit.maxAllowed = max;
        if (used !== undefined) limit.currentUsage = used;
        if (exp !== undefined) limit.limitExpirationTime = exp;
        return limit;
      }),
    }));
  const result: CallPermissions = {
    status: typeof p['status'] === 'string' ? p['status'] : 'no_permission',
    actions,
    canStartCall: actions.some((a) => a.actionName === 'start_call' && a.canPerformAction),
    canRequestPermission: actions.some((a) => a.actionName === 'send_call_permission_request' && a.canPerformAction),
  };
  const exp = num(p['expiration_time']) ?? num(p['expiration']);
  if (exp !== undefined) result.expirationTime = exp;
  return result;
}

interface RequestSpec {
  method: 'GET' | 'POST';
  /** Path after the provider prefix, already encoded. */
  url: string;
  body?: Json;
  /** For the log line: the call id, or another id naming the request. */
  logIds: Record<string, string>;
  what: GraphAction;
}

class HttpCallsApi implements WhatsAppCallingApi {
  private readonly timeoutMs: number;
  private readonly base: string;
  /**
   * Keep-alive connections to the Graph host, reused across actions (undici's defaults: idle
   * sockets closed after 4 s or the server's Keep-Alive hint, no cap on connections, no
   * pipelining). The deadline is ours (`timeoutMs`, below); undici's own per-phase timeouts are
   * set to the same value so that they never fire first with another message.
   */
  private readonly agent: Agent;

  constructor(private readonly opts: CallsApiOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_GRAPH_TIMEOUT_MS;
    this.base = opts.baseUrl.replace(/\/+$/, '');
    const t = this.timeoutMs + 1000;
    this.agent = new Agent({ headersTimeout: t, bodyTimeout: t, connect: { timeout: t } });
  }

  // ---- URLs and auth ---------------------------------------------------------------------

  private metaUrl(phoneNumberId: string, tail: string): string {
    const o = this.opts as MetaCallsApiOptions;
    const version = o.version.replace(/^\/+|\/+$/g, '');
    return `${this.base}/${version}/${encodeURIComponent(phoneNumberId)}/${tail}`;
  }

  private callsUrl(phoneNumberId: string): string {
    return this.opts.provider === 'meta' ? this.metaUrl(phoneNumberId, 'calls') : `${this.base}/calling/calls`;
  }

  private authHeaders(): Record<string, string> {
    return this.opts.provider === 'meta'
      ? { authorization: `Bearer ${this.opts.accessToken}` }
      : { 'd360-api-key': this.opts.apiKey };
  }

  // ---- transport -------------------------------------------------------------------------

  private async request(spec: RequestSpec): Promise<unknown> {
    // The child logger and the URL path are built only when a line is logged: at info level a
    // request that succeeds logs nothing, and both were garbage on every call's hot path.
    let child: Logger | undefined;
    const log = (): Logger => (child ??= this.opts.logger.child({ provider: this.opts.provider, ...spec.logIds }));
    const debug = this.opts.logger.isLevelEnabled('debug');
    const started = Date.now();
    let urlPath: string | undefined;
    const pathOf = (): string => (urlPath ??= URL.canParse(spec.url) ? new URL(spec.url).pathname : spec.url);
    if (debug) log().debug({ method: spec.method, path: pathOf(), what: spec.what }, 'whatsapp api request');
    const headers: Record<string, string> = { accept: 'application/json', ...this.authHeaders() };
    if (spec.body) headers['content-type'] = 'application/json';

    // One deadline for the whole exchange (connect, headers, body), as fetch's AbortSignal.timeout
    // gave, but with a timer cleared at the end instead of one left pending for timeoutMs. The
    // signal is a plain EventEmitter (undici accepts one): creating an AbortController cost
    // about 57 us per action in the 100/s profile, a third of the client's CPU.
    const abort = new EventEmitter();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.emit('abort');
    }, this.timeoutMs);
    let status = 0;
    let retryAfter: string | null = null;
    let text = '';
    try {
      let res: Awaited<ReturnType<typeof httpRequest>>;
      try {
        // Inside the try: an invalid URL is reported as a transport failure too.
        res = await httpRequest(spec.url, {
          dispatcher: this.agent,
          method: spec.method,
          headers,
          ...(spec.body ? { body: JSON.stringify(spec.body) } : {}),
          signal: abort,
        });
      } catch (err) {
        const late = timedOut || TIMEOUT_CODES.has(errCode(err));
        const reason = late ? `timeout after ${this.timeoutMs} ms` : `network error: ${errorText(err)}`;
        log().warn({ path: pathOf(), what: spec.what, ms: Date.now() - started, reason }, 'whatsapp api request failed');
        const e = new GraphApiError(reason, 0, 0, undefined, undefined, undefined, true);
        e.transport = !late && NOT_SENT_CODES.has(errCode(err)) ? 'not-sent' : 'lost';
        throw e;
      }
      status = res.statusCode;
      const ra = res.headers['retry-after'];
      retryAfter = Array.isArray(ra) ? (ra[0] ?? null) : (ra ?? null);
      try {
        text = await res.body.text();
      } catch (err) {
        const reason = timedOut ? `timeout after ${this.timeoutMs} ms` : errorText(err);
        log().warn({ path: pathOf(), what: spec.what, status, reason }, 'whatsapp api body read failed');
        const e = new GraphApiError(`network error reading body: ${reason}`, status, 0, undefined, undefined, undefined, true);
        e.transport = 'lost';
        throw e;
      }
    } finally {
      clearTimeout(timer);
    }
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    const ms = Date.now() - started;

    if (status < 200 || status > 299) {
      const err = graphErrorFromResponse(status, body, text);
      const retryAfterMs = parseRetryAfter(retryAfter);
      if (retryAfterMs !== undefined) err.retryAfterMs = retryAfterMs;
      log().warn(
        { path: pathOf(), what: spec.what, status, code: err.code, subcode: err.subcode, fbtraceId: err.fbtraceId, details: err.details, ms },
        'whatsapp api error',
      );
      throw err;
    }
    if (debug) log().debug({ path: pathOf(), what: spec.what, status, ms }, 'whatsapp api response');
    return body;
  }

  /** `request` with the retry policy; the log names the call. */
  private retried<T>(what: GraphAction, logIds: Record<string, string>, fn: () => Promise<T>): Promise<T | undefined> {
    let child: Logger | undefined;
    const log = (): Logger => (child ??= this.opts.logger.child({ provider: this.opts.provider, ...logIds }));
    return withRetries(what, { policy: this.opts.retry ?? DEFAULT_RETRY_POLICY, log, counters: this.opts.counters, ...(this.opts.sleep ? { sleep: this.opts.sleep } : {}) }, fn);
  }

  private async callAction(phoneNumberId: string, callId: string, body: Json): Promise<void> {
    const what = body['action'] as GraphAction;
    await this.retried(what, { waCallId: callId, phoneNumberId }, async () => {
      const res = await this.request({ method: 'POST', url: this.callsUrl(phoneNumberId), body, logIds: { callId, phoneNumberId }, what });
      if (isObject(res) && res['success'] === false) throw new GraphApiError(`${what} answered success:false`, 200, 0);
    });
  }

  // ---- /calls actions (UIC, BIC) ---------------------------------------------------------

  async preAccept(phoneNumberId: string, callId: string, sdp: string): Promise<void> {
    await this.callAction(phoneNumberId, callId, {
      messaging_product: 'whatsapp',
      call_id: callId,
      action: 'pre_accept',
      session: { sdp_type: 'answer', sdp },
    });
  }

  async accept(phoneNumberId: string, callId: string, sdp: string, bizOpaqueCallbackData?: string): Promise<void> {
    const body: Json = {
      messaging_product: 'whatsapp',
      call_id: callId,
      action: 'accept',
      session: { sdp_type: 'answer', sdp },
    };
    if (bizOpaqueCallbackData !== undefined) body['biz_opaque_callback_data'] = bizOpaqueCallbackData;
    await this.callAction(phoneNumberId, callId, body);
  }

  async reject(phoneNumberId: string, callId: string): Promise<void> {
    await this.callAction(phoneNumberId, callId, { messaging_product: 'whatsapp', call_id: callId, action: 'reject' });
  }

  async terminate(phoneNumberId: string, callId: string): Promise<void> {
    await this.callAction(phoneNumberId, callId, { messaging_product: 'whatsapp', call_id: callId, action: 'terminate' });
  }

  async connect(phoneNumberId: string, to: string, sdp: string, bizOpaqueCallbackData?: string): Promise<{ callId: string }> {
    const body: Json = {
      messaging_product: 'whatsapp',
      to,
      action: 'connect',
      session: { sdp_type: 'offer', sdp },
    };
    if (bizOpaqueCallbackData !== undefined) body['biz_opaque_callback_data'] = bizOpaqueCallbackData;
    const logIds = { callId: '(new)', phoneNumberId, ...(bizOpaqueCallbackData !== undefined ? { bizOpaque: bizOpaqueCallbackData } : {}) };
    const res = await this.retried('connect', logIds, () =>
      this.request({ method: 'POST', url: this.callsUrl(phoneNumberId), body, logIds, what: 'connect' }),
    );
    const calls = isObject(res) && Array.isArray(res['calls']) ? res['calls'] : [];
    const first: unknown = calls[0];
    const id = isObject(first) && typeof first['id'] === 'string' ? first['id'] : undefined;
    if (!id) throw new GraphApiError('connect answered without calls[0].id', 200, 0);
    this.opts.logger.child({ provider: this.opts.provider, callId: id, phoneNumberId }).debug('whatsapp call created');
    return { callId: id };
  }

  // ---- permissions (UCP) -----------------------------------------------------------------

  async getCallPermissions(phoneNumberId: string, waId: string): Promise<CallPermissions> {
    const url =
      this.opts.provider === 'meta'
        ? `${this.metaUrl(phoneNumberId, 'call_permissions')}?user_wa_id=${encodeURIComponent(waId)}`
        : `${this.base}/calling/permissions/${encodeURIComponent(waId)}`;
    const res = await this.retried('call_permissions', { phoneNumberId }, () =>
      this.request({ method: 'GET', url, logIds: { phoneNumberId }, what: 'call_permissions' }),
    );
    return parsePermissions(res);
  }

  async sendCallPermissionRequest(phoneNumberId: string, to: string, bodyText?: string): Promise<{ messageId: string }> {
    const interactive: Json = { type: 'call_permission_request', action: { name: 'call_permission_request' } };
    if (bodyText !== undefined) interactive['body'] = { text: bodyText };
    const url = this.opts.provider === 'meta' ? this.metaUrl(phoneNumberId, 'messages') : `${this.base}/messages`;
    const res = await this.retried('call_permission_request', { phoneNumberId }, () =>
      this.request({
        method: 'POST',
        url,
        body: { messaging_product: 'whatsapp', to, type: 'interactive', interactive },
        logIds: { phoneNumberId },
        what: 'call_permission_request',
      }),
    );
    const messages = isObject(res) && Array.isArray(res['messages']) ? res['messages'] : [];
    const first: unknown = messages[0];
    const id = isObject(first) && typeof first['id'] === 'string' ? first['id'] : undefined;
    if (!id) throw new GraphApiError('call_permission_request answered without messages[0].id', 200, 0);
    return { messageId: id };
  }
}

/** Connection errors where nothing reached the server. */
const NOT_SENT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/** undici's own deadlines (set above ours, so only reached if our timer could not fire). */
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The error's code: undici puts it on the error itself (fetch put it on `cause`). */
function errCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  if (typeof e?.code === 'string') return e.code;
  return typeof e?.cause?.code === 'string' ? e.cause.code : '';
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}

/** Build the calls API client for Meta or 360dialog. */
export function createCallsApi(opts: CallsApiOptions): WhatsAppCallingApi {
  return new HttpCallsApi(opts);
}
