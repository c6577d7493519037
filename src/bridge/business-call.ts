import type { Logger } from '../util/log.js';
import type { WaConnectEvent, WaStatusEvent, WhatsAppCallingApi } from '../whatsapp/types.js';
import type { WhatsAppCounters } from '../whatsapp/counters.js';
import { BridgedCall, type CallLimits } from './call-base.js';
import { connectCall } from './connect-reconciler.js';

/** The WhatsApp side of a business-initiated call. */
export interface BusinessCallWhatsApp {
  api: WhatsAppCallingApi;
  phoneNumberId: string;
  /** The WhatsApp user, E.164 digits. */
  to: string;
  counters?: WhatsAppCounters | undefined;
  /** How long to wait for a webhook naming the call after a connect whose answer was lost. */
  lostConnectGraceMs?: number | undefined;
}

/** The states every business-initiated call table has. */
type BusinessState = 'connecting' | 'ringing';

/**
 * What the two business-initiated calls share (an agent dials a WhatsApp user: OutboundCall; the
 * admin API's click to call: ClickCall): Graph `connect` with biz_opaque_callback_data, the call
 * id learned from its answer or from a webhook, the status webhooks (RINGING, REJECTED), the
 * connect webhook with WhatsApp's SDP answer (taken once), and `terminate` in the teardown.
 */
export abstract class BusinessInitiatedCall<S extends string, C extends { kind: string }> extends BridgedCall<S, C> {
  waCallId: string | undefined;
  abstract readonly opaque: string;
  abstract override readonly timings: { ended?: number; ringing?: number };
  protected ending: Promise<void> | undefined;
  private answering = false;

  constructor(
    transitions: Readonly<Record<S, readonly S[]>>,
    log: Logger,
    now: (() => number) | undefined,
    limits: CallLimits | undefined,
    protected readonly wa: BusinessCallWhatsApp,
  ) {
    super(transitions, 'new' as S, 'ended' as S, log, now, limits);
  }

  get phoneNumberId(): string {
    return this.wa.phoneNumberId;
  }

  /** For the connect reconciler: teardown has begun. */
  get isEnding(): boolean {
    return this.ending !== undefined;
  }

  /** WhatsApp named the call (connect's answer or a webhook); tell the bridge (`learned`). */
  setWhatsAppCallId(id: string): void {
    if (this.waCallId) return;
    this.waCallId = id;
    this.log = this.log.child({ waCallId: id });
    this.whatsAppCallNamed(id);
  }

  onStatus(ev: WaStatusEvent): void {
    this.log.info({ status: ev.status }, 'WhatsApp call status');
    if (this.ending) return;
    this.setWhatsAppCallId(ev.callId);
    if (ev.status === 'RINGING' && this.state === ('connecting' satisfies BusinessState as S)) {
      this.timings.ringing = this.now();
      this.transition('ringing' satisfies BusinessState as S);
      this.whatsAppRinging();
    } else if (ev.status === 'REJECTED') void this.end({ kind: 'wa-rejected' } as C);
    // ACCEPTED "typically arrives after the call has been established": audit only.
  }

  /** The connect webhook carrying WhatsApp's SDP answer (a redelivery is ignored). */
  onConnect(ev: WaConnectEvent): void {
    if (this.ending || this.answering) return;
    this.answering = true;
    this.setWhatsAppCallId(ev.callId);
    void this.whatsAppAnswered(ev.sdp).catch((err) => void this.end(this.causeOf(err)));
  }

  /**
   * Graph `connect` with our WebRTC offer. False when the call ended meanwhile (a call created
   * by then is terminated here: the teardown ran without its id).
   */
  protected async connect(offer: string): Promise<boolean> {
    const { api, phoneNumberId, to } = this.wa;
    // A lost answer: WhatsApp's webhook (matched by our opaque data) may name the call anyway.
    const waCallId = await connectCall(this, api, { phoneNumberId, to, sdp: offer }, this.log, this.wa.counters, this.wa.lostConnectGraceMs);
    this.setWhatsAppCallId(waCallId);
    if (!this.ending) return true;
    await api.terminate(phoneNumberId, waCallId).catch((err) => this.log.warn({ err }, 'terminate failed'));
    return false;
  }

  /** The teardown's WhatsApp action: `terminate` once the call has an id. Never rejects. */
  protected endWhatsAppLeg(action: 'terminate' | 'none', log: Logger): Promise<void> {
    const id = this.waCallId;
    if (action !== 'terminate' || !id) return Promise.resolve();
    return this.wa.api.terminate(this.phoneNumberId, id).catch((err) => log.warn({ err }, 'WhatsApp terminate failed'));
  }

  /** The bridge learns the call's WhatsApp id. */
  protected abstract whatsAppCallNamed(id: string): void;
  /** WhatsApp said RINGING (the call moved to `ringing`). */
  protected abstract whatsAppRinging(): void;
  /** The user answered, with this SDP. */
  protected abstract whatsAppAnswered(sdp: string): Promise<void>;
  /** The end cause of an error thrown while setting the call up. */
  protected abstract causeOf(err: unknown): C;
}
