import type { Config } from '../config/schema.js';
import type { Logger } from '../util/log.js';
import type { MediaEngine } from '../media/types.js';
import type { SipStack } from '../sip/types.js';
import type { WaConnectEvent, WaEvent, WaTerminateEvent, WhatsAppCallsApi } from '../whatsapp/types.js';
import { eventKey } from '../whatsapp/webhook.js';
import { ExpiringSet } from './dedupe.js';
import { InboundCall } from './inbound-call.js';
import type { TeardownPlan } from './failure-map.js';
import { route } from './routing.js';

export interface BridgeDeps {
  config: Readonly<Config>;
  sip: SipStack;
  media: MediaEngine;
  whatsapp: WhatsAppCallsApi;
  log: Logger;
  /** Domain for the caller's From URI (sip:+<wa_id>@domain). */
  fromDomain: string;
}

/** How long webhook keys and terminated call ids are remembered (Meta retries for days; calls don't). */
const DEDUPE_TTL_MS = 30 * 60_000;

export interface EndedCallRecord {
  waCallId: string;
  sipCallId: string | undefined;
  label: string;
  whatsapp: TeardownPlan['whatsapp'];
  sip: TeardownPlan['sip'];
}

/**
 * The bridge: takes WhatsApp's webhook events, owns the live calls, and ends them all on
 * shutdown. One call's failure never reaches another.
 */
export class Bridge {
  private readonly calls = new Map<string, InboundCall>();
  private readonly seenEvents = new ExpiringSet(DEDUPE_TTL_MS);
  /** Calls WhatsApp already terminated: a connect arriving late for one of them is dropped. */
  private readonly terminated = new ExpiringSet(DEDUPE_TTL_MS);
  private readonly listeners = new Set<(rec: EndedCallRecord) => void>();
  private closing = false;

  constructor(private readonly deps: BridgeDeps) {}

  get activeCalls(): number {
    return this.calls.size;
  }

  call(waCallId: string): InboundCall | undefined {
    return this.calls.get(waCallId);
  }

  onCallEnded(listener: (rec: EndedCallRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
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
        log.info({ waCallId: ev.callId, status: ev.status }, 'call status');
        return;
      case 'permission_reply':
        log.info({ from: ev.userWaId, response: ev.response }, 'call permission reply');
        return;
    }
  }

  private onConnect(ev: WaConnectEvent): void {
    const log = this.deps.log.child({ waCallId: ev.callId });
    if (ev.direction !== 'USER_INITIATED') {
      log.warn({ direction: ev.direction }, 'connect for a business-initiated call: outbound calls are not handled yet; ignored');
      return;
    }
    if (this.terminated.has(ev.callId)) {
      log.info('connect arrived after WhatsApp already terminated the call; nothing to do');
      return;
    }
    if (this.closing) {
      log.warn('bridge is shutting down; rejecting call');
      void this.deps.whatsapp.reject(ev.phoneNumberId, ev.callId).catch((err) => log.warn({ err }, 'reject failed'));
      return;
    }
    const decision = route(this.deps.config.routing, {
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
      onEnded: (c, plan) => {
        this.calls.delete(c.waCallId);
        const rec: EndedCallRecord = { waCallId: c.waCallId, sipCallId: c.sipCallId, label: plan.label, whatsapp: plan.whatsapp, sip: plan.sip };
        for (const l of this.listeners) {
          try {
            l(rec);
          } catch (err) {
            this.deps.log.error({ err }, 'call-ended listener failed');
          }
        }
      },
    });
    this.calls.set(ev.callId, call);
    void call.start();
  }

  private onTerminate(ev: WaTerminateEvent): void {
    this.terminated.add(ev.callId);
    const call = this.calls.get(ev.callId);
    if (!call) {
      this.deps.log.info({ waCallId: ev.callId, status: ev.status }, 'terminate for a call the bridge does not hold (ended already, or connect not yet seen)');
      return;
    }
    call.onWhatsAppTerminate(ev);
  }

  /** End every call (reject/terminate on WhatsApp, CANCEL/BYE on SIP) and wait for them. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.calls.values()].map((c) => c.end({ kind: 'shutdown' })));
  }
}
