import { afterEach, describe, expect, it } from 'vitest';
import { deliverInvite, FakeDialog, FakeIncomingInvite } from '../support/fakes.js';
import { BridgeScenario, until, waTerminate } from '../support/bridge-scenario.js';

/**
 * Watchdogs: a media failure the engine reports on its own, the maximum call duration, a media
 * operation that never settles, a PBX that never answers BYE. Each ends both legs with the cause
 * named on each side (WhatsApp action, SIP Reason header, the call record).
 */
afterEach(() => {
  FakeDialog.byeNeverAnswered = false;
});

describe('media failure watchdog', () => {
  it('WhatsApp media stops on an active inbound call: terminate on WhatsApp, BYE with a Reason to the PBX', async () => {
    const s = new BridgeScenario();
    const { callId, dialog } = await s.inboundActive();
    s.media.fail(callId, { kind: 'whatsapp-media-timeout', detail: 'no RTP from WhatsApp for 20 s' });
    const [rec] = await s.waitEnded(1);
    expect(rec).toMatchObject({ direction: 'inbound', label: 'whatsapp-media-timeout', whatsapp: 'terminate', sip: 'bye' });
    expect(s.wa.names()).toEqual(['pre_accept', 'accept', 'terminate']);
    expect(dialog.byeReasons).toEqual(['Q.850;cause=41;text="whatsapp-media-timeout"']);
    expect(s.media.sessions.get(callId)!.closed).toBe(true);
  });

  it('WebRTC fails while the PBX rings: reject on WhatsApp, CANCEL with a Reason', async () => {
    const s = new BridgeScenario();
    const { callId, invite } = await s.inboundRinging();
    s.media.fail(callId, { kind: 'webrtc-failed', detail: 'DTLS failed' });
    const [rec] = await s.waitEnded(1);
    expect(rec).toMatchObject({ label: 'whatsapp-webrtc-failed', whatsapp: 'reject', sip: 'cancel' });
    expect(invite.cancelled).toBe(true);
    expect(invite.cancelReason).toBe('Q.850;cause=41;text="whatsapp-webrtc-failed"');
  });

  it('the engine dies under an active outbound call: terminate on WhatsApp, BYE with a Reason to the agent', async () => {
    const s = new BridgeScenario();
    const { invite, waCallId, dialog } = await s.outboundActive();
    s.media.fail(`out-${invite.callId}`, { kind: 'engine-dead', detail: 'rtpengine 127.0.0.1:22222 stopped answering' });
    const [rec] = await s.waitEnded(1);
    expect(rec).toMatchObject({ direction: 'outbound', label: 'media-engine-dead', whatsapp: 'terminate', sip: 'bye' });
    expect(s.wa.actions.at(-1)).toMatchObject({ action: 'terminate', callId: waCallId });
    expect(dialog.byeReasons).toEqual(['Q.850;cause=41;text="media-engine-dead"']);
  });

  it('media fails on an outbound call still ringing: 480 naming the failure, terminate on WhatsApp', async () => {
    const s = new BridgeScenario();
    const { invite, waCallId } = await s.outboundRinging();
    s.media.fail(`out-${invite.callId}`, { kind: 'webrtc-failed', detail: 'ICE failed' });
    await s.waitEnded(1);
    expect(invite.statuses()).toEqual([480]);
    expect(invite.responses[0]!.headers!.Warning).toBe('399 wa-sip-bridge "media: ICE failed"');
    expect(s.wa.actions.at(-1)).toMatchObject({ action: 'terminate', callId: waCallId });
  });

  it('a second failure report, or one after the call ended, changes nothing', async () => {
    const s = new BridgeScenario();
    const { callId, dialog } = await s.inboundActive();
    s.media.fail(callId, { kind: 'webrtc-failed', detail: 'closed' });
    s.media.fail(callId, { kind: 'engine-dead', detail: 'x' });
    await s.waitEnded(1);
    s.media.fail(callId, { kind: 'engine-dead', detail: 'late' });
    await s.bridge.close();
    expect(s.ended.map((r) => r.label)).toEqual(['whatsapp-webrtc-failed']);
    expect(s.wa.names().filter((n) => n === 'terminate')).toHaveLength(1);
    expect(dialog.byes).toBe(1);
  });
});

describe('maximum call duration', () => {
  it('ends both legs of an active call once calls.maxDurationSec has passed, not before', async () => {
    const s = new BridgeScenario({ calls: { maxDurationSec: 0.3 } });
    const t0 = performance.now();
    const { dialog } = await s.inboundActive();
    const [rec] = await s.waitEnded(1, 'the maximum duration to end the call');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(299);
    expect(rec).toMatchObject({ label: 'max-duration', whatsapp: 'terminate', sip: 'bye' });
    expect(dialog.byeReasons).toEqual(['Q.850;cause=102;text="max-duration"']);
  });

  it('outbound too: terminate on WhatsApp, BYE to the agent', async () => {
    const s = new BridgeScenario({ calls: { maxDurationSec: 0.3 } });
    const { dialog, waCallId } = await s.outboundActive();
    const [rec] = await s.waitEnded(1, 'the maximum duration to end the call');
    expect(rec).toMatchObject({ label: 'max-duration', whatsapp: 'terminate', sip: 'bye' });
    expect(s.wa.actions.at(-1)).toMatchObject({ action: 'terminate', callId: waCallId });
    expect(dialog.byes).toBe(1);
  });
});

describe('teardown always finishes', () => {
  it('a media answer that never settles is abandoned after calls.mediaOpTimeoutSec: reject + CANCEL', async () => {
    const s = new BridgeScenario({ calls: { mediaOpTimeoutSec: 0.2 } });
    s.media.hang.add('answerFromPbx');
    const { invite } = await s.inboundRinging();
    invite.progress(183, 'pbx-early-sdp');
    const [rec] = await s.waitEnded(1, 'the media timeout to end the call');
    expect(rec).toMatchObject({ label: 'media-failed', whatsapp: 'reject', sip: 'cancel' });
    expect(invite.cancelled).toBe(true);
  });

  it('a media session whose close never settles does not hold the teardown', async () => {
    const s = new BridgeScenario({ calls: { mediaOpTimeoutSec: 0.2 } });
    s.media.hang.add('close');
    const { callId, dialog } = await s.inboundActive();
    s.bridge.handleEvents([waTerminate(callId)]);
    const [rec] = await s.waitEnded(1);
    expect(rec).toMatchObject({ label: 'caller-hung-up', sip: 'bye' });
    expect(dialog.byes).toBe(1);
    expect(s.bridge.activeCalls).toBe(0);
  });

  it('a PBX that never answers BYE: WhatsApp gets terminate at once and the call is released', async () => {
    FakeDialog.byeNeverAnswered = true;
    const s = new BridgeScenario();
    const { callId, dialog } = await s.inboundActive();
    s.media.fail(callId, { kind: 'whatsapp-media-timeout', detail: 'silence' });
    // Bounded wait: the call record comes once WhatsApp's terminate returned; the BYE is still unanswered.
    await s.waitEnded(1, 'the call to end without the BYE answered', 1000);
    expect(s.wa.names().at(-1)).toBe('terminate');
    expect(dialog.byes).toBe(1);
    expect(s.media.sessions.get(callId)!.closed).toBe(true);
  });

  it('stopping with a PBX that never answers BYE: every WhatsApp leg is terminated, the stop waits at most its grace', async () => {
    FakeDialog.byeNeverAnswered = true;
    const s = new BridgeScenario();
    await s.inboundActive();
    await s.outboundActive();
    const t0 = performance.now();
    await s.bridge.close();
    expect(performance.now() - t0).toBeLessThan(4000); // BYE grace 2 s, not Timer F's 32 s
    expect(s.wa.names().filter((n) => n === 'terminate')).toHaveLength(2);
    expect(s.ended.map((r) => r.label)).toEqual(['shutdown', 'shutdown']);
  });
});

describe('bounded state', () => {
  it('an outbound call id that arrives after the call ended (connect returned late) is not kept', async () => {
    const s = new BridgeScenario();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const orig = s.wa.connect.bind(s.wa);
    s.wa.connect = async (...args) => {
      const res = await orig(...args);
      await gate;
      return res;
    };
    const inv = new FakeIncomingInvite('sip:+5511987654321@bridge.test');
    const connecting = s.wa.waitFor('connect');
    deliverInvite(s.sip, inv);
    await connecting;
    inv.cancel();
    await s.waitEnded(1);
    release();
    await until(() => s.wa.names().includes('terminate'), 'the late call id to be terminated');
    expect(s.bridge.status().maps).toMatchObject({ outbound: 0, outboundByWaId: 0, inbound: 0 });
  });
});
