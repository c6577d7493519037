/**
 * (Over 400 lines on purpose: every Graph route the bridge uses, for both providers, with Meta's
 *  call-state rules and the fault injection, mirroring one external API.)
 * A fake WhatsApp calling API on loopback: Meta's Graph routes and 360dialog's pass-through
 * routes, with Meta's auth, body and call-state rules, so the bridge's client can be tested on
 * the wire (docs/whatsapp-calling-api.md sections 1, 4, 5).
 *
 *   Meta       POST /{version}/{phoneNumberId}/calls          Authorization: Bearer <token>
 *              GET  /{version}/{phoneNumberId}/call_permissions?user_wa_id=
 *              POST /{version}/{phoneNumberId}/messages
 *   360dialog  POST /calling/calls                             D360-API-KEY: <key>
 *              GET  /calling/permissions/{wa_id}
 *              POST /messages
 *
 * Errors come in Meta's shape `{"error":{message,type,code,error_subcode,error_data,fbtrace_id}}`
 * on Meta routes and in 360dialog's `{"error":"(#code) message: details"}` on 360dialog routes
 * (option `d360ErrorStyle: 'meta'` gives Meta's shape there too).
 *
 * Call rules (UIC/BIC; the simulator's reading of them, since Meta documents few of the codes):
 * - a user-initiated call must be registered (`registerCall`, or implicitly by the webhook
 *   sender); pre_accept/accept/reject on an unknown call_id → 400 code 100 "Unknown call_id";
 * - pre_accept and accept carry `session.sdp_type:"answer"` and an SDP that passes the
 *   injected `validateAnswerSdp`; a violation → 400 code 100 subcode 2494010, details = the
 *   first violation (as Meta does for "Fingerprint algo is not SHA256");
 * - accept after pre_accept must carry the identical SDP; a second accept, a reject after
 *   accept, or any action on a terminated/rejected call → 400 code 100 with the reason;
 * - pre_accept/accept/reject on a business-initiated call → 400 code 100;
 * - connect to a user without call permission (`setPermission(waId, 'no_permission')`) → 400
 *   code 138006 "No approved call permission"; an offer SDP that fails the injected
 *   `validateOfferSdp` → 400 code 100 subcode 2494010 (details = the first violation);
 * - connect creates a business-initiated call `wacid.<random>` and emits `connect` once its
 *   HTTP answer has been written out (so webhooks sent from the hook never overtake it).
 * Every request (even refused ones) is recorded with its body, time and answer.
 *
 * Fault injection (typed API in ./graph-faults.ts, where its use is documented):
 *   injectFault(action, { kind: 'http-500' | 'rate-limit' (429 + Retry-After) | 'hang' |
 *   'lost-response' (performed, answer never sent) }, times?) and clearFaults().
 *
 * (Over 400 lines: one fake service whose routes share the call table; the fault book and its
 * error shapes live in ./graph-faults.ts.)
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { FaultBook, faultError, type GraphFault } from './graph-faults.js';

export type { GraphFault } from './graph-faults.js';
import { SDP_VALIDATION_SUBCODE, WA_ERROR } from '../whatsapp/errors.js';

export type SimProvider = 'meta' | '360dialog';

export type SimCallAction = 'connect' | 'pre_accept' | 'accept' | 'reject' | 'terminate';
export type SimAction = SimCallAction | 'call_permissions' | 'call_permission_request' | 'message';

const CALL_ACTIONS: readonly string[] = ['connect', 'pre_accept', 'accept', 'reject', 'terminate'];

export interface SimulatedGraphError {
  httpStatus?: number;
  code: number;
  subcode?: number;
  message?: string;
  type?: string;
  details?: string;
  isTransient?: boolean;
}

export interface RecordedAction {
  provider: SimProvider;
  /** The body's `action` for /calls (or the raw value if unknown), or a SimAction name. */
  action: SimAction | string;
  method: string;
  path: string;
  /** From the URL on Meta routes; undefined on 360dialog routes (the key names the number). */
  phoneNumberId?: string;
  callId?: string;
  body: unknown;
  /** Date.now() when the request arrived. */
  at: number;
  response: { status: number; body: unknown };
}

export type SimCallState = 'ringing' | 'pre_accepted' | 'accepted' | 'rejected' | 'calling' | 'terminated';

export interface SimCall {
  callId: string;
  phoneNumberId: string;
  direction: 'USER_INITIATED' | 'BUSINESS_INITIATED';
  state: SimCallState;
  /** The SDP given on pre_accept (or accept), for the identical-SDP rule. */
  answerSdp?: string;
  /** Business-initiated: the business's offer and the user. */
  offerSdp?: string;
  to?: string;
  bizOpaqueCallbackData?: string;
}

export interface ActionContext {
  provider: SimProvider;
  action: SimAction;
  phoneNumberId?: string;
  callId?: string;
  body: unknown;
  query: Record<string, unknown>;
  params: Record<string, string>;
}

export interface ActionReply {
  status: number;
  body: unknown;
}

/**
 * Overrides the default answer of an action: return a reply, or undefined for the default
 * behaviour. May return a promise that never settles, to simulate a server that never answers
 * (closed by `close()`).
 */
export type ActionHandler = (ctx: ActionContext) => ActionReply | undefined | Promise<ActionReply | undefined>;

export interface ConnectHookEvent {
  provider: SimProvider;
  callId: string;
  phoneNumberId: string;
  to: string;
  sdp: string;
  bizOpaqueCallbackData?: string;
}

export interface GraphSimulatorOptions {
  accessToken: string;
  apiKey: string;
  /** When set, Meta routes with another version answer 400. */
  version?: string;
  logger?: Logger;
  /** Violations of WhatsApp's answer-SDP rules (e.g. media's `checkWhatsAppAnswer`). */
  validateAnswerSdp?: (sdp: string) => string[];
  /** Violations of WhatsApp's rules for a business's connect offer (e.g. `checkWhatsAppOffer`). */
  validateOfferSdp?: (sdp: string) => string[];
  /** The number 360dialog routes act for (recorded calls from connect use it). */
  d360PhoneNumberId?: string;
  d360ErrorStyle?: 'string' | 'meta';
}

export interface GraphSimulator {
  /** `http://127.0.0.1:<port>` once listening; '' before. */
  readonly url: string;
  listen(host?: string, port?: number): Promise<string>;
  close(): Promise<void>;
  readonly actions: RecordedAction[];
  /**
   * The first recorded action (already recorded or future) that matches; rejects after
   * `timeoutMs` or on close.
   */
  waitForAction(match: SimAction | string | ((a: RecordedAction) => boolean), timeoutMs?: number): Promise<RecordedAction>;
  /** The next request for `action` (after auth) answers this error instead. Stackable. */
  failNext(action: SimAction, error: SimulatedGraphError): void;
  /** The next `times` (default 1) requests for `action` meet `fault` (see ./graph-faults.ts). */
  injectFault(action: SimAction, fault: GraphFault, times?: number): void;
  clearFaults(): void;
  setHandler(action: SimAction, handler: ActionHandler | undefined): void;
  registerCall(callId: string, phoneNumberId: string): void;
  /** The user hung up (terminate webhook): later actions on the call are refused. */
  markTerminated(callId: string): void;
  getCall(callId: string): SimCall | undefined;
  /** Permission state answered by call_permissions for a user (default `temporary`, callable). */
  setPermission(waId: string, status: 'no_permission' | 'temporary' | 'permanent', canStartCall?: boolean): void;
  on(event: 'action', listener: (a: RecordedAction) => void): GraphSimulator;
  on(event: 'connect', listener: (c: ConnectHookEvent) => void): GraphSimulator;
  off(event: 'action', listener: (a: RecordedAction) => void): GraphSimulator;
  off(event: 'connect', listener: (c: ConnectHookEvent) => void): GraphSimulator;
}

// ---- Meta's error bodies -------------------------------------------------------------------

function fbtraceId(): string {
  return `A${randomBytes(12).toString('base64url')}`;
}

class SimError {
  constructor(
    readonly httpStatus: number,
    readonly code: number,
    readonly message: string,
    readonly details?: string,
    readonly subcode?: number,
    readonly type = 'OAuthException',
    readonly isTransient?: boolean,
  ) {}

  static invalidParameter(details: string, subcode?: number): SimError {
    return new SimError(400, 100, '(#100) Invalid parameter', details, subcode);
  }

  static from(e: SimulatedGraphError): SimError {
    return new SimError(
      e.httpStatus ?? 400,
      e.code,
      e.message ?? `(#${e.code}) Simulated error`,
      e.details,
      e.subcode,
      e.type ?? 'OAuthException',
      e.isTransient,
    );
  }

  metaBody(): unknown {
    const error: Record<string, unknown> = { message: this.message, type: this.type, code: this.code };
    if (this.subcode !== undefined) error['error_subcode'] = this.subcode;
    if (this.details !== undefined) error['error_data'] = { messaging_product: 'whatsapp', details: this.details };
    if (this.isTransient !== undefined) error['is_transient'] = this.isTransient;
    error['fbtrace_id'] = fbtraceId();
    return { error };
  }

  d360Body(): unknown {
    const prefix = this.message.startsWith(`(#${this.code})`) ? this.message : `(#${this.code}) ${this.message}`;
    return { error: this.details ? `${prefix}: ${this.details}` : prefix };
  }
}

/** The Graph answer of an SDP that failed validation (see the module comment). */
export const SDP_INVALID_SUBCODE = SDP_VALIDATION_SUBCODE;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---- the simulator -------------------------------------------------------------------------

class GraphSimulatorImpl extends EventEmitter implements GraphSimulator {
  readonly actions: RecordedAction[] = [];
  private readonly app: FastifyInstance;
  private readonly calls = new Map<string, SimCall>();
  private readonly permissions = new Map<string, { status: string; canStartCall: boolean }>();
  private readonly failures = new Map<SimAction, SimulatedGraphError[]>();
  private readonly faults = new FaultBook<SimAction>();
  private readonly handlers = new Map<SimAction, ActionHandler>();
  private readonly waiters = new Set<{ reject(err: Error): void }>();
  private readonly hung = new Set<() => void>();
  private address = '';
  private closed = false;

  constructor(private readonly opts: GraphSimulatorOptions) {
    super();
    // One listener per waitForAction(); a load or soak run waits on many calls at once.
    this.setMaxListeners(0);
    this.app = Fastify({ logger: false, forceCloseConnections: true });
    this.routes();
  }

  get url(): string {
    return this.address;
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  async listen(host = '127.0.0.1', port = 0): Promise<string> {
    await this.app.listen({ host, port });
    const addr = this.app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('graph simulator: no TCP address');
    const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.address = `http://${h}:${addr.port}`;
    this.opts.logger?.debug({ url: this.address }, 'graph simulator listening');
    return this.address;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters) w.reject(new Error('graph simulator closed'));
    this.waiters.clear();
    for (const release of this.hung) release();
    this.hung.clear();
    await this.app.close();
  }

  // ---- test controls -----------------------------------------------------------------------

  waitForAction(match: SimAction | string | ((a: RecordedAction) => boolean), timeoutMs = 5_000): Promise<RecordedAction> {
    const pred = typeof match === 'function' ? match : (a: RecordedAction) => a.action === match;
    const found = this.actions.find(pred);
    if (found) return Promise.resolve(found);
    if (this.closed) return Promise.reject(new Error('graph simulator closed'));
    return new Promise<RecordedAction>((resolve, reject) => {
      const waiter = {
        reject: (err: Error) => {
          cleanup();
          reject(err);
        },
      };
      const onAction = (a: RecordedAction) => {
        if (!pred(a)) return;
        cleanup();
        resolve(a);
      };
      const timer = setTimeout(() => {
        cleanup();
        const name = typeof match === 'function' ? 'matching action' : match;
        reject(new Error(`graph simulator: no ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('action', onAction);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      this.on('action', onAction);
    });
  }

  failNext(action: SimAction, error: SimulatedGraphError): void {
    const list = this.failures.get(action) ?? [];
    list.push(error);
    this.failures.set(action, list);
  }

  injectFault(action: SimAction, fault: GraphFault, times = 1): void {
    this.faults.inject(action, fault, times);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /** Keep a request open until the simulator closes (the client times out first). */
  private hang(reply: FastifyReply): Promise<FastifyReply> {
    return new Promise<void>((resolve) => this.hung.add(resolve)).then(() => reply.code(503).send({ error: { message: 'simulator closed', code: 0 } }));
  }

  setHandler(action: SimAction, handler: ActionHandler | undefined): void {
    if (handler) this.handlers.set(action, handler);
    else this.handlers.delete(action);
  }

  registerCall(callId: string, phoneNumberId: string): void {
    if (this.calls.has(callId)) return; // a redelivered connect webhook must not reset state
    this.calls.set(callId, { callId, phoneNumberId, direction: 'USER_INITIATED', state: 'ringing' });
  }

  markTerminated(callId: string): void {
    const call = this.calls.get(callId);
    if (call) call.state = 'terminated';
  }

  getCall(callId: string): SimCall | undefined {
    const c = this.calls.get(callId);
    return c ? { ...c } : undefined;
  }

  setPermission(waId: string, status: 'no_permission' | 'temporary' | 'permanent', canStartCall = status !== 'no_permission'): void {
    this.permissions.set(waId, { status, canStartCall });
  }

  /** A throwing test listener must not turn the simulated answer into a 500. */
  private safeEmit(event: 'action' | 'connect', arg: unknown): void {
    for (const listener of this.rawListeners(event)) {
      try {
        (listener as (x: unknown) => void)(arg);
      } catch (err) {
        this.opts.logger?.warn({ event, err }, 'graph simulator listener threw');
      }
    }
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private routes(): void {
    const app = this.app;
    // Malformed JSON, empty bodies, wrong content types: Meta answers (#100).
    app.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
      const provider: SimProvider = req.url.startsWith('/calling/') || req.url.startsWith('/messages') ? '360dialog' : 'meta';
      const e = new SimError(err.statusCode && err.statusCode < 500 ? 400 : 500, 100, '(#100) Invalid parameter', err.message);
      void this.sendError(reply, provider, e);
    });
    app.setNotFoundHandler((req, reply) => {
      const provider: SimProvider = req.url.startsWith('/calling/') ? '360dialog' : 'meta';
      void this.sendError(reply, provider, new SimError(400, 100, `Unsupported ${req.method} request`, `no route ${req.method} ${req.url.split('?')[0]}`, 33, 'GraphMethodException'));
    });

    app.post('/:version/:phoneNumberId/calls', (req, reply) => this.handle('meta', 'calls', req, reply));
    app.get('/:version/:phoneNumberId/call_permissions', (req, reply) => this.handle('meta', 'call_permissions', req, reply));
    app.post('/:version/:phoneNumberId/messages', (req, reply) => this.handle('meta', 'messages', req, reply));
    app.post('/calling/calls', (req, reply) => this.handle('360dialog', 'calls', req, reply));
    app.get('/calling/permissions/:waId', (req, reply) => this.handle('360dialog', 'call_permissions', req, reply));
    app.post('/messages', (req, reply) => this.handle('360dialog', 'messages', req, reply));
    // Harmless authenticated reads (`wa-sip-bridge check` tests the token with them); not recorded.
    app.get('/:version/:phoneNumberId', (req, reply) => this.whoami('meta', req, reply));
    app.get('/calling/settings', (req, reply) => this.whoami('360dialog', req, reply));
  }

  private whoami(provider: SimProvider, req: FastifyRequest, reply: FastifyReply): FastifyReply {
    const auth = this.authError(provider, req);
    if (auth) return this.sendError(reply, provider, auth);
    const id = (req.params as Record<string, string>)['phoneNumberId'];
    return reply.code(200).send(provider === 'meta' ? { id } : { calling: { status: 'ENABLED' } });
  }

  private sendError(reply: FastifyReply, provider: SimProvider, e: SimError): FastifyReply {
    return reply.code(e.httpStatus).send(this.errorBody(provider, e));
  }

  private errorBody(provider: SimProvider, e: SimError): unknown {
    return provider === '360dialog' && (this.opts.d360ErrorStyle ?? 'string') === 'string' ? e.d360Body() : e.metaBody();
  }

  private authError(provider: SimProvider, req: FastifyRequest): SimError | undefined {
    if (provider === 'meta') {
      const h = req.headers['authorization'];
      const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h) : null;
      if (!m) return new SimError(401, 190, 'An active access token must be used to query information about the current user.');
      if (m[1] !== this.opts.accessToken) return new SimError(401, 190, 'Invalid OAuth access token - Cannot parse access token');
      return undefined;
    }
    const key = req.headers['d360-api-key'];
    if (typeof key !== 'string' || key !== this.opts.apiKey) return new SimError(401, 0, 'Invalid api key', undefined, undefined, 'AuthException');
    return undefined;
  }

  private async handle(
    provider: SimProvider,
    route: 'calls' | 'call_permissions' | 'messages',
    req: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply> {
    const at = Date.now();
    const params = (req.params ?? {}) as Record<string, string>;
    const query = (req.query ?? {}) as Record<string, unknown>;
    const body: unknown = req.body;
    const phoneNumberId = provider === 'meta' ? params['phoneNumberId'] : this.opts.d360PhoneNumberId;

    let action: SimAction | string;
    let callId: string | undefined;
    if (route === 'calls') {
      action = isObject(body) && typeof body['action'] === 'string' ? body['action'] : '(none)';
      callId = isObject(body) && typeof body['call_id'] === 'string' ? body['call_id'] : undefined;
    } else if (route === 'call_permissions') {
      action = 'call_permissions';
    } else {
      const interactive = isObject(body) && isObject(body['interactive']) ? body['interactive'] : undefined;
      action = interactive?.['type'] === 'call_permission_request' ? 'call_permission_request' : 'message';
    }

    const record = (status: number, resBody: unknown): void => {
      const recorded: RecordedAction = { provider, action, method: req.method, path: req.url.split('?')[0] ?? req.url, body, at, response: { status, body: resBody } };
      if (phoneNumberId !== undefined) recorded.phoneNumberId = phoneNumberId;
      if (callId !== undefined) recorded.callId = callId;
      this.actions.push(recorded);
      this.opts.logger?.debug({ provider, action, callId, status }, 'graph simulator action');
      this.safeEmit('action', recorded);
    };

    const fault = this.authError(provider, req) ? undefined : this.faults.take(action as SimAction);
    if (fault && fault.kind === 'hang') {
      record(0, '(fault: hang, no answer)');
      return this.hang(reply);
    }
    if (fault && fault.kind !== 'lost-response') {
      const f = faultError(fault);
      const e = new SimError(f.httpStatus, f.code, f.message, undefined, undefined, 'OAuthException', f.isTransient);
      record(f.httpStatus, this.errorBody(provider, e));
      return reply.code(f.httpStatus).headers(f.headers).send(this.errorBody(provider, e));
    }

    const result = await this.answer({ provider, route, action, callId, phoneNumberId, body, query, params, req });
    if (result.callId !== undefined) callId = result.callId;
    record(result.status, result.body);
    const hook = result.connect;
    if (fault?.kind === 'lost-response') {
      // Done at "Meta" (the user's phone rings), but the answer never reaches the client.
      if (hook) this.safeEmit('connect', hook);
      return this.hang(reply);
    }
    if (hook) {
      // Only once the answer (with the wacid) is on its way: a webhook sent from the hook must
      // never reach the bridge before the connect response does.
      let emitted = false;
      const emit = (): void => {
        if (emitted) return;
        emitted = true;
        this.safeEmit('connect', hook);
      };
      reply.raw.once('finish', emit);
      reply.raw.once('close', emit);
    }
    return reply.code(result.status).send(result.body);
  }

  private async answer(a: {
    provider: SimProvider;
    route: 'calls' | 'call_permissions' | 'messages';
    action: string;
    callId: string | undefined;
    phoneNumberId: string | undefined;
    body: unknown;
    query: Record<string, unknown>;
    params: Record<string, string>;
    req: FastifyRequest;
  }): Promise<ActionReply & { callId?: string; connect?: ConnectHookEvent }> {
    const err = (e: SimError) => ({ status: e.httpStatus, body: this.errorBody(a.provider, e) });

    const auth = this.authError(a.provider, a.req);
    if (auth) return err(auth);
    if (a.provider === 'meta' && this.opts.version && a.params['version'] !== this.opts.version) {
      return err(new SimError(400, 2635, `(#2635) You are calling a deprecated or unknown version of the Graph API: ${a.params['version'] ?? ''}`));
    }

    if (a.route === 'calls' && !CALL_ACTIONS.includes(a.action)) {
      return err(SimError.invalidParameter(`action must be one of ${CALL_ACTIONS.join(', ')}`));
    }
    const action = a.action as SimAction;

    const failure = this.failures.get(action)?.shift();
    if (failure) return err(SimError.from(failure));

    const handler = this.handlers.get(action);
    if (handler) {
      const ctx: ActionContext = { provider: a.provider, action, body: a.body, query: a.query, params: a.params };
      if (a.phoneNumberId !== undefined) ctx.phoneNumberId = a.phoneNumberId;
      if (a.callId !== undefined) ctx.callId = a.callId;
      const custom = await new Promise<ActionReply | undefined>((resolve, reject) => {
        // A handler that never settles is released (with a 503) when the simulator closes.
        const release = () => resolve({ status: 503, body: { error: { message: 'simulator closed', code: 0 } } });
        this.hung.add(release);
        Promise.resolve()
          .then(() => handler(ctx))
          .then(resolve, reject)
          .finally(() => this.hung.delete(release));
      });
      if (custom) return custom;
    }

    try {
      if (a.route === 'calls') return this.callAction(a.provider, action as SimCallAction, a.phoneNumberId, a.body);
      if (a.route === 'call_permissions') return this.callPermissions(a.provider, a.query, a.params);
      return this.message(a.body);
    } catch (e) {
      if (e instanceof SimError) return err(e);
      throw e;
    }
  }

  // ---- /calls ------------------------------------------------------------------------------

  private callAction(
    provider: SimProvider,
    action: SimCallAction,
    phoneNumberId: string | undefined,
    body: unknown,
  ): ActionReply & { callId?: string; connect?: ConnectHookEvent } {
    if (!isObject(body)) throw SimError.invalidParameter('request body must be a JSON object');
    if (body['messaging_product'] !== 'whatsapp') throw SimError.invalidParameter('messaging_product must be "whatsapp"');

    if (action === 'connect') return this.connect(provider, phoneNumberId, body);

    const callId = body['call_id'];
    if (typeof callId !== 'string' || callId === '') throw SimError.invalidParameter('The parameter call_id is required');
    const call = this.calls.get(callId);
    if (!call || (provider === 'meta' && call.phoneNumberId !== phoneNumberId)) {
      throw SimError.invalidParameter(`Unknown call_id ${callId}`);
    }
    if (call.state === 'terminated' || call.state === 'rejected') {
      throw SimError.invalidParameter(`Call ${callId} is already ${call.state}`);
    }

    switch (action) {
      case 'pre_accept':
      case 'accept': {
        if (call.direction !== 'USER_INITIATED') throw SimError.invalidParameter(`${action} is only valid on user-initiated calls`);
        if (call.state === 'accepted') throw SimError.invalidParameter(`Call ${callId} is already accepted`);
        if (action === 'pre_accept' && call.state === 'pre_accepted') {
          throw SimError.invalidParameter(`Call ${callId} is already pre-accepted`);
        }
        const sdp = this.answerSdp(body);
        if (call.answerSdp !== undefined && call.answerSdp !== sdp) {
          throw SimError.invalidParameter('The accept SDP must be identical to the pre_accept SDP', SDP_INVALID_SUBCODE);
        }
        call.answerSdp = sdp;
        call.state = action === 'accept' ? 'accepted' : 'pre_accepted';
        const opaque = body['biz_opaque_callback_data'];
        if (typeof opaque === 'string') call.bizOpaqueCallbackData = opaque;
        break;
      }
      case 'reject':
        if (call.direction !== 'USER_INITIATED') throw SimError.invalidParameter('reject is only valid on user-initiated calls');
        if (call.state === 'accepted') throw SimError.invalidParameter(`Call ${callId} is already accepted; use terminate`);
        call.state = 'rejected';
        break;
      case 'terminate':
        call.state = 'terminated';
        break;
    }
    return { status: 200, body: { messaging_product: 'whatsapp', success: true }, callId };
  }

  private answerSdp(body: Json): string {
    const session = body['session'];
    if (!isObject(session)) throw SimError.invalidParameter('The parameter session is required');
    if (session['sdp_type'] !== 'answer') throw SimError.invalidParameter('session.sdp_type must be "answer"');
    const sdp = session['sdp'];
    if (typeof sdp !== 'string' || sdp.trim() === '') throw SimError.invalidParameter('The parameter session.sdp is required');
    const violations = this.opts.validateAnswerSdp?.(sdp) ?? [];
    if (violations.length > 0) throw SimError.invalidParameter(violations[0] ?? 'SDP Validation error', SDP_INVALID_SUBCODE);
    return sdp;
  }

  private connect(
    provider: SimProvider,
    phoneNumberId: string | undefined,
    body: Json,
  ): ActionReply & { callId: string; connect: ConnectHookEvent } {
    const to = body['to'];
    if (typeof to !== 'string' || !/^\d{6,15}$/.test(to)) throw SimError.invalidParameter('The parameter to is required (E.164 digits, no +)');
    const session = body['session'];
    if (!isObject(session) || session['sdp_type'] !== 'offer' || typeof session['sdp'] !== 'string' || session['sdp'] === '') {
      throw SimError.invalidParameter('session must be {"sdp_type":"offer","sdp":"…"}');
    }
    const opaque = body['biz_opaque_callback_data'];
    if (opaque !== undefined && (typeof opaque !== 'string' || opaque.length > 512)) {
      throw SimError.invalidParameter('biz_opaque_callback_data must be a string of at most 512 characters');
    }
    const permission = this.permissions.get(to);
    if (permission && !permission.canStartCall) {
      throw new SimError(400, WA_ERROR.noPermission, `(#${WA_ERROR.noPermission}) No approved call permission`, `User ${to} has not approved calls from this business`);
    }
    const violations = this.opts.validateOfferSdp?.(session['sdp']) ?? [];
    if (violations.length > 0) throw SimError.invalidParameter(violations[0] ?? 'SDP Validation error', SDP_INVALID_SUBCODE);
    const callId = `wacid.${randomBytes(18).toString('base64url')}`;
    const pn = phoneNumberId ?? '';
    const call: SimCall = {
      callId,
      phoneNumberId: pn,
      direction: 'BUSINESS_INITIATED',
      state: 'calling',
      offerSdp: session['sdp'],
      to,
    };
    if (typeof opaque === 'string') call.bizOpaqueCallbackData = opaque;
    this.calls.set(callId, call);
    const hook: ConnectHookEvent = { provider, callId, phoneNumberId: pn, to, sdp: session['sdp'] };
    if (typeof opaque === 'string') hook.bizOpaqueCallbackData = opaque;
    const res: Json = { messaging_product: 'whatsapp', calls: [{ id: callId }] };
    if (provider === '360dialog') res['success'] = true;
    return { status: 200, body: res, callId, connect: hook };
  }

  // ---- permissions and messages (UCP) ------------------------------------------------------

  private callPermissions(provider: SimProvider, query: Record<string, unknown>, params: Record<string, string>): ActionReply {
    const waId = provider === 'meta' ? query['user_wa_id'] : params['waId'];
    if (typeof waId !== 'string' || waId === '') throw SimError.invalidParameter('The parameter user_wa_id is required');
    const p = this.permissions.get(waId) ?? { status: 'temporary', canStartCall: true };
    const now = Math.floor(Date.now() / 1000);
    const permission: Json = { status: p.status };
    if (p.status === 'temporary') permission['expiration_time'] = now + 7 * 24 * 3600;
    return {
      status: 200,
      body: {
        messaging_product: 'whatsapp',
        permission,
        actions: [
          {
            action_name: 'send_call_permission_request',
            can_perform_action: p.status !== 'permanent',
            limits: [
              { time_period: 'PT24H', max_allowed: 1, current_usage: 0 },
              { time_period: 'P7D', max_allowed: 2, current_usage: 0 },
            ],
          },
          {
            action_name: 'start_call',
            can_perform_action: p.canStartCall,
            limits: [{ time_period: 'PT24H', max_allowed: 100, current_usage: 0 }],
          },
        ],
      },
    };
  }

  private message(body: unknown): ActionReply {
    if (!isObject(body) || body['messaging_product'] !== 'whatsapp') throw SimError.invalidParameter('messaging_product must be "whatsapp"');
    const to = body['to'];
    if (typeof to !== 'string' || to === '') throw SimError.invalidParameter('The parameter to is required');
    if (body['type'] === 'interactive') {
      const i = body['interactive'];
      if (!isObject(i)) throw SimError.invalidParameter('The parameter interactive is required');
      if (i['type'] === 'call_permission_request') {
        const act = i['action'];
        if (!isObject(act) || act['name'] !== 'call_permission_request') {
          throw SimError.invalidParameter('interactive.action.name must be "call_permission_request"');
        }
      }
    }
    return {
      status: 200,
      body: {
        messaging_product: 'whatsapp',
        contacts: [{ input: to, wa_id: to }],
        messages: [{ id: `wamid.${randomBytes(24).toString('base64url')}` }],
      },
    };
  }
}

/** Create a (not yet listening) Graph API simulator. */
export function createGraphSimulator(opts: GraphSimulatorOptions): GraphSimulator {
  return new GraphSimulatorImpl(opts);
}
