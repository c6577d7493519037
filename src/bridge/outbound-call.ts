import { outboundMediaSessionId } from './observer.js';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../util/log.js';
import { MediaError, type MediaEngine } from '../media/types.js';
import { followPbxHold } from './hold.js';
import type { IncomingInvite, SipDialog } from '../sip/types.js';
import type { WhatsAppCallingApi } from '../whatsapp/types.js';
import type { WhatsAppCounters } from '../whatsapp/counters.js';
import { roundMs as round, type CallLimits } from './call-base.js';
import { BusinessInitiatedCall } from './business-call.js';
import { OUTBOUND_TRANSITIONS, type OutboundState } from './call-state.js';
import { planOutboundTeardown, sipFinalHeaders, sipReasonHeader, type OutboundEndCause, type OutboundTeardownPlan } from './failure-map.js';
import type { PermissionCache } from './permissions.js';
import { ConnectFailed, connectFailureCause } from './connect-reconciler.js';

export interface OutboundCallDeps {
  media: MediaEngine;
  whatsapp: WhatsAppCallingApi;
  permissions: PermissionCache;
  log: Logger;
  ringTimeoutMs: number;
  requestPermission: { enabled: boolean; bodyText?: string | undefined };
  /** WhatsApp gave the call its id: the bridge can route webhooks to it. */
  onWhatsAppCallId: (call: OutboundCall, waCallId: string) => void;
  onEnded: (call: OutboundCall, plan: OutboundTeardownPlan) => void;
  now?: () => number;
  counters?: WhatsAppCounters | undefined;
  /** How long to wait for a webhook naming the call after a connect whose answer was lost. */
  lostConnectGraceMs?: number | undefined;
  /** Maximum duration and media operation timeout (defaults: 4 h, 10 s). */
  limits?: CallLimits;
}

export interface OutboundTimings {
  inviteReceived: number;
  connectSent?: number;
  /** WhatsApp's RINGING status. */
  ringing?: number;
  answerReceived?: number;
  okSent?: number;
  ended?: number;
}

/**
 * One business-initiated call: an agent on the PBX dials a WhatsApp user.
 *
 * Flow (Meta "business-initiated calls"): INVITE (admitted, number parsed) → permission check →
 * media offer → Graph `connect` (with biz_opaque_callback_data naming this call) → RINGING
 * status → 180 → connect webhook with WhatsApp's SDP answer → media answer → 200 OK → ACK.
 * No `accept` is sent for business-initiated calls.
 */
export class OutboundCall extends BusinessInitiatedCall<OutboundState, OutboundEndCause> {
  /** Echoed by WhatsApp in every webhook of the call: finds it before `connect` returns. */
  readonly opaque = `wa-sip-bridge:${randomUUID()}`;
  readonly timings: OutboundTimings;
  plan: OutboundTeardownPlan | undefined;

  private dialog: SipDialog | undefined;
  private ringTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly invite: IncomingInvite,
    readonly to: string,
    phoneNumberId: string,
    private readonly deps: OutboundCallDeps,
  ) {
    const log = deps.log.child({ sipCallId: invite.callId, direction: 'outbound', to });
    const wa = { api: deps.whatsapp, phoneNumberId, to, counters: deps.counters, lostConnectGraceMs: deps.lostConnectGraceMs };
    super(OUTBOUND_TRANSITIONS, log, deps.now, deps.limits, wa);
    this.timings = { inviteReceived: this.now() };
    invite.onCancel(() => void this.end({ kind: 'pbx-cancel' }));
  }

  get sipCallId(): string {
    return this.invite.callId;
  }

  async start(): Promise<void> {
    try {
      await this.run();
    } catch (err) {
      const cause = this.causeOf(err);
      if (cause.kind === 'internal-error') this.log.error({ err }, 'outbound call failed unexpectedly');
      await this.end(cause);
    }
  }

  private async run(): Promise<void> {
    this.log.info({ from: this.invite.from.uri, phoneNumberId: this.phoneNumberId }, 'agent dials a WhatsApp user');
    this.transition('checking');
    const perm = await this.deps.permissions.check(this.phoneNumberId, this.to);
    if (this.ending) return;
    if (!perm.canStartCall) {
      this.log.info({ status: perm.status, source: perm.source }, 'no call permission');
      const requested = perm.canRequestPermission && (await this.requestPermission());
      await this.end({ kind: 'no-permission', permissionRequested: requested });
      return;
    }

    this.transition('connecting');
    const plainOffer = this.invite.sdp;
    if (!plainOffer) throw new MediaError('INVITE without SDP (late offer) is not supported', this.deps.media.name, 'no-offer');
    const session = this.adoptSession(this.deps.media.createSession(outboundMediaSessionId(this.invite.callId)));
    const offer = await this.track(session.offerFromPbx(plainOffer), 'media offer');
    if (this.ending) return;

    this.ringTimer = setTimeout(() => void this.end({ kind: 'ring-timeout' }), this.deps.ringTimeoutMs);
    this.timings.connectSent = this.now();
    this.log.info({ setupMs: round(this.timings.connectSent - this.timings.inviteReceived) }, 'connect sent to WhatsApp');
    await this.connect(offer);
  }

  protected whatsAppCallNamed(id: string): void {
    this.deps.onWhatsAppCallId(this, id);
  }

  protected whatsAppRinging(): void {
    this.invite.progress(180, 'Ringing');
  }

  protected async whatsAppAnswered(waSdp: string): Promise<void> {
    this.timings.answerReceived = this.now();
    if (this.state === 'connecting' || this.state === 'ringing') this.transition('answering');
    const plainAnswer = await this.track(this.mediaSession!.answerFromWhatsApp(waSdp), 'media answer');
    if (this.ending) return;
    this.timings.okSent = this.now();
    this.log.info({ answerTo200Ms: round(this.timings.okSent - this.timings.answerReceived) }, '200 OK sent to the PBX');
    const accepting = this.invite.accept(plainAnswer);
    const dialog = await accepting;
    this.dialog = dialog;
    dialog.on('bye', () => void this.end({ kind: 'pbx-bye' }));
    followPbxHold(dialog, this.mediaSession!, this.log, this.invite.sdp);
    if (this.ending) {
      await dialog.bye();
      return;
    }
    clearTimeout(this.ringTimer);
    this.transition('active');
    this.log.info('call answered; both legs up');
  }

  end(cause: OutboundEndCause): Promise<void> {
    if (this.ending) return this.ending;
    const plan = planOutboundTeardown(cause, { whatsappCallStarted: this.waCallId !== undefined, sip: this.dialog ? 'confirmed' : 'proceeding' });
    this.plan = plan;
    this.transition('ending');
    this.ending = this.teardown(plan);
    return this.ending;
  }

  private async teardown(plan: OutboundTeardownPlan): Promise<void> {
    const log = this.log.child({ cause: plan.label });
    log.info({ whatsapp: plan.whatsapp, sip: plan.sip.kind === 'final' ? plan.sip.final.status : plan.sip.kind }, 'ending call');
    clearTimeout(this.ringTimer);
    const whatsapp = this.endWhatsAppLeg(plan.whatsapp, log);
    try {
      // Sent now; the PBX's answer to a BYE is not waited for (the dialog layer logs it).
      if (plan.sip.kind === 'final') this.invite.reject(plan.sip.final.status, plan.sip.final.reason, sipFinalHeaders(plan.sip.final));
      else if (plan.sip.kind === 'bye') this.sipLegEnded = this.dialog?.bye(sipReasonHeader(plan.label)) ?? Promise.resolve();
    } catch (err) {
      log.warn({ err }, 'ending the SIP leg failed');
    }
    await whatsapp;
    await this.finishTeardown(log, this.timings.inviteReceived, () => this.deps.onEnded(this, plan));
  }

  private async requestPermission(): Promise<boolean> {
    if (!this.deps.requestPermission.enabled) return false;
    try {
      const { messageId } = await this.deps.whatsapp.sendCallPermissionRequest(this.phoneNumberId, this.to, this.deps.requestPermission.bodyText);
      this.log.info({ messageId }, 'call permission request sent to the user');
      return true;
    } catch (err) {
      this.log.warn({ err }, 'call permission request failed');
      return false;
    }
  }

  protected causeOf(err: unknown): OutboundEndCause {
    if (err instanceof ConnectFailed) return connectFailureCause(err, this.deps.permissions, this.phoneNumberId, this.to);
    if (err instanceof MediaError) return { kind: 'media-error', message: err.message, beforeConnect: this.waCallId === undefined };
    return { kind: 'internal-error', message: err instanceof Error ? err.message : String(err) };
  }

}

