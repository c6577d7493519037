import type { Config } from '../config/schema.js';
import type { Logger } from '../util/log.js';
import type { MediaEngine } from '../media/types.js';
import type { IncomingInvite, SipStack } from '../sip/types.js';
import type { WaConnectEvent, WaEvent, WaStatusEvent, WaTerminateEvent, WhatsAppCallingApi } from '../whatsapp/types.js';
import { eventKey } from '../whatsapp/webhook.js';
import { CapacityGuard, capacityLimits } from './capacity.js';
import { withTimeout, type CallLimits } from './call-base.js';
import { ExpiringSet } from './dedupe.js';
import { InboundCall } from './inbound-call.js';
import { sipFinalHeaders, sipRefusal, type SipFinal } from './failure-map.js';
import { CallAdmission, businessNumberFor } from './admission.js';
import { parseDialedNumber } from './numbers.js';
import { OutboundCall } from './outbound-call.js';
import { PermissionCache, type PermissionStore } from './permissions.js';
import { ConnectReconciler } from './connect-reconciler.js';
import { ClickCalls, parseClickRequest, refusedClick } from './click-calls.js';
import type { ClickCall, ClickPlaced } from './click-call.js';
import type { WhatsAppCounters } from '../whatsapp/counters.js';
import { route } from './routing.js';
import { inboundFacts, outboundFacts } from './call-facts.js';
import { CallNotices, type CallObserver, type EndedCallRecord, type StartedCall } from './observer.js';
export type { EndedCallRecord } from './observer.js';

export interface BridgeDeps {
  config: Readonly<Config>;
  sip: SipStack;
  media: MediaEngine;
  whatsapp: WhatsAppCallingApi;
  log: Logger;
  /** Domain for the caller's From URI (sip:+<wa_id>@domain). */
  fromDomain: string;
  whatsappCounters?: WhatsAppCounters | undefined;
  /** After a connect whose answer was lost: how long to wait for its webhook (default 5 s). */
  lostConnectGraceMs?: number | undefined;
  /** Metrics, call records, the live call view. */
  observer?: CallObserver | undefined;
  /** Call-permission answers shared with the other instances of a cluster. */
  sharedPermissions?: PermissionStore | undefined;
}

/** How long webhook keys and terminated call ids are remembered (Meta retries for days; calls don't). */
const DEDUPE_TTL_MS = 30 * 60_000;
/** Most keys remembered at once (a webhook flood cannot grow memory without bound); the oldest go first. */
const DEDUPE_MAX_KEYS = 100_000;

/** How long a stop waits for the PBX to answer BYEs (after every WhatsApp leg was ended). */
const BYE_GRACE_MS = 2000;

/** running: taking calls. draining: no new calls, calls in progress carry on. stopped: every call ended. */
export type BridgeState = 'running' | 'draining' | 'stopped';

/** Why a new call was refused before it started (a WhatsApp reject or a SIP 503). */
export type CallRefusal = 'draining' | 'over-capacity' | 'setup-rate';


/**
 * The bridge: takes WhatsApp's webhook events, owns the live calls, and ends them all on
 * shutdown. One call's failure never reaches another.
 */
export class Bridge {
  private readonly calls = new Map<string, InboundCall>();
  /** Outbound calls by their biz_opaque_callback_data, and by WhatsApp call id once known. */
  private readonly outbound = new Map<string, OutboundCall>();
  /** The same outbound calls by their SIP Call-ID (outboundCall(), hangup()): no scan. */
  private readonly outboundBySip = new Map<string, OutboundCall>();
  private readonly outboundByWaId = new Map<string, OutboundCall>();
  private readonly clicks: ClickCalls;
  private readonly permissions: PermissionCache;
  private readonly admission: CallAdmission;
  private readonly seenEvents = new ExpiringSet(DEDUPE_TTL_MS, undefined, DEDUPE_MAX_KEYS);
  /** Calls WhatsApp already terminated: a connect arriving late for one of them is dropped. */
  private readonly terminated = new ExpiringSet(DEDUPE_TTL_MS, undefined, DEDUPE_MAX_KEYS);
  private readonly notices: CallNotices;
  /** Connects whose answer was lost: terminated when their webhooks come after we gave up. */
  private readonly reconciler: ConnectReconciler;
  private readonly capacity: CapacityGuard;
  private readonly limits: CallLimits;
  private stateNow: BridgeState = 'running';
  /** Routing rules, replaceable at run time (SIGHUP, admin API); calls in progress keep theirs. */
  private routing: Config['routing'];

  constructor(private readonly deps: BridgeDeps) {
    this.notices = new CallNotices(deps.log, deps.observer);
    this.reconciler = new ConnectReconciler({ whatsapp: deps.whatsapp, log: deps.log, counters: deps.whatsappCounters });
    const o = deps.config.outbound;
    const c = deps.config.calls;
    this.routing = deps.config.routing;
    this.permissions = new PermissionCache(deps.whatsapp, o.permissionCacheSec * 1000, deps.log);
    if (deps.sharedPermissions) this.permissions.useSharedStore(deps.sharedPermissions);
    this.admission = new CallAdmission({ allowFrom: o.allowFrom, auth: o.auth, requireTcp: o.requireTcp });
    this.capacity = new CapacityGuard(capacityLimits(deps.config));
    this.limits = { maxDurationMs: c.maxDurationSec * 1000, mediaOpTimeoutMs: c.mediaOpTimeoutSec * 1000 };
    deps.sip.onInvite((inv) => this.onInvite(inv));
    const { sip, media, whatsapp, log, fromDomain } = deps;
    this.clicks = new ClickCalls({ sip, media, whatsapp, log, fromDomain, permissions: this.permissions, limits: this.limits, counters: deps.whatsappCounters, lostConnectGraceMs: deps.lostConnectGraceMs,
      whatsappRingMs: deps.config.ops.admin.clickToCallRingSec * 1000, pbxRingMs: c.ringTimeoutSec * 1000, observer: (fn) => this.observe(fn), emitEnded: (rec) => this.emitEnded(rec) }); // prettier-ignore
  }

  get activeCalls(): number {
    return this.calls.size + this.outbound.size + this.clicks.size;
  }

  get state(): BridgeState {
    return this.stateNow;
  }

  /** For /readyz and the soak bench: the state, the load against its limits, every per-call map's size. */
  status(): { state: BridgeState; activeCalls: number; maxConcurrent: number; maxSetupsPerSec: number; maps: Record<string, number> } {
    return {
      state: this.stateNow,
      activeCalls: this.activeCalls,
      ...this.capacity.limits,
      maps: {
        inbound: this.calls.size,
        outbound: this.outbound.size,
        outboundByWaId: this.outboundByWaId.size,
        clickToCall: this.clicks.size,
        outboundBySipCallId: this.outboundBySip.size,
        seenEvents: this.seenEvents.size,
        terminated: this.terminated.size,
        permissions: this.permissions.size,
      },
    };
  }

  /** Whether a new call may start now; logs and counts nothing (the caller does). */
  private admitNewCall(): { ok: true } | { ok: false; reason: CallRefusal } {
    if (this.stateNow !== 'running') return { ok: false, reason: 'draining' };
    return this.capacity.admit(this.activeCalls);
  }

  outboundCall(sipCallId: string): OutboundCall | undefined {
    return this.outboundBySip.get(sipCallId);
  }

  call(waCallId: string): InboundCall | undefined {
    return this.calls.get(waCallId);
  }

  /** New routing for new calls (validated by the config loader); calls in progress are untouched. */
  setRouting(routing: Config['routing']): void {
    this.routing = routing;
    this.deps.log.info({ rules: routing.rules.length, default: routing.default }, 'routing reloaded');
  }

  /**
   * An operator ends a live call (admin API), found by its WhatsApp call id or SIP Call-ID:
   * both legs end as for any bridge-side cause. False when no such call is up.
   */
  async hangup(id: string, by: string): Promise<boolean> {
    const call = this.calls.get(id) ?? this.outboundByWaId.get(id) ?? this.outboundBySip.get(id) ?? [...this.calls.values()].find((c) => c.sipCallId === id) ?? this.clicks.byAnyId(id);
    if (!call) return false;
    await call.end({ kind: 'admin-hangup', by });
    return true;
  }

  /**
   * Click to call (admin API): call the WhatsApp user, then INVITE the extension when they answer.
   * `body` is validated here; resolves once WhatsApp took the call, or with why not (HTTP status).
   */
  placeCall(body: unknown, by: string): Promise<ClickPlaced> {
    const parsed = parseClickRequest(body, this.deps.config, this.routing);
    if (!parsed.ok) return Promise.resolve({ ok: false, status: 400, error: parsed.error, label: 'bad-request' });
    const admitted = this.admitNewCall();
    if (!admitted.ok) {
      this.deps.log.warn({ refusal: admitted.reason, activeCalls: this.activeCalls, by }, `click to call refused (${admitted.reason})`);
      return Promise.resolve(refusedClick(admitted.reason));
    }
    return this.clicks.place({ ...parsed.request, by });
  }

  onCallEnded(listener: (rec: EndedCallRecord) => void): () => void {
    return this.notices.onEnded(listener);
  }

  /** Handle parsed webhook events. Never throws; each event is handled on its own. */
  handleEvents(events: WaEvent[]): void {
    for (const ev of events) {
      try {
        this.handle(ev);
      } catch (err) {
        this.deps.log.error({ err, event: ev.kind }, 'webhook event handling failed');
      }
    }
  }

  private handle(ev: WaEvent): void {
    const log = this.deps.log;
    const ids = this.deps.config.whatsapp.phoneNumberIds;
    if (ids.length > 0 && !ids.includes(ev.phoneNumberId)) {
      log.warn({ phoneNumberId: ev.phoneNumberId, event: ev.kind }, 'webhook for a phone number id this bridge does not serve; ignored');
      return;
    }
    const key = eventKey(ev);
    if (!this.seenEvents.add(key)) {
      log.info({ key }, 'duplicate webhook event ignored');
      return;
    }
    switch (ev.kind) {
      case 'connect':
        return this.onConnect(ev);
      case 'terminate':
        return this.onTerminate(ev);
      case 'status':
        return this.onStatus(ev);
      case 'permission_reply':
        log.info({ from: ev.userWaId, response: ev.response, permanent: ev.isPermanent }, 'call permission reply');
        this.permissions.onReply(ev);
        return;
    }
  }

  private onConnect(ev: WaConnectEvent): void {
    const log = this.deps.log.child({ waCallId: ev.callId });
    if (ev.direction === 'BUSINESS_INITIATED') {
      const call = this.findOutbound(ev.callId, ev.bizOpaqueCallbackData);
      if (call) call.onConnect(ev);
      else if (!this.reconciler.onOrphan(ev)) log.warn('connect for a business-initiated call the bridge does not hold; ignored');
      return;
    }
    if (this.terminated.has(ev.callId)) {
      log.info('connect arrived after WhatsApp already terminated the call; nothing to do');
      return;
    }
    const admitted = this.admitNewCall();
    if (!admitted.ok) {
      log.warn({ refusal: admitted.reason, activeCalls: this.activeCalls }, `call refused (${admitted.reason}); rejecting on WhatsApp`);
      void this.deps.whatsapp.reject(ev.phoneNumberId, ev.callId).catch((err) => log.warn({ err }, 'reject failed'));
      this.emitEnded({ direction: 'inbound', waCallId: ev.callId, sipCallId: undefined, label: `refused-${admitted.reason}`, whatsapp: 'reject', sip: 'none' });
      return;
    }
    const decision = route(this.routing, {
      phoneNumberId: ev.phoneNumberId,
      businessNumber: ev.businessNumber,
      callerWaId: ev.userWaId,
      at: new Date(),
    });
    const call = new InboundCall(ev, decision, {
      sip: this.deps.sip,
      media: this.deps.media,
      whatsapp: this.deps.whatsapp,
      log: this.deps.log,
      fromDomain: this.deps.fromDomain,
      ringTimeoutMs: this.deps.config.calls.ringTimeoutSec * 1000,
      limits: this.limits,
      onSipCallId: (c, id) => this.observe((o) => o.identified(c.waCallId, { sipCallId: id })),
      onEnded: (c, plan) => {
        this.calls.delete(c.waCallId);
        this.emitEnded({ direction: 'inbound', waCallId: c.waCallId, sipCallId: c.sipCallId, label: plan.label, whatsapp: plan.whatsapp, sip: plan.sip, ...inboundFacts(c) });
      },
    });
    this.calls.set(ev.callId, call);
    this.started({ direction: 'inbound', key: ev.callId, waCallId: ev.callId, phoneNumberId: ev.phoneNumberId, whatsappUser: ev.userWaId, pbx: decision.target });
    void call.start();
  }

  private observe(fn: (o: CallObserver) => void): void {
    this.notices.observe(fn);
  }

  private started(c: StartedCall): void {
    this.observe((o) => o.started(c));
  }

  private emitEnded(rec: EndedCallRecord): void {
    this.notices.ended(rec);
  }

  /** A business-initiated call (dialled by an agent, or click to call) a webhook names. */
  private findOutbound(waCallId: string, opaque: string | undefined): OutboundCall | ClickCall | undefined {
    return this.outboundByWaId.get(waCallId) ?? (opaque ? this.outbound.get(opaque) : undefined) ?? this.clicks.find(waCallId, opaque);
  }

  private onStatus(ev: WaStatusEvent): void {
    const call = this.findOutbound(ev.callId, ev.bizOpaqueCallbackData);
    if (!call) {
      if (this.reconciler.onOrphan(ev)) return;
      this.deps.log.info({ waCallId: ev.callId, status: ev.status }, 'status for a call the bridge does not hold');
      return;
    }
    call.onStatus(ev);
  }

  /** An INVITE from the PBX: an agent dials a WhatsApp user. */
  private onInvite(inv: IncomingInvite): void {
    const o = this.deps.config.outbound;
    const log = this.deps.log.child({ sipCallId: inv.callId, direction: 'outbound' });
    const src = `${inv.source.address}:${inv.source.port}/${inv.source.transport}`;
    const refuse = (f: SipFinal) => inv.reject(f.status, f.reason, sipFinalHeaders(f));
    if (!o.enabled) {
      log.warn({ source: src, uri: inv.requestUri }, 'INVITE refused: outbound calls are disabled (outbound.enabled)');
      refuse(sipRefusal('outbound-disabled'));
      return;
    }
    const admitted = this.admission.check(inv);
    if (!admitted.ok) {
      if (admitted.status === 401) {
        log.info({ source: src, reason: admitted.reason }, 'INVITE challenged (digest authentication)');
        inv.reject(401, 'Unauthorized', { 'WWW-Authenticate': admitted.challenge }); // a challenge, not a refusal
      } else {
        log.warn({ source: src, uri: inv.requestUri, from: inv.from.uri, reason: admitted.reason }, 'INVITE refused (possible toll-fraud attempt)');
        refuse(sipRefusal('not-allowed', admitted.warning));
      }
      return;
    }
    const dialed = parseDialedNumber(inv.requestUri, o.dialPrefix);
    if (!dialed.ok) {
      log.info({ uri: inv.requestUri, reason: dialed.reason }, 'INVITE refused: not a WhatsApp number');
      refuse(sipRefusal('bad-number', dialed.reason));
      return;
    }
    const capacity = this.admitNewCall();
    if (!capacity.ok) {
      log.warn({ refusal: capacity.reason, activeCalls: this.activeCalls }, `INVITE refused (${capacity.reason})`);
      const f = sipRefusal(capacity.reason);
      refuse(f);
      this.emitEnded({ direction: 'outbound', waCallId: undefined, sipCallId: inv.callId, label: `refused-${capacity.reason}`, whatsapp: 'none', sip: f.status });
      return;
    }
    const phoneNumberId = businessNumberFor(inv, o, this.deps.config.whatsapp.phoneNumberIds);
    if (!phoneNumberId) {
      log.error('no business phone number id configured for outbound calls');
      refuse(sipRefusal('no-business-number'));
      return;
    }
    const call = new OutboundCall(inv, dialed.e164, phoneNumberId, {
      media: this.deps.media,
      whatsapp: this.deps.whatsapp,
      permissions: this.permissions,
      log: this.deps.log,
      ringTimeoutMs: o.ringTimeoutSec * 1000,
      limits: this.limits,
      requestPermission: o.requestPermission,
      // A call id that arrives after the call ended (connect returned late) is not kept.
      onWhatsAppCallId: (c, id) => {
        if (this.outbound.get(c.opaque) === c) this.outboundByWaId.set(id, c);
        this.observe((o) => o.identified(c.sipCallId, { waCallId: id }));
      },
      counters: this.deps.whatsappCounters,
      lostConnectGraceMs: this.deps.lostConnectGraceMs,
      onEnded: (c, plan) => {
        this.outbound.delete(c.opaque);
        if (this.outboundBySip.get(c.sipCallId) === c) this.outboundBySip.delete(c.sipCallId);
        if (c.waCallId) this.outboundByWaId.delete(c.waCallId);
        else if (c.timings.connectSent !== undefined) this.reconciler.abandoned(c.phoneNumberId, c.opaque);
        this.emitEnded({
          direction: 'outbound',
          waCallId: c.waCallId,
          sipCallId: c.sipCallId,
          label: plan.label,
          whatsapp: plan.whatsapp,
          sip: plan.sip.kind === 'final' ? plan.sip.final.status : plan.sip.kind,
          ...outboundFacts(c),
        });
      },
    });
    this.outbound.set(call.opaque, call);
    this.outboundBySip.set(call.sipCallId, call);
    this.started({ direction: 'outbound', key: inv.callId, sipCallId: inv.callId, opaque: call.opaque, phoneNumberId, whatsappUser: dialed.e164, pbx: inv.from.uri });
    void call.start();
  }

  private onTerminate(ev: WaTerminateEvent): void {
    this.terminated.add(ev.callId);
    const out = this.findOutbound(ev.callId, ev.bizOpaqueCallbackData);
    if (out) {
      out.onWhatsAppTerminate(ev);
      return;
    }
    const call = this.calls.get(ev.callId);
    if (!call) {
      this.deps.log.info({ waCallId: ev.callId, status: ev.status }, 'terminate for a call the bridge does not hold (ended already, or connect not yet seen)');
      return;
    }
    call.onWhatsAppTerminate(ev);
  }

  /**
   * Stop taking calls: every new call is refused (WhatsApp reject, SIP 503 with Retry-After);
   * calls in progress carry on. Resolves when the last call ended, or after `deadlineMs`, when
   * the calls still up are ended (`close()`).
   */
  async drain(deadlineMs: number): Promise<'drained' | 'deadline'> {
    if (this.stateNow === 'running') {
      this.stateNow = 'draining';
      this.deps.log.info({ activeCalls: this.activeCalls, drainSec: deadlineMs / 1000 }, 'draining: new calls are refused; calls in progress carry on');
    }
    let off: () => void = () => undefined;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await new Promise<'drained' | 'deadline'>((resolve) => {
      const check = () => {
        if (this.activeCalls === 0) resolve('drained');
      };
      off = this.onCallEnded(check);
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
      check();
    });
    off();
    clearTimeout(timer);
    if (outcome === 'deadline') this.deps.log.warn({ activeCalls: this.activeCalls }, 'drain time is up: ending the calls still up');
    await this.close();
    return outcome;
  }

  /**
   * End every call now (WhatsApp reject/terminate first, CANCEL/BYE on SIP without waiting for
   * the PBX's answer) and wait for them to be released.
   */
  async close(): Promise<void> {
    this.stateNow = 'stopped';
    const calls = [...this.calls.values(), ...this.outbound.values(), ...this.clicks.all()];
    await Promise.all(calls.map((c) => c.end({ kind: 'shutdown' })));
    // Every WhatsApp leg is ended. Give the PBX a moment to answer the BYEs before the SIP stack
    // closes (a BYE is retransmitted until answered); a silent PBX does not hold the stop up.
    await withTimeout(Promise.all(calls.map((c) => c.sipLegEnded)), BYE_GRACE_MS, () => new Error('BYE unanswered')).catch(() =>
      this.deps.log.warn({ calls: calls.length }, 'stopping without every BYE answered'),
    );
  }
}
