import type { Logger } from '../util/log.js';
import { checkWhatsAppAnswer } from '../media/sdp-rules.js';
import { createGraphSimulator, type GraphSimulator, type RecordedAction } from './graph-server.js';
import { createWebhookSender, newCallId, type WebhookSender } from './webhook-sender.js';
import { WhatsAppMediaPeer } from './webrtc-peer.js';

/**
 * A stand-in for WhatsApp as a whole: the Graph API the bridge calls, the signed webhooks
 * WhatsApp sends, and for each call a WebRTC peer that behaves like WhatsApp's (ICE-lite,
 * `actpass`, Opus, sha-256 only). A simulated user "calls" the business, hears the agent and
 * speaks a tone; Meta's rules are enforced where Meta enforces them (answer SDP checked on
 * pre_accept/accept, media only after accept).
 */
export interface WhatsAppSimulatorOptions {
  phoneNumberId: string;
  businessNumber: string;
  accessToken: string;
  appSecret: string;
  /** Where webhooks go; may be set later with `setWebhookUrl` (the bridge starts after the Graph API). */
  webhookUrl?: string;
  logger?: Logger;
}

export class WhatsAppSimulator {
  private sender: WebhookSender | undefined;
  private readonly calls = new Set<SimulatedUserCall>();

  private constructor(
    readonly graph: GraphSimulator,
    private readonly opts: WhatsAppSimulatorOptions,
  ) {
    if (opts.webhookUrl) this.setWebhookUrl(opts.webhookUrl);
  }

  static async start(opts: WhatsAppSimulatorOptions): Promise<WhatsAppSimulator> {
    const graph = createGraphSimulator({
      accessToken: opts.accessToken,
      apiKey: opts.accessToken,
      validateAnswerSdp: checkWhatsAppAnswer,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    await graph.listen('127.0.0.1', 0);
    return new WhatsAppSimulator(graph, opts);
  }

  /** Base URL to configure as the bridge's `whatsapp.graphBaseUrl`. */
  get graphUrl(): string {
    return this.graph.url;
  }

  setWebhookUrl(url: string): void {
    this.sender = createWebhookSender({
      url,
      appSecret: this.opts.appSecret,
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

  async close(): Promise<void> {
    await Promise.all([...this.calls].map((c) => c.close()));
    await this.graph.close();
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
