import type { Logger } from '../util/log.js';
import { MediaError, type MediaEngine } from '../media/types.js';
import { followPbxHold } from './hold.js';
import type { OutgoingCall, SipDialog, SipStack, InviteProgress } from '../sip/types.js';
import { SipFailure } from '../sip/types.js';
import type { WaConnectEvent, WhatsAppCallsApi } from '../whatsapp/types.js';
import { BridgedCall, roundMs as round, type CallLimits } from './call-base.js';
import { TRANSITIONS, type CallState } from './call-state.js';
import { planTeardown, type EndCause, type TeardownPlan } from './failure-map.js';
import type { RouteDecision } from './routing.js';

export interface InboundCallDeps {
  sip: SipStack;
  media: MediaEngine;
  whatsapp: WhatsAppCallsApi;
  log: Logger;
  /** Domain of the caller's From URI. */
  fromDomain: string;
  ringTimeoutMs: number;
  /** Called once, after teardown completed. */
  onEnded: (call: InboundCall, plan: TeardownPlan) => void;
  /** The INVITE toward the PBX is out, with this Call-ID. */
  onSipCallId?: (call: InboundCall, sipCallId: string) => void;
  /** Timing marks for measurements (webhook → INVITE, 200 OK → accept). */
  now?: () => number;
  /** Maximum duration and media operation timeout (defaults: 4 h, 10 s). */
  limits?: CallLimits;
}

/** Timestamps (ms, from deps.now) of the call's milestones, for logs and measurements. */
export interface CallTimings {
  connectReceived: number;
  inviteSent?: number;
  /** The PBX's first provisional response (ringing or early media). */
  ringing?: number;
  pbxAnswered?: number;
  acceptSent?: number;
  ended?: number;
}

/**
 * One user-initiated WhatsApp call bridged to the PBX (the B2BUA's two legs and its media).
 *
 * Flow (Meta "user-initiated calls"): connect webhook → media offer → INVITE → PBX's first SDP
 * (183 or 200) → media answer → `pre_accept` → PBX 200 OK (ACKed at once by the dialog layer)
 * → `accept` with the same SDP. Deviation: the ACK is not held back until `accept` returns,
 * so the PBX never retransmits its 200; if `accept` fails the PBX gets a BYE instead.
 */
export class InboundCall extends BridgedCall<CallState, EndCause> {
  readonly waCallId: string;
  readonly phoneNumberId: string;
  sipCallId: string | undefined;
  readonly timings: CallTimings;
  endCause: EndCause | undefined;
  plan: TeardownPlan | undefined;

  private outgoing: OutgoingCall | undefined;
  private dialog: SipDialog | undefined;
  private preAccept: Promise<string> | undefined;
  private acceptSent = false;
  private ringTimer: NodeJS.Timeout | undefined;
  private ending: Promise<void> | undefined;

  constructor(
    readonly event: WaConnectEvent,
    readonly routeDecision: RouteDecision,
    private readonly deps: InboundCallDeps,
  ) {
    super(TRANSITIONS, 'new', 'ended', deps.log.child({ waCallId: event.callId, direction: 'inbound' }), deps.now, deps.limits);
    this.waCallId = event.callId;
    this.phoneNumberId = event.phoneNumberId;
    this.timings = { connectReceived: this.now() };
  }

  /** Run the call until it is answered or fails. Never throws: failures end the call. */
  async start(): Promise<void> {
    try {
      await this.run();
    } catch (err) {
      const cause = toEndCause(err);
      if (cause.kind === 'internal-error') this.log.error({ err }, 'call failed unexpectedly');
      await this.end(cause);
    }
  }

  private async run(): Promise<void> {
    const ev = this.event;
    this.log.info(
      { from: ev.userWaId, businessNumber: ev.businessNumber, target: this.routeDecision.target, rule: this.routeDecision.rule },
      'WhatsApp call received; routing to PBX',
    );
    this.ringTimer = setTimeout(() => void this.end({ kind: 'ring-timeout' }), this.deps.ringTimeoutMs);

    const session = this.adoptSession(this.deps.media.createSession(ev.callId));
    const plainOffer = await this.track(session.offerFromWhatsApp(ev.sdp), 'media offer');
    if (this.ending) return;

    this.transition('inviting');
    const outgoing = this.deps.sip.invite(
      {
        uri: this.routeDecision.target,
        from: { uri: `sip:+${ev.userWaId}@${this.deps.fromDomain}`, displayName: ev.userName ?? `+${ev.userWaId}` },
        sdp: plainOffer,
        headers: {
          'X-WA-Call-Id': ev.callId,
          // Digits only, whatever formatting Meta's display_phone_number carries.
          'X-WA-Business-Number': ev.businessNumber.replace(/\D/g, ''),
          'X-WA-Phone-Number-Id': ev.phoneNumberId,
        },
      },
      { onProgress: (p) => this.onProgress(p) },
    );
    this.outgoing = outgoing;
    this.sipCallId = outgoing.callId;
    this.deps.onSipCallId?.(this, outgoing.callId);
    this.log = this.log.child({ sipCallId: outgoing.callId });
    this.timings.inviteSent = this.now();
    this.log.info({ setupMs: round(this.timings.inviteSent - this.timings.connectReceived) }, 'INVITE sent to PBX');

    const dialog = await outgoing.established;
    this.dialog = dialog;
    this.timings.pbxAnswered = this.now();
    dialog.on('bye', () => void this.end({ kind: 'pbx-bye' }));
    // Re-INVITEs from the PBX (hold, resume, refresh) are answered by the dialog layer from our
    // last SDP, direction mirrored: WhatsApp has no renegotiation, so it is not involved; the
    // media engine is told when the PBX stops or resumes sending.
    followPbxHold(dialog, session, this.log, dialog.remoteSdp);
    if (this.ending) {
      // WhatsApp ended the call while the 200 OK was on its way: the teardown sees the dialog.
      await dialog.bye();
      return;
    }
    this.transition('accepting');

    const pbxSdp = dialog.remoteSdp;
    if (!pbxSdp) throw new MediaError('the PBX answered without SDP', this.deps.media.name);
    const waSdp = await this.ensurePreAccepted(pbxSdp);
    if (this.ending) return;
    if (this.earlySdp !== undefined && this.earlySdp !== pbxSdp) {
      // The 200's SDP differs from the 183's: tell the media engine where the PBX really is.
      // WhatsApp gets the pre_accept SDP again (accept must repeat it).
      const again = await this.track(session.answerFromPbx(pbxSdp), 'media answer');
      if (again !== waSdp) this.log.warn('media answer changed after 200 OK; WhatsApp keeps the pre_accept SDP');
    }
    this.acceptSent = true;
    this.timings.acceptSent = this.now();
    await this.waCall('accept', () => this.deps.whatsapp.accept(ev.phoneNumberId, ev.callId, waSdp));
    if (this.ending) return;
    clearTimeout(this.ringTimer);
    this.transition('active');
    this.log.info(
      { answerToAcceptMs: round(this.timings.acceptSent - this.timings.pbxAnswered) },
      'call answered; both legs up',
    );
  }

  private earlySdp: string | undefined;

  private onProgress(p: InviteProgress): void {
    if (this.ending) return;
    this.log.debug({ status: p.status, withSdp: Boolean(p.sdp) }, 'PBX progress');
    this.timings.ringing ??= this.now();
    if (this.state === 'inviting' && !p.sdp) this.transition('ringing');
    if (p.sdp && !this.preAccept) {
      this.earlySdp = p.sdp;
      void this.ensurePreAccepted(p.sdp).catch((err) => void this.end(toEndCause(err)));
    }
  }

  /** Media answer + `pre_accept`, once per call, on the PBX's first SDP. Resolves with WhatsApp's SDP. */
  private ensurePreAccepted(pbxSdp: string): Promise<string> {
    this.preAccept ??= (async () => {
      if (this.earlySdp === undefined) this.earlySdp = pbxSdp;
      const waSdp = await this.track(this.mediaSession!.answerFromPbx(pbxSdp), 'media answer');
      if (this.ending) return waSdp;
      await this.waCall('pre_accept', () => this.deps.whatsapp.preAccept(this.phoneNumberId, this.waCallId, waSdp));
      if (!this.ending && (this.state === 'inviting' || this.state === 'ringing')) this.transition('early');
      return waSdp;
    })();
    return this.preAccept;
  }

  /**
   * End the call. Idempotent: the first cause wins; later calls wait for the same teardown.
   * Fixed order: timers, the WhatsApp leg and the SIP leg together (the WhatsApp action is not
   * held back by the PBX's answer to BYE, which can take 32 s), the media session.
   */
  end(cause: EndCause): Promise<void> {
    if (this.ending) return this.ending;
    this.endCause = cause;
    const plan = planTeardown(cause, {
      whatsappAccepted: this.acceptSent,
      sip: this.dialog ? 'confirmed' : this.outgoing ? 'inviting' : 'none',
    });
    this.plan = plan;
    this.transition('ending');
    this.ending = this.teardown(plan);
    return this.ending;
  }

  private async teardown(plan: TeardownPlan): Promise<void> {
    const log = this.log.child({ cause: plan.label });
    const c = this.endCause;
    log.info({ whatsapp: plan.whatsapp, sip: plan.sip, ...(c?.kind === 'media-failure' ? { detail: c.failure.detail } : {}) }, 'ending call');
    clearTimeout(this.ringTimer);
    const whatsapp = (async () => {
      if (plan.whatsapp === 'reject') await this.deps.whatsapp.reject(this.phoneNumberId, this.waCallId);
      else if (plan.whatsapp === 'terminate') await this.deps.whatsapp.terminate(this.phoneNumberId, this.waCallId);
    })().catch((err) => log.warn({ err }, `WhatsApp ${plan.whatsapp} failed`));
    // Sent now; the dialog layer retransmits and logs the PBX's answer. Not awaited.
    this.endPlacedSipLeg(plan.sip, plan.label, { outgoing: this.outgoing, dialog: this.dialog }, log);
    await whatsapp;
    await this.finishTeardown(log, this.timings.connectReceived, () => this.deps.onEnded(this, plan));
  }

  private async waCall(action: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      throw new WhatsAppActionFailed(action, err as Error);
    }
  }
}

class WhatsAppActionFailed extends Error {
  constructor(
    readonly action: string,
    readonly error: Error,
  ) {
    super(`WhatsApp ${action} failed: ${error.message}`);
  }
}

function toEndCause(err: unknown): EndCause {
  if (err instanceof SipFailure) return { kind: 'pbx-final', status: err.status, reason: err.reason };
  if (err instanceof WhatsAppActionFailed) return { kind: 'wa-api-error', action: err.action, error: err.error };
  if (err instanceof MediaError) return { kind: 'media-error', message: err.message };
  return { kind: 'internal-error', message: err instanceof Error ? err.message : String(err) };
}
