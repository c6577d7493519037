import { randomUUID } from 'node:crypto';
import type { Logger } from '../util/log.js';
import { MediaError, type MediaEngine } from '../media/types.js';
import type { InviteProgress, OutgoingCall, SipDialog, SipStack } from '../sip/types.js';
import { SipFailure } from '../sip/types.js';
import type { WhatsAppCallingApi } from '../whatsapp/types.js';
import type { WhatsAppCounters } from '../whatsapp/counters.js';
import { WA_ERROR } from '../whatsapp/errors.js';
import { roundMs as round, type CallLimits } from './call-base.js';
import { BusinessInitiatedCall } from './business-call.js';
import { CLICK_TRANSITIONS, type ClickState } from './call-state.js';
import { planClickTeardown, type ClickEndCause, type ClickTeardownPlan } from './failure-map.js';
import { ConnectFailed, connectFailureCause } from './connect-reconciler.js';
import { followPbxHold } from './hold.js';
import type { PermissionCache } from './permissions.js';

/** A validated click-to-call request (see parseClickRequest). */
export interface ClickRequest {
  /** The WhatsApp user, E.164 digits. */
  to: string;
  /** The SIP URI INVITEd once the user answered. */
  extension: string;
  phoneNumberId: string;
  /** Who asked (the admin token's name): logged with every step. */
  by: string;
}

/** What the requester learns once WhatsApp took the call (`connect` answered), or why it did not. */
export type ClickPlaced =
  | { ok: true; id: string; waCallId: string }
  | { ok: false; status: number; error: string; label: string; retryAfterSec?: number };

export interface ClickCallDeps {
  sip: SipStack;
  media: MediaEngine;
  whatsapp: WhatsAppCallingApi;
  permissions: PermissionCache;
  log: Logger;
  /** Domain of the From URI the extension sees (sip:+<user>@domain). */
  fromDomain: string;
  /** How long the WhatsApp user may ring, and then the extension. */
  whatsappRingMs: number;
  pbxRingMs: number;
  onWhatsAppCallId: (call: ClickCall, waCallId: string) => void;
  onSipCallId: (call: ClickCall, sipCallId: string) => void;
  onEnded: (call: ClickCall, plan: ClickTeardownPlan) => void;
  now?: () => number;
  counters?: WhatsAppCounters | undefined;
  lostConnectGraceMs?: number | undefined;
  limits?: CallLimits;
}

export interface ClickTimings {
  requested: number;
  connectSent?: number;
  ringing?: number;
  /** WhatsApp's connect webhook: the user answered. */
  answerReceived?: number;
  inviteSent?: number;
  /** The extension answered: both legs up. */
  answered?: number;
  ended?: number;
}

/**
 * A click-to-call: an operator or CRM asks (admin API), the bridge calls the WhatsApp user and,
 * once they answer, INVITEs an extension on the PBX.
 *
 * Flow: permission check → WebRTC offer (media engine, no PBX offer) → Graph `connect` with
 * biz_opaque_callback_data → RINGING → connect webhook with WhatsApp's SDP answer → plain offer
 * (media engine) → INVITE the extension → 200 OK → both legs up. WhatsApp's leg is kept alive
 * with silence by the engine while the extension rings. Failures on either side end the other
 * through `planClickTeardown`.
 */
export class ClickCall extends BusinessInitiatedCall<ClickState, ClickEndCause> {
  /** The call's name in the admin API, the call view and the media engine. */
  readonly id = `c2c-${randomUUID()}`;
  /** Echoed by WhatsApp in every webhook of the call. */
  readonly opaque = `wa-sip-bridge:${this.id}`;
  sipCallId: string | undefined;
  readonly timings: ClickTimings;
  plan: ClickTeardownPlan | undefined;
  /** Settles once `connect` answered, or the call ended before. */
  readonly placed: Promise<ClickPlaced>;

  private settlePlaced!: (p: ClickPlaced) => void;
  private outgoing: OutgoingCall | undefined;
  private dialog: SipDialog | undefined;
  private ringTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly req: ClickRequest,
    private readonly deps: ClickCallDeps,
  ) {
    const log = deps.log.child({ direction: 'click-to-call', to: req.to, extension: req.extension, by: req.by });
    const wa = { api: deps.whatsapp, phoneNumberId: req.phoneNumberId, to: req.to, counters: deps.counters, lostConnectGraceMs: deps.lostConnectGraceMs };
    super(CLICK_TRANSITIONS, log, deps.now, deps.limits, wa);
    this.log = this.log.child({ clickId: this.id });
    this.timings = { requested: this.now() };
    this.placed = new Promise((resolve) => (this.settlePlaced = resolve));
  }

  /** Start the call; resolves as `placed` does. Never throws: failures end the call. */
  async start(): Promise<ClickPlaced> {
    try {
      await this.run();
    } catch (err) {
      const cause = this.causeOf(err);
      if (cause.kind === 'internal-error') this.log.error({ err }, 'click-to-call failed unexpectedly');
      await this.end(cause);
    }
    return this.placed;
  }

  private async run(): Promise<void> {
    const { to, phoneNumberId } = this.req;
    this.log.info({ phoneNumberId }, 'click to call: calling the WhatsApp user');
    this.transition('checking');
    const perm = await this.deps.permissions.check(phoneNumberId, to);
    if (this.ending) return;
    if (!perm.canStartCall) {
      this.log.info({ status: perm.status, source: perm.source }, 'no call permission');
      await this.end({ kind: 'no-permission' });
      return;
    }
    this.transition('connecting');
    const session = this.adoptSession(this.deps.media.createSession(this.id));
    const offer = await this.track(session.offerToWhatsApp(), 'media offer');
    if (this.ending) return;
    this.ringTimer = setTimeout(() => void this.end({ kind: 'ring-timeout', side: 'whatsapp' }), this.deps.whatsappRingMs);
    this.timings.connectSent = this.now();
    if (!(await this.connect(offer))) return;
    this.log.info({ connectMs: round(this.now() - this.timings.connectSent) }, 'WhatsApp took the call (connect answered)');
    this.settlePlaced({ ok: true, id: this.id, waCallId: this.waCallId! });
  }

  protected whatsAppCallNamed(id: string): void {
    this.deps.onWhatsAppCallId(this, id);
  }

  protected whatsAppRinging(): void {
    // Nobody to tell: the extension is rung only once the user answered.
  }

  /** The user answered (connect webhook): INVITE the extension with a plain offer. */
  protected async whatsAppAnswered(waSdp: string): Promise<void> {
    this.timings.answerReceived = this.now();
    clearTimeout(this.ringTimer);
    this.transition('inviting');
    const session = this.mediaSession!;
    const plainOffer = await this.track(session.answerFromWhatsApp(waSdp), 'media answer');
    if (this.ending) return;
    const to = this.req.to;
    this.ringTimer = setTimeout(() => void this.end({ kind: 'ring-timeout', side: 'pbx' }), this.deps.pbxRingMs);
    const outgoing = this.deps.sip.invite(
      {
        uri: this.req.extension,
        from: { uri: `sip:+${to}@${this.deps.fromDomain}`, displayName: `+${to}` },
        sdp: plainOffer,
        headers: { 'X-WA-Call-Id': this.waCallId ?? '', 'X-WA-Phone-Number-Id': this.phoneNumberId, 'X-WA-Click-To-Call': this.req.by },
      },
      { onProgress: (p) => this.onProgress(p) },
    );
    this.outgoing = outgoing;
    this.sipCallId = outgoing.callId;
    this.log = this.log.child({ sipCallId: outgoing.callId });
    this.deps.onSipCallId(this, outgoing.callId);
    this.timings.inviteSent = this.now();
    this.log.info({ answerToInviteMs: round(this.timings.inviteSent - this.timings.answerReceived) }, 'WhatsApp user answered; INVITE sent to the extension');

    const dialog = await outgoing.established;
    this.dialog = dialog;
    dialog.on('bye', () => void this.end({ kind: 'pbx-bye' }));
    followPbxHold(dialog, session, this.log, dialog.remoteSdp);
    if (this.ending) {
      await dialog.bye();
      return;
    }
    const pbxSdp = dialog.remoteSdp;
    if (!pbxSdp) throw new MediaError('the extension answered without SDP', this.deps.media.name);
    await this.track(session.answerFromPbxToOffer(pbxSdp), 'media answer');
    if (this.ending) return;
    clearTimeout(this.ringTimer);
    this.timings.answered = this.now();
    this.transition('active');
    this.log.info('extension answered; both legs up');
  }

  /** Early media from the extension (183 with SDP) reaches the WhatsApp user at once. */
  private onProgress(p: InviteProgress): void {
    if (this.ending || !p.sdp) return;
    void this.track(this.mediaSession!.answerFromPbxToOffer(p.sdp), 'media answer').catch((err) => void this.end(this.causeOf(err)));
  }

  end(cause: ClickEndCause): Promise<void> {
    if (this.ending) return this.ending;
    const plan = planClickTeardown(cause, { whatsappCallStarted: this.waCallId !== undefined, sip: this.dialog ? 'confirmed' : this.outgoing ? 'inviting' : 'none' });
    this.plan = plan;
    this.settlePlaced(refusal(cause, plan.label));
    this.transition('ending');
    this.ending = this.teardown(plan);
    return this.ending;
  }

  private async teardown(plan: ClickTeardownPlan): Promise<void> {
    const log = this.log.child({ cause: plan.label });
    log.info({ whatsapp: plan.whatsapp, sip: plan.sip }, 'ending call');
    clearTimeout(this.ringTimer);
    const whatsapp = this.endWhatsAppLeg(plan.whatsapp, log);
    this.endPlacedSipLeg(plan.sip, plan.label, { outgoing: this.outgoing, dialog: this.dialog }, log);
    await whatsapp;
    await this.finishTeardown(log, this.timings.requested, () => this.deps.onEnded(this, plan));
  }

  protected causeOf(err: unknown): ClickEndCause {
    if (err instanceof ConnectFailed) return connectFailureCause(err, this.deps.permissions, this.phoneNumberId, this.req.to);
    if (err instanceof SipFailure) return { kind: 'pbx-final', status: err.status, reason: err.reason };
    if (err instanceof MediaError) return { kind: 'media-error', message: err.message, ...(err.reason === 'unsupported' ? { unsupported: true } : {}) };
    return { kind: 'internal-error', message: err instanceof Error ? err.message : String(err) };
  }
}

/** What the requester is told when the call ended before WhatsApp took it (ignored after). */
function refusal(cause: ClickEndCause, label: string): ClickPlaced {
  const no = (status: number, error: string, retryAfterSec?: number): ClickPlaced => ({ ok: false, status, error, label, ...(retryAfterSec ? { retryAfterSec } : {}) });
  switch (cause.kind) {
    case 'no-permission':
      return no(403, 'the WhatsApp user has not given this business permission to call');
    case 'wa-api-error':
      return cause.code === WA_ERROR.noPermission ? no(403, `WhatsApp ${cause.code}: ${cause.message}`) : no(502, `WhatsApp connect failed (${cause.code}): ${cause.message}`);
    case 'media-error':
      return cause.unsupported ? no(501, cause.message) : no(500, `media: ${cause.message}`);
    case 'shutdown':
      return no(503, 'bridge shutting down', 30);
    default:
      return no(500, `the call ended before WhatsApp took it (${label})`);
  }
}
