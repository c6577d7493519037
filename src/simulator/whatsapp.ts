// Over 400 lines on purpose: WhatsApp as a whole (user-initiated calls, simulated users answering
// business calls, permission replies) in one façade over graph-server, webhook-sender and webrtc-peer.
import type { Logger } from '../util/log.js';
import { checkWhatsAppAnswer, checkWhatsAppOffer } from '../media/sdp-rules.js';
import { createGraphSimulator, type ConnectHookEvent, type GraphSimulator, type RecordedAction } from './graph-server.js';
import { createWebhookSender, newCallId, type WebhookSender } from './webhook-sender.js';
import { WhatsAppMediaPeer } from './webrtc-peer.js';

/**
 * A stand-in for WhatsApp as a whole: the Graph API the bridge calls, the signed webhooks
 * WhatsApp sends, and for each call a WebRTC peer that behaves like WhatsApp's (ICE-lite,
 * `actpass`, Opus, sha-256 only). A simulated user "calls" the business, hears the agent and
 * speaks a tone; Meta's rules are enforced where Meta enforces them (answer SDP checked on
 * pre_accept/accept, media only after accept).
 *
 * Business-initiated calls: `user(waId, behaviour)` puts a user in the directory. When the bridge
 * calls Graph `connect` (offer checked with `checkWhatsAppOffer`; a user without permission gets
 * 400 / 138006), the user's phone rings (status RINGING webhook) and then answers (connect
 * webhook with a real SDP answer, ICE/DTLS, a tone, status ACCEPTED), declines (REJECTED, then
 * terminate) or does not answer (terminate after `giveUpAfterMs`), as its behaviour says.
 * Unknown users answer after 300 ms.
 */
export interface WhatsAppSimulatorOptions {
  phoneNumberId: string;
  businessNumber: string;
  accessToken: string;
  /** Webhook HMAC secret; '' sends unsigned webhooks (a 360dialog direct client). */
  appSecret: string;
  /** Sign like 360dialog (`x-360dialog-signature`) instead of Meta. */
  provider?: 'meta' | '360dialog';
  /** 360dialog's custom webhook header, sent on every webhook. */
  webhookAuthHeader?: { name: string; value: string };
  /** Where webhooks go; may be set later with `setWebhookUrl` (the bridge starts after the Graph API). */
  webhookUrl?: string;
  logger?: Logger;
}

/** How a simulated user reacts to a business-initiated call. */
export type UserBehaviour =
  | {
      kind: 'answer';
      /** ms from the ring (RINGING webhook) to picking up; default 300. */
      afterMs?: number;
      /** DTLS role of the answer; default 'active' (WhatsApp's choice is undocumented). */
      setup?: 'active' | 'passive';
      /** The tone the user speaks; default 1000 Hz. */
      toneHz?: number;
    }
  | { kind: 'decline'; afterMs?: number }
  | { kind: 'no-answer'; giveUpAfterMs?: number }
  | { kind: 'no-permission' };

/** See `WhatsAppSimulator.endpoint`. */
export interface SimulatorEndpoint {
  graphUrl: string;
  accessToken: string;
  appSecret: string;
}

export const DEFAULT_BEHAVIOUR: UserBehaviour = { kind: 'answer', afterMs: 300 };

export class WhatsAppSimulator {
  private sender: WebhookSender | undefined;
  private readonly calls = new Set<SimulatedUserCall>();
  private readonly users = new Map<string, SimulatedUser>();
  private readonly onConnect = (c: ConnectHookEvent) => this.userFor(c.to).ring(c);

  private constructor(
    readonly graph: GraphSimulator,
    private readonly opts: WhatsAppSimulatorOptions,
  ) {
    if (opts.webhookUrl) this.setWebhookUrl(opts.webhookUrl);
    graph.on('connect', this.onConnect);
  }

  static async start(opts: WhatsAppSimulatorOptions): Promise<WhatsAppSimulator> {
    const graph = createGraphSimulator({
      accessToken: opts.accessToken,
      apiKey: opts.accessToken,
      validateAnswerSdp: checkWhatsAppAnswer,
      validateOfferSdp: checkWhatsAppOffer,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    await graph.listen('127.0.0.1', 0);
    return new WhatsAppSimulator(graph, opts);
  }

  /** Base URL to configure as the bridge's `whatsapp.graphBaseUrl`. */
  get graphUrl(): string {
    return this.graph.url;
  }

  /** What a bridge needs to reach this simulator: its Graph URL, access token and app secret. */
  get endpoint(): SimulatorEndpoint {
    return { graphUrl: this.graph.url, accessToken: this.opts.accessToken, appSecret: this.opts.appSecret };
  }

  setWebhookUrl(url: string): void {
    this.sender = createWebhookSender({
      url,
      appSecret: this.opts.appSecret,
      authHeader: this.opts.webhookAuthHeader,
      ...(this.opts.provider ? { provider: this.opts.provider } : {}),
      phoneNumberId: this.opts.phoneNumberId,
      businessNumber: this.opts.businessNumber,
      simulator: this.graph,
    });
  }

  get webhooks(): WebhookSender {
    if (!this.sender) throw new Error('WhatsAppSimulator: no webhook URL set');
    return this.sender;
  }

  /**
   * A WhatsApp user calls the business: a connect webhook with a real WebRTC offer. The call
   * answers pre_accept by applying the SDP (ICE and DTLS come up) and starts sending its tone
   * on accept, like WhatsApp.
   */
  async userCalls(spec: { userWaId: string; userName?: string; toneHz?: number; callId?: string }): Promise<SimulatedUserCall> {
    const call = new SimulatedUserCall(this, spec.callId ?? newCallId(), spec.userWaId, spec.toneHz ?? 1000);
    this.calls.add(call);
    const offer = await call.peer.createOffer();
    const { status } = await this.webhooks.userCall({
      callId: call.callId,
      userWaId: spec.userWaId,
      sdp: offer,
      ...(spec.userName !== undefined ? { userName: spec.userName } : {}),
    });
    call.webhookStatus = status;
    return call;
  }

  /** Graph actions recorded for one call, in order ("pre_accept", "accept", ...). */
  actionsFor(callId: string): string[] {
    return this.graph.actions.filter((a) => a.callId === callId).map((a) => String(a.action));
  }

  forget(call: SimulatedUserCall): void {
    this.calls.delete(call);
  }

  /**
   * The simulated user `waId` (created on first use, default behaviour: answers after 300 ms).
   * With `behaviour`, sets how it reacts to the next business-initiated calls; `no-permission`
   * also withdraws its call permission (Graph `connect` → 138006, `call_permissions` →
   * `no_permission`).
   */
  user(waId: string, behaviour?: UserBehaviour): SimulatedUser {
    const u = this.userFor(waId);
    if (behaviour) u.setBehaviour(behaviour);
    return u;
  }

  private userFor(waId: string): SimulatedUser {
    let u = this.users.get(waId);
    if (!u) {
      u = new SimulatedUser(this, waId, this.opts.logger);
      this.users.set(waId, u);
    }
    return u;
  }

  async close(): Promise<void> {
    this.graph.off('connect', this.onConnect);
    await Promise.all([...this.calls].map((c) => c.close()));
    await Promise.all([...this.users.values()].map((u) => u.close()));
    await this.graph.close();
  }
}

/** A webhook the simulated user's WhatsApp sent to the bridge, and the bridge's HTTP status. */
export interface SentWebhook {
  event: 'status' | 'connect' | 'terminate' | 'permission_reply';
  callId?: string;
  /** RINGING/ACCEPTED/REJECTED for statuses, COMPLETED/FAILED for terminates. */
  status?: string;
  httpStatus: number;
  at: number;
}

export interface BusinessCallConnect {
  callId: string;
  /** The SDP answer sent in the connect webhook. */
  sdp: string;
  /** HTTP status the bridge answered the connect webhook with. */
  httpStatus: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A WhatsApp user in the simulator's directory, for business-initiated calls. It handles one
 * call at a time: `callId` and `peer` are those of the latest call.
 */
export class SimulatedUser {
  private behaviour: UserBehaviour = DEFAULT_BEHAVIOUR;
  /** The latest call's id (`wacid.…`), once the business called. */
  callId: string | undefined;
  /** The latest call's media peer, once the user answered. */
  peer: WhatsAppMediaPeer | undefined;
  /** Graph requests of the business concerning this user's calls (connect, terminate), in order. */
  readonly received: RecordedAction[] = [];
  /** Webhooks this user's WhatsApp sent to the bridge, in order. */
  readonly sent: SentWebhook[] = [];
  /** Failures while simulating (e.g. the business's offer could not be answered). */
  readonly errors: Error[] = [];
  private opaque: string | undefined;
  private answeredAt = 0;
  private ended = true;
  private generation = 0;
  private connectWaiters: Array<(c: BusinessCallConnect) => void> = [];
  private lastConnect: BusinessCallConnect | undefined;
  private readonly onAction = (a: RecordedAction) => this.onGraphAction(a);

  constructor(
    private readonly sim: WhatsAppSimulator,
    readonly waId: string,
    private readonly log?: Logger,
  ) {
    sim.graph.on('action', this.onAction);
  }

  get currentBehaviour(): UserBehaviour {
    return this.behaviour;
  }

  setBehaviour(b: UserBehaviour): void {
    this.behaviour = b;
    // A new behaviour is for the next call: waitForConnect() must not return an earlier call's
    // connect (whose peer behaved the old way).
    this.lastConnect = undefined;
    if (b.kind === 'no-permission') this.sim.graph.setPermission(this.waId, 'no_permission', false);
  }

  /** The user answers the business's call-permission request (webhook on field `messages`). */
  async permissionReply(response: 'accept' | 'reject', opts: { permanent?: boolean } = {}): Promise<number> {
    const permanent = opts.permanent ?? false;
    if (response === 'accept') {
      this.sim.graph.setPermission(this.waId, permanent ? 'permanent' : 'temporary', true);
      if (this.behaviour.kind === 'no-permission') this.behaviour = DEFAULT_BEHAVIOUR;
    } else {
      this.sim.graph.setPermission(this.waId, 'no_permission', false);
    }
    const spec: Parameters<WebhookSender['permissionReply']>[0] = { userWaId: this.waId, response, isPermanent: permanent };
    if (response === 'accept' && !permanent) spec.expiresAt = Math.floor(Date.now() / 1000) + 7 * 24 * 3600;
    const httpStatus = await this.sim.webhooks.permissionReply(spec);
    this.sent.push({ event: 'permission_reply', status: response, httpStatus, at: Date.now() });
    return httpStatus;
  }

  /** Resolves when the user answered (the connect webhook with the SDP answer was delivered). */
  waitForConnect(timeoutMs = 10_000): Promise<BusinessCallConnect> {
    // Only a call still up counts: an ended call's connect must not answer for the next call.
    if (this.lastConnect && this.lastConnect.callId === this.callId && !this.ended) return Promise.resolve(this.lastConnect);
    return new Promise<BusinessCallConnect>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.connectWaiters = this.connectWaiters.filter((w) => w !== done);
        reject(new Error(`user ${this.waId}: no connect within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (c: BusinessCallConnect): void => {
        clearTimeout(timer);
        resolve(c);
      };
      this.connectWaiters.push(done);
    });
  }

  /** The user hangs up an answered call: terminate webhook COMPLETED with the duration. */
  async hangUp(): Promise<number> {
    const callId = this.callId;
    if (!callId || this.ended) throw new Error(`user ${this.waId} has no call to hang up`);
    const durationSec = this.answeredAt ? Math.max(0, Math.round((Date.now() - this.answeredAt) / 1000)) : undefined;
    this.endCall();
    const httpStatus = await this.sendTerminate(callId, 'COMPLETED', durationSec);
    await this.closePeer();
    return httpStatus;
  }

  /** The business called this user (Graph `connect` answered 200): ring, then follow the behaviour. */
  ring(c: ConnectHookEvent): void {
    if (!this.ended) this.endCall(); // a new call replaces an old one
    const gen = ++this.generation;
    this.callId = c.callId;
    this.opaque = c.bizOpaqueCallbackData;
    this.answeredAt = 0;
    this.ended = false;
    this.lastConnect = undefined;
    void this.closePeer();
    void this.run(gen, c).catch((err: unknown) => {
      this.errors.push(err instanceof Error ? err : new Error(String(err)));
      this.log?.warn({ waId: this.waId, err }, 'simulated user failed');
    });
  }

  private live(gen: number): boolean {
    return gen === this.generation && !this.ended;
  }

  private async run(gen: number, c: ConnectHookEvent): Promise<void> {
    // The Graph answer is already written out; a short pause lets the bridge read it first.
    await sleep(5);
    if (!this.live(gen)) return;
    await this.sendStatus(c.callId, 'RINGING');
    const b = this.behaviour;
    switch (b.kind) {
      case 'answer': {
        await sleep(b.afterMs ?? 300);
        if (!this.live(gen)) return;
        const peer = new WhatsAppMediaPeer({ toneHz: b.toneHz ?? 1000 });
        this.peer = peer;
        let sdp: string;
        try {
          sdp = await peer.createAnswer(c.sdp, { setup: b.setup ?? 'active' });
        } catch (err) {
          // Graph checked the offer already; this is a simulator failure, and the call fails.
          this.errors.push(err as Error);
          this.endCall();
          await this.sendTerminate(c.callId, 'FAILED');
          await this.closePeer();
          return;
        }
        if (!this.live(gen)) return;
        this.answeredAt = Date.now();
        const httpStatus = await this.sim.webhooks.businessConnect({
          callId: c.callId,
          userWaId: this.waId,
          sdp,
          ...(this.opaque !== undefined ? { bizOpaqueCallbackData: this.opaque } : {}),
        });
        this.sent.push({ event: 'connect', callId: c.callId, httpStatus, at: Date.now() });
        const connect: BusinessCallConnect = { callId: c.callId, sdp, httpStatus };
        this.lastConnect = connect;
        for (const w of this.connectWaiters.splice(0)) w(connect);
        // WhatsApp speaks once the media path is up; ACCEPTED follows the connect (audit only).
        void peer
          .waitConnected(15_000)
          .then(() => {
            if (this.live(gen)) peer.startMedia();
          })
          .catch((err: unknown) => {
            if (this.live(gen)) this.errors.push(err as Error);
          });
        await sleep(100);
        if (this.live(gen)) await this.sendStatus(c.callId, 'ACCEPTED');
        return;
      }
      case 'decline': {
        await sleep(b.afterMs ?? 1000);
        if (!this.live(gen)) return;
        await this.sendStatus(c.callId, 'REJECTED');
        this.endCall();
        await this.sendTerminate(c.callId, 'COMPLETED');
        return;
      }
      case 'no-answer': {
        await sleep(b.giveUpAfterMs ?? 30_000);
        if (!this.live(gen)) return;
        this.endCall();
        await this.sendTerminate(c.callId, 'COMPLETED');
        return;
      }
      case 'no-permission':
        // Graph refuses connect with 138006 before any hook; only reached if permission was
        // granted behind the simulator's back: behave like the default user.
        this.behaviour = DEFAULT_BEHAVIOUR;
        return this.run(gen, c);
    }
  }

  private async sendStatus(callId: string, status: 'RINGING' | 'ACCEPTED' | 'REJECTED'): Promise<void> {
    const httpStatus = await this.sim.webhooks.status({
      callId,
      userWaId: this.waId,
      status,
      ...(this.opaque !== undefined ? { bizOpaqueCallbackData: this.opaque } : {}),
    });
    this.sent.push({ event: 'status', callId, status, httpStatus, at: Date.now() });
  }

  private async sendTerminate(callId: string, status: 'COMPLETED' | 'FAILED', durationSec?: number): Promise<number> {
    const httpStatus = await this.sim.webhooks.terminate({
      callId,
      userWaId: this.waId,
      direction: 'BUSINESS_INITIATED',
      status,
      ...(durationSec !== undefined ? { durationSec } : {}),
      ...(this.opaque !== undefined ? { bizOpaqueCallbackData: this.opaque } : {}),
    });
    this.sent.push({ event: 'terminate', callId, status, httpStatus, at: Date.now() });
    return httpStatus;
  }

  private onGraphAction(a: RecordedAction): void {
    const body = a.body as { to?: unknown } | undefined;
    const mine = (a.action === 'connect' && body?.to === this.waId) || (a.callId !== undefined && a.callId === this.callId);
    if (!mine) return;
    this.received.push(a);
    // The business hangs up (or cancels the ringing call): the user's side ends.
    if (a.action === 'terminate' && a.response.status === 200 && a.callId === this.callId && !this.ended) {
      this.endCall();
      void this.closePeer();
    }
  }

  private endCall(): void {
    this.ended = true;
  }

  private async closePeer(): Promise<void> {
    const p = this.peer;
    if (p) await p.close();
  }

  /** True while the latest call is ringing or answered. */
  get inCall(): boolean {
    return !this.ended;
  }

  async close(): Promise<void> {
    this.sim.graph.off('action', this.onAction);
    this.endCall();
    await this.closePeer();
  }
}

export class SimulatedUserCall {
  readonly peer: WhatsAppMediaPeer;
  webhookStatus = 0;
  /** Errors applying the business's SDP (they would be Graph errors at Meta). */
  readonly errors: Error[] = [];
  private readonly onAction = (a: RecordedAction) => void this.react(a);

  constructor(
    private readonly sim: WhatsAppSimulator,
    readonly callId: string,
    readonly userWaId: string,
    toneHz: number,
  ) {
    this.peer = new WhatsAppMediaPeer({ toneHz });
    sim.graph.on('action', this.onAction);
  }

  private async react(a: RecordedAction): Promise<void> {
    if (a.callId !== this.callId || a.response.status !== 200) return;
    try {
      const body = a.body as { session?: { sdp?: string } };
      if (a.action === 'pre_accept' && body.session?.sdp) await this.peer.applyAnswer(body.session.sdp);
      else if (a.action === 'accept') {
        if (this.peer.connectionState === 'new' && body.session?.sdp) await this.peer.applyAnswer(body.session.sdp);
        this.peer.startMedia();
      } else if (a.action === 'reject' || a.action === 'terminate') await this.close();
    } catch (err) {
      this.errors.push(err as Error);
    }
  }

  /** Wait for the bridge to perform `action` on this call. */
  waitFor(action: string, timeoutMs = 10_000): Promise<RecordedAction> {
    return this.sim.graph.waitForAction((a) => a.callId === this.callId && a.action === action, timeoutMs);
  }

  actions(): string[] {
    return this.sim.actionsFor(this.callId);
  }

  /** The user hangs up: WhatsApp sends a terminate webhook. */
  async hangUp(status: 'COMPLETED' | 'FAILED' = 'COMPLETED'): Promise<number> {
    const code = await this.sim.webhooks.terminate({ callId: this.callId, userWaId: this.userWaId, status });
    await this.close();
    return code;
  }

  async close(): Promise<void> {
    this.sim.graph.off('action', this.onAction);
    this.sim.forget(this);
    await this.peer.close();
  }
}
