import { beforeEach, describe, expect, it, vi, afterEach } from 'vitest';
import { Bridge, type EndedCallRecord } from '../../src/bridge/bridge.js';
import { buildConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/util/log.js';
import sipLib from 'sip';
import { headerText } from '../../src/sip/headers.js';
import { GraphApiError, type WaConnectEvent, type WaStatusEvent, type WaTerminateEvent } from '../../src/whatsapp/types.js';
import { deliverInvite, FakeIncomingInvite, FakeMedia, FakeSip, FakeWhatsApp } from '../support/fakes.js';

/** Scenario tests of outbound calls (agent dials a WhatsApp user) with in-process fakes. */

const PNID = '436666719526789';
let sip: FakeSip;
let media: FakeMedia;
let wa: FakeWhatsApp;
let bridge: Bridge;
let ended: EndedCallRecord[];

function make(outbound: Record<string, unknown> = {}) {
  const config = buildConfig({
    outbound: { enabled: true, allowFrom: ['127.0.0.0/24'], dialPrefix: '9', phoneNumberId: PNID, ringTimeoutSec: 30, ...outbound },
  }, { SIP_INBOUND_PASSWORD: 'pw' });
  bridge = new Bridge({ config, sip, media, whatsapp: wa, log: silentLogger(), fromDomain: 'bridge.test' });
  bridge.onCallEnded((r) => ended.push(r));
}
const flush = async (n = 6) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};
const base = { phoneNumberId: PNID, businessNumber: '13175551399', timestamp: 1 };
const status = (callId: string, s: string): WaStatusEvent => ({ kind: 'status', callId, status: s, ...base });
const answer = (callId: string, opaque?: string): WaConnectEvent => ({
  kind: 'connect', callId, direction: 'BUSINESS_INITIATED', userWaId: '5511987654321', sdpType: 'answer', sdp: 'wa-answer', ...base,
  ...(opaque ? { bizOpaqueCallbackData: opaque } : {}),
});
const terminate = (callId: string, errors: number[] = []): WaTerminateEvent => ({
  kind: 'terminate', callId, status: errors.length ? 'FAILED' : 'COMPLETED', errors: errors.map((code) => ({ code })), ...base,
});

async function dial(uri = 'sip:9+55 11 98765-4321@bridge.test', inv?: FakeIncomingInvite) {
  const i = inv ?? new FakeIncomingInvite(uri);
  deliverInvite(sip, i);
  await flush();
  return i;
}

beforeEach(() => {
  sip = new FakeSip();
  media = new FakeMedia();
  wa = new FakeWhatsApp();
  ended = [];
  make();
});
afterEach(() => vi.useRealTimers());

describe('outbound call', () => {
  it('answered: connect with the WebRTC offer to the normalised number, 180 on RINGING, 200 with the plain answer on the connect webhook', async () => {
    const inv = await dial();
    const connect = wa.actions.find((a) => a.action === 'connect')!;
    expect(connect.to).toBe('5511987654321');
    expect(connect.sdp).toMatch(/^webrtc-offer/);
    expect(connect.opaque).toMatch(/^wa-sip-bridge:/);
    bridge.handleEvents([status(connect.callId, 'RINGING')]);
    expect(inv.statuses()).toEqual([180]);
    bridge.handleEvents([answer(connect.callId)]);
    await flush();
    expect(inv.statuses()).toEqual([180, 200]);
    expect(inv.responses[1]!.sdp).toContain('s=answer-for-pbx');
    expect(media.sessions.get(`out-${inv.callId}`)!.answers).toEqual(['wa-answer']);
    expect(bridge.outboundCall(inv.callId)!.state).toBe('active');
    // No accept for business-initiated calls.
    expect(wa.names()).toEqual(['connect']);
  });

  it('a webhook that overtakes the connect response finds the call by biz_opaque_callback_data', async () => {
    const inv = new FakeIncomingInvite('sip:9+5511987654321@bridge.test');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const orig = wa.connect.bind(wa);
    wa.connect = async (...args) => {
      const res = await orig(...args);
      await gate;
      return res;
    };
    deliverInvite(sip, inv);
    await flush();
    const c = wa.actions.find((a) => a.action === 'connect')!;
    bridge.handleEvents([answer(c.callId, c.opaque)]);
    await flush();
    expect(inv.statuses()).toEqual([200]);
    release();
    await flush();
    expect(bridge.outboundCall(inv.callId)!.waCallId).toBe(c.callId);
  });

  it('declined (REJECTED) → 603 Decline', async () => {
    const inv = await dial();
    const id = wa.actions[0]!.callId;
    bridge.handleEvents([status(id, 'RINGING'), status(id, 'REJECTED'), terminate(id)]);
    await flush();
    expect(inv.statuses()).toEqual([180, 603]);
    expect(inv.responses[1]!.headers!.Warning).toContain('declined');
    expect(ended[0]).toMatchObject({ direction: 'outbound', label: 'user-declined', sip: 603, whatsapp: 'none' });
  });

  it('no permission → 403 naming the WhatsApp cause, no connect, permission request sent when configured', async () => {
    make({ requestPermission: { enabled: true, bodyText: 'May we call you?' } });
    wa.permission = { status: 'no_permission', actions: [], canStartCall: false, canRequestPermission: true };
    const inv = await dial();
    expect(inv.statuses()).toEqual([403]);
    expect(inv.responses[0]!.headers!.Warning).toMatch(/138006.*permission request was sent/);
    expect(inv.responses[0]!.headers!.Reason).toMatch(/^SIP;cause=403;text=/);
    expect(wa.names()).toEqual(['permission_request']);
  });

  it('connect refused with 138006 despite a cached permission → 403 and the cache is dropped', async () => {
    wa.failOn.connect = new GraphApiError('(#138006) No approved call permission', 400, 138006);
    const inv = await dial();
    expect(inv.statuses()).toEqual([403]);
    expect(inv.responses[0]!.headers!.Warning).toContain('138006');
    delete wa.failOn.connect;
    await dial();
    expect(wa.permissionLookups).toBe(2);
  });

  it.each([
    [138013, 403],
    [138002, 503],
    [138001, 404],
    [0, 503],
  ])('connect error %i → SIP %i', async (code, sipStatus) => {
    wa.failOn.connect = new GraphApiError('x', 400, code);
    const inv = await dial();
    expect(inv.statuses()).toEqual([sipStatus]);
    expect(wa.names()).toEqual(['connect']);
  });

  it('terminate FAILED before answer maps its error code (138021 media timeout → 480)', async () => {
    const inv = await dial();
    bridge.handleEvents([terminate(wa.actions[0]!.callId, [138021])]);
    await flush();
    expect(inv.statuses()).toEqual([480]);
  });

  it('the PBX cancels while WhatsApp rings → terminate', async () => {
    const inv = await dial();
    const id = wa.actions[0]!.callId;
    bridge.handleEvents([status(id, 'RINGING')]);
    inv.cancel();
    await flush();
    expect(wa.names()).toEqual(['connect', 'terminate']);
    expect(ended[0]!.label).toBe('agent-cancelled');
  });

  it('PBX BYE after answer → terminate; WhatsApp hangs up after answer → BYE', async () => {
    const a = await dial();
    bridge.handleEvents([answer(wa.actions[0]!.callId)]);
    await flush();
    a.dialog!.remoteBye();
    await flush();
    expect(wa.names()).toEqual(['connect', 'terminate']);

    const b = await dial();
    const idB = wa.actions.filter((x) => x.action === 'connect')[1]!.callId;
    bridge.handleEvents([answer(idB)]);
    await flush();
    bridge.handleEvents([terminate(idB)]);
    await flush();
    expect(b.dialog!.byes).toBe(1);
  });

  it('PBX hold without audio (re-INVITE a=inactive) and resume reach the media engine', async () => {
    const inv = await dial();
    bridge.handleEvents([answer(wa.actions[0]!.callId)]);
    await flush();
    const rec = media.sessions.get(`out-${inv.callId}`)!;
    const offer = inv.sdp!;
    inv.dialog!.emit('reinvite', offer.replace('a=sendrecv', 'a=inactive'));
    inv.dialog!.emit('reinvite', offer);
    await flush();
    expect(rec.pbxSending).toEqual([false, true]);
    expect(wa.names()).toEqual(['connect']);
  });

  it('no answer within the ring timeout → terminate + 480', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const inv = await dial();
    await vi.advanceTimersByTimeAsync(30_001);
    await flush();
    expect(inv.statuses()).toEqual([480]);
    expect(wa.names()).toEqual(['connect', 'terminate']);
  });

  it.each([
    ['sip:9abc@bridge.test', 'not a phone number'],
    ['sip:9123@bridge.test', 'too short'],
    ['sip:5511987654321@bridge.test', 'dial prefix'],
    ['sip:9011987654321@bridge.test', 'no country code'],
    ['sip:bridge.test', 'no user part'],
  ])('%s → 484 Address Incomplete (%s)', async (uri, why) => {
    const inv = await dial(uri);
    expect(inv.statuses()).toEqual([484]);
    expect(inv.responses[0]!.headers!.Warning).toContain(why === 'no user part' ? 'no user part' : why);
    expect(wa.actions).toEqual([]);
  });

  it('a source outside the allow-list → 403, nothing dialled', async () => {
    const inv = await dial(undefined, new FakeIncomingInvite('sip:9+5511987654321@bridge.test', undefined, { address: '203.0.113.9', port: 5060, transport: 'udp' }));
    expect(inv.statuses()).toEqual([403]);
    expect(wa.actions).toEqual([]);
    expect(wa.permissionLookups).toBe(0);
  });

  it('outbound disabled → 403', async () => {
    make({ enabled: false });
    const inv = await dial();
    expect(inv.statuses()).toEqual([403]);
  });

  it('digest: challenge with 401, accept the right password, refuse a wrong one', async () => {
    make({ allowFrom: [], auth: { username: 'pbx', realm: 'wa' } });
    const first = await dial();
    expect(first.statuses()).toEqual([401]);
    const challenge = first.responses[0]!.headers!['WWW-Authenticate']!;
    const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!;
    const { createHash } = await import('node:crypto');
    const md5 = (s: string) => createHash('md5').update(s).digest('hex');
    const uri = 'sip:9+5511987654321@bridge.test';
    const authz = (pw: string) => {
      const ha1 = md5(`pbx:wa:${pw}`);
      const ha2 = md5(`INVITE:${uri}`);
      const header = `Digest username="pbx", realm="wa", nonce="${nonce}", uri="${uri}", qop=auth, nc=00000001, cnonce="c", response="${md5(`${ha1}:${nonce}:00000001:c:auth:${ha2}`)}", algorithm=MD5`;
      // As the real stack hands it over: parsed by `sip`, turned back into text by headerText.
      return headerText(sipLib.parse(`INVITE ${uri} SIP/2.0\r\nAuthorization: ${header}\r\n\r\n`)!, 'authorization')!;
    };
    const good = await dial(undefined, new FakeIncomingInvite(uri, undefined, undefined, undefined, { authorization: authz('pw') }));
    expect(good.statuses()).not.toContain(401);
    expect(wa.names()).toContain('connect');
    const bad = await dial(undefined, new FakeIncomingInvite(uri, undefined, undefined, undefined, { authorization: authz('guess') }));
    expect(bad.statuses()).toEqual([403]);
  });

  it('the permission reply webhook updates the cache: a later call goes through without a look-up', async () => {
    wa.permission = { status: 'no_permission', actions: [], canStartCall: false, canRequestPermission: false };
    const refused = await dial();
    expect(refused.statuses()).toEqual([403]);
    bridge.handleEvents([{ kind: 'permission_reply', userWaId: '5511987654321', response: 'accept', isPermanent: true, ...base }]);
    const lookups = wa.permissionLookups;
    await dial();
    expect(wa.permissionLookups).toBe(lookups);
    expect(wa.names()).toContain('connect');
  });
});
