import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Bridge, type EndedCallRecord } from '../../src/bridge/bridge.js';
import { buildConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/util/log.js';
import type { WaConnectEvent, WaTerminateEvent } from '../../src/whatsapp/types.js';
import { GraphApiError } from '../../src/whatsapp/types.js';
import { FakeMedia, FakeSip, FakeWhatsApp, plainSdp } from '../support/fakes.js';

/**
 * Scenario tests of the call logic with in-process fakes: every race and failure path, fast and
 * deterministic. The same flows run against real rtpengine/SIPp/baresip in test/e2e.
 */

const connect = (id = 'wacid.A', extra: Partial<WaConnectEvent> = {}): WaConnectEvent => ({
  kind: 'connect',
  callId: id,
  phoneNumberId: '436666719526789',
  businessNumber: '13175551399',
  timestamp: 1764000000,
  direction: 'USER_INITIATED',
  userWaId: '5511987654321',
  userName: 'Ana "A" Souza',
  sdpType: 'offer',
  sdp: 'wa-offer',
  ...extra,
});
const terminate = (id = 'wacid.A'): WaTerminateEvent => ({
  kind: 'terminate',
  callId: id,
  phoneNumberId: '436666719526789',
  businessNumber: '13175551399',
  timestamp: 1764000100,
  status: 'COMPLETED',
  errors: [],
});

let sip: FakeSip;
let media: FakeMedia;
let wa: FakeWhatsApp;
let bridge: Bridge;
let ended: EndedCallRecord[];

function makeBridge(over: Record<string, unknown> = {}) {
  const config = buildConfig({ routing: { default: 'sip:queue@pbx.test' }, calls: { ringTimeoutSec: 30 }, ...over });
  bridge = new Bridge({ config, sip, media, whatsapp: wa, log: silentLogger(), fromDomain: 'bridge.test' });
  bridge.onCallEnded((r) => ended.push(r));
}

const settle = () => new Promise((r) => setImmediate(r));
async function flush(n = 5) {
  for (let i = 0; i < n; i++) await settle();
}

beforeEach(() => {
  sip = new FakeSip();
  media = new FakeMedia();
  wa = new FakeWhatsApp();
  ended = [];
  makeBridge();
});
afterEach(() => vi.useRealTimers());

describe('inbound call', () => {
  it('answered call: INVITE with caller identity and X-WA headers, pre_accept on 183, accept on 200, same SDP', async () => {
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    const inv = await invited;
    expect(inv.req.uri).toBe('sip:queue@pbx.test');
    expect(inv.req.from).toEqual({ uri: 'sip:+5511987654321@bridge.test', displayName: 'Ana "A" Souza' });
    expect(inv.req.sdp).toBe(plainSdp('wa-offer'));
    expect(inv.req.headers).toEqual({
      'X-WA-Call-Id': 'wacid.A',
      'X-WA-Business-Number': '13175551399',
      'X-WA-Phone-Number-Id': '436666719526789',
    });
    inv.progress(180);
    inv.progress(183, 'pbx-early-sdp');
    await flush();
    expect(wa.names()).toEqual(['pre_accept']);
    expect(bridge.call('wacid.A')!.state).toBe('early');
    inv.answer('pbx-early-sdp');
    await flush();
    expect(wa.names()).toEqual(['pre_accept', 'accept']);
    expect(wa.actions[0]!.sdp).toBe(wa.actions[1]!.sdp);
    expect(bridge.call('wacid.A')!.state).toBe('active');
  });

  it('200 OK without 183: pre_accept then accept, in that order', async () => {
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    (await invited).answer();
    await flush();
    expect(wa.names()).toEqual(['pre_accept', 'accept']);
  });

  it('PBX BYE → terminate on WhatsApp, media released', async () => {
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    const dialog = (await invited).answer();
    await flush();
    dialog.remoteBye();
    await flush();
    expect(wa.names()).toEqual(['pre_accept', 'accept', 'terminate']);
    expect(await media.listSessions()).toEqual([]);
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ direction: 'inbound', waCallId: 'wacid.A', sipCallId: 'sip-call-1', label: 'agent-hung-up', whatsapp: 'terminate', sip: 'none' });
    // The call record's facts come with it: who called, where it was routed, when it was answered.
    expect(ended[0]!.route).toBe('default');
    expect(ended[0]!.times!.answeredAt).toBeGreaterThanOrEqual(ended[0]!.times!.receivedAt);
    expect(ended[0]!.times!.endedAt).toBeGreaterThanOrEqual(ended[0]!.times!.answeredAt!);
    expect(bridge.activeCalls).toBe(0);
  });

  it('PBX hold without audio (re-INVITE a=inactive) → the media engine keeps WhatsApp fed; resume → it stops', async () => {
    const sdp = (dir: string) => ['v=0', 'o=pbx 1 2 IN IP4 10.0.0.2', 's=-', 'c=IN IP4 10.0.0.2', 't=0 0', 'm=audio 5000 RTP/AVP 0', `a=${dir}`, ''].join('\r\n');
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    const dialog = (await invited).answer(sdp('sendrecv'));
    await flush();
    const rec = media.sessions.get('wacid.A')!;
    expect(rec.pbxSending).toEqual([]);
    dialog.emit('reinvite', sdp('sendonly')); // music on hold: the PBX still sends
    dialog.emit('reinvite', sdp('inactive'));
    dialog.emit('reinvite', sdp('inactive')); // a refresh of the same hold changes nothing
    dialog.emit('reinvite', undefined); // offerless: direction unknown, unchanged
    dialog.emit('reinvite', sdp('sendrecv'));
    await flush();
    expect(rec.pbxSending).toEqual([false, true]);
    expect(wa.names()).toEqual(['pre_accept', 'accept']);
  });

  it('WhatsApp terminate after answer → BYE to the PBX, nothing more to WhatsApp', async () => {
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    const inv = await invited;
    const dialog = inv.answer();
    await flush();
    bridge.handleEvents([terminate()]);
    await flush();
    expect(dialog.byes).toBe(1);
    expect(wa.names()).toEqual(['pre_accept', 'accept']);
    expect(ended[0]!.label).toBe('caller-hung-up');
  });

  it('WhatsApp terminate while ringing → CANCEL', async () => {
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    const inv = await invited;
    inv.progress(180);
    bridge.handleEvents([terminate()]);
    await flush();
    expect(inv.cancelled).toBe(true);
    expect(wa.names()).toEqual([]);
    expect(ended[0]).toMatchObject({ label: 'caller-hung-up', sip: 'cancel', whatsapp: 'none' });
  });

  it.each([486, 603, 404, 480, 503])('PBX %i → reject on WhatsApp', async (status) => {
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    (await invited).fail(status);
    await flush();
    expect(wa.names()).toEqual(['reject']);
    expect(await media.listSessions()).toEqual([]);
  });

  it('ring timeout → CANCEL to the PBX and reject to WhatsApp', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    const inv = await invited;
    inv.progress(180);
    await vi.advanceTimersByTimeAsync(30_001);
    await flush();
    expect(inv.cancelled).toBe(true);
    expect(wa.names()).toEqual(['reject']);
    expect(ended[0]!.label).toBe('ring-timeout');
  });

  it('Graph error on accept → BYE to the PBX', async () => {
    wa.failOn.accept = new GraphApiError('(#138007) Connect timeout', 400, 138007, undefined, 'trace');
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    const dialog = (await invited).answer();
    await flush();
    expect(dialog.byes).toBe(1);
    expect(ended[0]!.label).toBe('whatsapp-accept-failed');
    // accept failed: WhatsApp is told with terminate (accept was sent; the call may be live).
    expect(wa.names()).toEqual(['pre_accept', 'accept', 'terminate']);
  });

  it('media engine down → reject on WhatsApp, no INVITE', async () => {
    media.failOffer = true;
    bridge.handleEvents([connect()]);
    await flush();
    expect(sip.invites).toEqual([]);
    expect(wa.names()).toEqual(['reject']);
    expect(ended[0]!.label).toBe('media-failed');
  });

  it('duplicate connect webhooks create one call and one INVITE', async () => {
    bridge.handleEvents([connect(), connect()]);
    bridge.handleEvents([connect()]);
    await flush();
    expect(sip.invites.length).toBe(1);
  });

  it('terminate before connect: the late connect is dropped, nothing rings', async () => {
    bridge.handleEvents([terminate()]);
    bridge.handleEvents([connect()]);
    await flush();
    expect(sip.invites.length).toBe(0);
    expect(wa.names()).toEqual([]);
  });

  it('one call failing does not disturb another', async () => {
    const first = sip.next();
    bridge.handleEvents([connect('wacid.1')]);
    const a = await first;
    const second = sip.next();
    bridge.handleEvents([connect('wacid.2')]);
    const b = await second;
    a.fail(486);
    b.answer();
    await flush();
    expect(bridge.call('wacid.2')!.state).toBe('active');
    expect(bridge.call('wacid.1')).toBeUndefined();
  });

  it('shutdown ends every call on both sides', async () => {
    const invited = sip.next();
    bridge.handleEvents([connect()]);
    const dialog = (await invited).answer();
    await flush();
    await bridge.close();
    expect(dialog.byes).toBe(1);
    expect(wa.names()).toEqual(['pre_accept', 'accept', 'terminate']);
  });

  it('ignores webhooks for phone number ids it does not serve', async () => {
    makeBridge({ whatsapp: { provider: 'meta', phoneNumberIds: ['other'] } });
    bridge.handleEvents([connect()]);
    await flush();
    expect(sip.invites.length).toBe(0);
  });
});
