import { Bridge, type EndedCallRecord } from '../../src/bridge/bridge.js';
import { buildConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/util/log.js';
import type { WaConnectEvent, WaTerminateEvent } from '../../src/whatsapp/types.js';
import { deliverInvite, FakeDialog, FakeIncomingInvite, FakeMedia, FakeSip, FakeWhatsApp, type FakeOutgoing } from './fakes.js';

/**
 * One bridge on fakes, both directions enabled, for scenario tests of whole-bridge behaviour
 * (watchdogs, drain, capacity): start calls, answer them, and wait for what the bridge does.
 */
export const PNID = '436666719526789';
const base = { phoneNumberId: PNID, businessNumber: '13175551399', timestamp: 1764000000 };

export const userCall = (callId: string): WaConnectEvent => ({
  kind: 'connect', callId, direction: 'USER_INITIATED', userWaId: '5511987654321', sdpType: 'offer', sdp: 'wa-offer', ...base,
});
export const waTerminate = (callId: string): WaTerminateEvent => ({ kind: 'terminate', callId, status: 'COMPLETED', errors: [], ...base });
export const waAnswer = (callId: string): WaConnectEvent => ({
  kind: 'connect', callId, direction: 'BUSINESS_INITIATED', userWaId: '5511987654321', sdpType: 'answer', sdp: 'wa-answer', ...base,
});

export class BridgeScenario {
  readonly sip = new FakeSip();
  readonly media = new FakeMedia();
  readonly wa = new FakeWhatsApp();
  readonly ended: EndedCallRecord[] = [];
  readonly bridge: Bridge;
  private n = 0;

  constructor(over: { calls?: Record<string, unknown>; media?: Record<string, unknown> } = {}) {
    const config = buildConfig(
      {
        routing: { default: 'sip:queue@pbx.test' },
        outbound: { enabled: true, allowFrom: ['127.0.0.0/24'], phoneNumberId: PNID },
        calls: { ringTimeoutSec: 30, ...over.calls },
        ...(over.media ? { media: over.media } : {}),
      },
      {},
    );
    this.bridge = new Bridge({ config, sip: this.sip, media: this.media, whatsapp: this.wa, log: silentLogger(), fromDomain: 'bridge.test' });
    this.bridge.onCallEnded((r) => this.ended.push(r));
  }

  /** A WhatsApp user calls; the PBX answers. Resolves with the PBX leg once the call is active. */
  async inboundActive(callId = `wacid.in-${++this.n}`): Promise<{ callId: string; invite: FakeOutgoing; dialog: FakeDialog }> {
    const invited = this.sip.next();
    this.bridge.handleEvents([userCall(callId)]);
    const invite = await invited;
    const dialog = invite.answer();
    await until(() => this.bridge.call(callId)?.state === 'active', 'the inbound call to be active');
    return { callId, invite, dialog };
  }

  /** A WhatsApp user calls; the PBX rings (INVITE pending). */
  async inboundRinging(callId = `wacid.in-${++this.n}`): Promise<{ callId: string; invite: FakeOutgoing }> {
    const invited = this.sip.next();
    this.bridge.handleEvents([userCall(callId)]);
    const invite = await invited;
    invite.progress(180);
    return { callId, invite };
  }

  /** An agent dials; WhatsApp answers. Resolves once the call is active. */
  async outboundActive(): Promise<{ invite: FakeIncomingInvite; waCallId: string; dialog: FakeDialog }> {
    const { invite, waCallId } = await this.outboundRinging();
    this.bridge.handleEvents([waAnswer(waCallId)]);
    await until(() => this.bridge.outboundCall(invite.callId)?.state === 'active', 'the outbound call to be active');
    return { invite, waCallId, dialog: invite.dialog! };
  }

  /** An agent dials; `connect` was sent (WhatsApp rings). */
  async outboundRinging(): Promise<{ invite: FakeIncomingInvite; waCallId: string }> {
    const invite = new FakeIncomingInvite('sip:+5511987654321@bridge.test');
    const connected = this.wa.waitFor('connect');
    deliverInvite(this.sip, invite);
    await connected;
    const waCallId = this.wa.actions.filter((a) => a.action === 'connect').at(-1)!.callId;
    await until(() => this.bridge.outboundCall(invite.callId)?.waCallId === waCallId, 'the connect response');
    return { invite, waCallId };
  }

  async waitEnded(n: number, why = `${n} call(s) to end`, timeoutMs = 5000): Promise<EndedCallRecord[]> {
    await until(() => this.ended.length >= n, why, timeoutMs);
    return this.ended;
  }
}

/** Wait for `cond`, polling each event-loop turn; fails after `timeoutMs` naming what was awaited. */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
