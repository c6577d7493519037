import { describe, expect, it } from 'vitest';
import { Bridge, type EndedCallRecord } from '../../src/bridge/bridge.js';
import { parseClickRequest } from '../../src/bridge/click-calls.js';
import type { ClickPlaced } from '../../src/bridge/click-call.js';
import { buildConfig } from '../../src/config/load.js';
import { planClickTeardown, type ClickEndCause } from '../../src/bridge/failure-map.js';
import { MediaError, type MediaEngine } from '../../src/media/types.js';
import { silentLogger } from '../../src/util/log.js';
import { GraphApiError, type WaStatusEvent } from '../../src/whatsapp/types.js';
import { FakeMedia, FakeSip, FakeWhatsApp, type FakeOutgoing } from '../support/fakes.js';
import { PNID, until, waAnswer, waTerminate } from '../support/bridge-scenario.js';

const USER = '5511987654321';
const status = (callId: string, s: string, opaque?: string): WaStatusEvent => ({
  kind: 'status', callId, status: s, phoneNumberId: PNID, businessNumber: '13175551399', timestamp: 1764000000, ...(opaque ? { bizOpaqueCallbackData: opaque } : {}),
});

function setup(over: { ringSec?: number; pbxRingSec?: number; maxConcurrent?: number; media?: MediaEngine } = {}) {
  const config = buildConfig(
    {
      routing: { default: 'sip:queue@pbx.test:5070' },
      whatsapp: { phoneNumberIds: [PNID] },
      calls: { ringTimeoutSec: over.pbxRingSec ?? 30, ...(over.maxConcurrent !== undefined ? { maxConcurrent: over.maxConcurrent } : {}) },
      ops: { admin: { clickToCallRingSec: over.ringSec ?? 30 } },
    },
    {},
  );
  const sip = new FakeSip();
  const fakeMedia = new FakeMedia();
  const wa = new FakeWhatsApp();
  const bridge = new Bridge({ config, sip, media: over.media ?? fakeMedia, whatsapp: wa, log: silentLogger(), fromDomain: 'bridge.test' });
  const ended: EndedCallRecord[] = [];
  bridge.onCallEnded((r) => ended.push(r));
  const connects = () => wa.actions.filter((a) => a.action === 'connect');
  return { bridge, sip, wa, media: fakeMedia, ended, connects };
}

type Setup = ReturnType<typeof setup>;

/** Placed and ringing on WhatsApp. */
async function placed(s: Setup): Promise<{ id: string; waCallId: string; opaque: string }> {
  const r = await s.bridge.placeCall({ to: USER, extension: '2001' }, 'crm');
  if (!r.ok) throw new Error(`not placed: ${r.error}`);
  const opaque = s.connects().at(-1)!.opaque!;
  s.bridge.handleEvents([status(r.waCallId, 'RINGING', opaque)]);
  return { id: r.id, waCallId: r.waCallId, opaque };
}

/** The user answered: the extension is INVITEd. */
async function answered(s: Setup, waCallId: string): Promise<FakeOutgoing> {
  const invited = s.sip.next();
  s.bridge.handleEvents([waAnswer(waCallId)]);
  return invited;
}

describe('click to call: request validation', () => {
  const cfg = buildConfig({ routing: { default: 'sip:queue@pbx.test:5070;transport=tcp' }, whatsapp: { phoneNumberIds: [PNID] } }, {});
  const parse = (body: unknown) => parseClickRequest(body, cfg, cfg.routing);

  it('takes digits (a leading + tolerated), a SIP URI or an extension on the routing default host', () => {
    expect(parse({ to: '+5511987654321', extension: '2001' })).toEqual({ ok: true, request: { to: USER, extension: 'sip:2001@pbx.test:5070', phoneNumberId: PNID } });
    expect(parse({ to: USER, extension: '*72#' })).toMatchObject({ ok: true, request: { extension: 'sip:*72%23@pbx.test:5070' } });
    expect(parse({ to: USER, extension: 'sip:sales@10.0.0.5:5080;transport=tcp', phoneNumberId: PNID })).toMatchObject({ ok: true, request: { extension: 'sip:sales@10.0.0.5:5080;transport=tcp' } });
  });

  it.each([
    [{ to: '55 11 98765', extension: '2001' }, '"to"'],
    [{ to: '0511987654321', extension: '2001' }, '"to"'],
    [{ to: '123', extension: '2001' }, '"to"'],
    [{ to: 5511987654321, extension: '2001' }, '"to"'],
    [{ to: USER, extension: 'sip:a@b\r\nX-Evil: 1' }, '"extension"'],
    [{ to: USER, extension: 'sip:"a"@b' }, '"extension"'],
    [{ to: USER, extension: 'http://x' }, '"extension"'],
    [{ to: USER, extension: 'a'.repeat(33) }, '"extension"'],
    [{ to: USER, extension: `sip:${'a'.repeat(260)}@b` }, '"extension"'],
    [{ to: USER, extension: '2001', phoneNumberId: '999' }, 'not a business number'],
    [{ to: USER, extension: '2001', phoneNumberId: 'abc' }, '"phoneNumberId"'],
    [{ to: USER, extension: '2001', admin: true }, 'unknown field'],
    [undefined, 'JSON object'],
    [[USER], 'JSON object'],
  ])('refuses %j', (body, error) => {
    const r = parse(body);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toContain(error);
  });
});

describe('click to call: the flow on fakes', () => {
  it('calls the WhatsApp user first, rings the extension only once they answered, and bridges both legs', async () => {
    const s = setup();
    const { id, waCallId, opaque } = await placed(s);
    const connect = s.connects()[0]!;
    expect(connect).toMatchObject({ to: USER, sdp: 'webrtc-offer(click)' });
    expect(opaque).toBe(`wa-sip-bridge:${id}`);
    expect(s.sip.invites).toHaveLength(0); // nobody rings on the PBX before the user answers
    const invite = await answered(s, waCallId);
    expect(invite.req.uri).toBe('sip:2001@pbx.test:5070');
    expect(invite.req.from.uri).toBe(`sip:+${USER}@bridge.test`);
    expect(invite.req.sdp).toContain('s=offer-for-pbx');
    expect(invite.req.headers).toMatchObject({ 'X-WA-Call-Id': waCallId, 'X-WA-Phone-Number-Id': PNID, 'X-WA-Click-To-Call': 'crm' });
    const dialog = invite.answer('pbx-answer-sdp');
    await until(() => s.media.sessions.get(id)?.answers.includes('pbx-answer-sdp') === true, 'the extension answer given to the media engine');
    expect(s.media.sessions.get(id)!.answers).toEqual(['wa-answer', 'pbx-answer-sdp']);
    expect(s.bridge.activeCalls).toBe(1);
    // The user hangs up: BYE to the extension, nothing more to WhatsApp.
    s.bridge.handleEvents([waTerminate(waCallId)]);
    await until(() => s.ended.length === 1, 'the call to end');
    expect(dialog.byes).toBe(1);
    expect(s.wa.names()).toEqual(['connect']);
    expect(s.ended[0]).toMatchObject({ direction: 'click-to-call', key: id, waCallId, sipCallId: invite.callId, label: 'user-hung-up', whatsapp: 'none', sip: 'bye' });
    expect(s.media.sessions.get(id)!.closed).toBe(true);
    expect(s.bridge.activeCalls).toBe(0);
  });

  it('the extension hanging up terminates the WhatsApp call', async () => {
    const s = setup();
    const { waCallId } = await placed(s);
    const dialog = (await answered(s, waCallId)).answer();
    await until(() => s.bridge.status().maps.clickToCall === 1 && s.media.sessions.size === 1 && [...s.media.sessions.values()][0]!.answers.length === 2, 'both legs up');
    dialog.remoteBye();
    await until(() => s.ended.length === 1, 'the call to end');
    expect(s.wa.actions.filter((a) => a.action === 'terminate').map((a) => a.callId)).toEqual([waCallId]);
    expect(s.ended[0]).toMatchObject({ label: 'agent-hung-up', whatsapp: 'terminate', sip: 'none' });
  });

  it('the user declining ends the call without ringing the extension', async () => {
    const s = setup();
    const { waCallId, opaque } = await placed(s);
    s.bridge.handleEvents([status(waCallId, 'REJECTED', opaque)]);
    await until(() => s.ended.length === 1, 'the call to end');
    expect(s.sip.invites).toHaveLength(0);
    expect(s.wa.names()).toEqual(['connect']);
    expect(s.ended[0]).toMatchObject({ label: 'user-declined', whatsapp: 'none', sip: 'none' });
  });

  it('a busy extension terminates the WhatsApp call', async () => {
    const s = setup();
    const { waCallId } = await placed(s);
    (await answered(s, waCallId)).fail(486);
    await until(() => s.ended.length === 1, 'the call to end');
    expect(s.wa.names()).toEqual(['connect', 'terminate']);
    expect(s.ended[0]).toMatchObject({ label: 'pbx-busy', whatsapp: 'terminate', sip: 'none' });
  });

  it('no call permission: 403 and no connect', async () => {
    const s = setup();
    s.wa.permission = { status: 'no_permission', actions: [], canStartCall: false, canRequestPermission: true };
    const r = await s.bridge.placeCall({ to: USER, extension: '2001' }, 'crm');
    expect(r).toMatchObject({ ok: false, status: 403, label: 'wa-no-permission' });
    expect(s.wa.names()).toEqual([]);
  });

  it.each([
    [new GraphApiError('(#138006) No approved call permission', 400, 138006), 403],
    [new GraphApiError('(#131047) Re-engagement', 400, 131047), 502],
  ])('connect refused by Graph (%s): %i, nothing to terminate', async (err, code) => {
    const s = setup();
    s.wa.failOn.connect = err;
    const r = await s.bridge.placeCall({ to: USER, extension: '2001' }, 'crm');
    expect(r).toMatchObject({ ok: false, status: code, label: 'whatsapp-connect-failed' });
    expect(s.wa.names()).toEqual(['connect']);
    await until(() => s.ended.length === 1, 'the call record');
  });

  it('an engine that cannot place such calls: 501', async () => {
    const fake = new FakeMedia();
    const media: MediaEngine = {
      ...fake,
      name: 'rtpengine',
      listSessions: () => fake.listSessions(),
      readiness: () => fake.readiness(),
      close: () => fake.close(),
      createSession: (id) => ({ ...fake.createSession(id), offerToWhatsApp: () => Promise.reject(new MediaError('click-to-call needs the embedded engine', 'rtpengine', 'unsupported')) }),
    };
    const s = setup({ media });
    const r = await s.bridge.placeCall({ to: USER, extension: '2001' }, 'crm');
    expect(r).toMatchObject({ ok: false, status: 501, error: 'click-to-call needs the embedded engine' });
    expect(s.wa.names()).toEqual([]);
  });

  it('the WhatsApp user not answering in time: terminate, the extension never rung', async () => {
    const s = setup({ ringSec: 0.2 });
    await placed(s);
    await until(() => s.ended.length === 1, 'the WhatsApp ring timeout');
    expect(s.wa.names()).toEqual(['connect', 'terminate']);
    expect(s.sip.invites).toHaveLength(0);
    expect(s.ended[0]!.label).toBe('no-answer');
  });

  it('the extension not answering in time: CANCEL and terminate', async () => {
    const s = setup({ pbxRingSec: 0.2 });
    const { waCallId } = await placed(s);
    const invite = await answered(s, waCallId);
    await until(() => s.ended.length === 1, 'the extension ring timeout');
    expect(invite.cancelled).toBe(true);
    expect(invite.cancelReason).toContain('cause=19');
    expect(s.wa.names()).toEqual(['connect', 'terminate']);
    expect(s.ended[0]!.label).toBe('ring-timeout');
  });

  it('an operator hangs up by the call id: both legs end', async () => {
    const s = setup();
    const { id, waCallId } = await placed(s);
    const dialog = (await answered(s, waCallId)).answer();
    await until(() => s.media.sessions.get(id)!.answers.length === 2, 'both legs up');
    expect(await s.bridge.hangup(id, 'ops')).toBe(true);
    expect(dialog.byes).toBe(1);
    expect(s.wa.names()).toEqual(['connect', 'terminate']);
    expect(s.ended[0]!.label).toBe('admin-hangup');
  });

  it('refuses at capacity (429) and while draining (503), with Retry-After', async () => {
    const s = setup({ maxConcurrent: 1 });
    await placed(s);
    const full: ClickPlaced = await s.bridge.placeCall({ to: USER, extension: '2001' }, 'crm');
    expect(full).toMatchObject({ ok: false, status: 429, label: 'refused-over-capacity', retryAfterSec: 5 });
    void s.bridge.drain(60_000);
    const draining = await s.bridge.placeCall({ to: USER, extension: '2001' }, 'crm');
    expect(draining).toMatchObject({ ok: false, status: 503, label: 'refused-draining', retryAfterSec: 30 });
    await s.bridge.close();
    expect(s.wa.names()).toEqual(['connect', 'terminate']);
  });

  it('a connect webhook delivered twice INVITEs the extension once', async () => {
    const s = setup();
    const { id, waCallId } = await placed(s);
    const invite = await answered(s, waCallId);
    s.bridge.handleEvents([{ ...waAnswer(waCallId), sdp: 'wa-answer-again' }]);
    invite.answer();
    // A second INVITE would have gone out (after one media step) before the call got this far.
    await until(() => s.media.sessions.get(id)!.answers.length === 2, 'both legs up');
    expect(s.sip.invites).toHaveLength(1);
    expect(s.media.sessions.get(id)!.answers[0]).toBe('wa-answer');
  });
});

describe('click to call: the failure table', () => {
  const up = { whatsappCallStarted: true, sip: 'confirmed' as const };
  const ringingExt = { whatsappCallStarted: true, sip: 'inviting' as const };
  const ringingUser = { whatsappCallStarted: true, sip: 'none' as const };
  const before = { whatsappCallStarted: false, sip: 'none' as const };
  it.each<[ClickEndCause, Parameters<typeof planClickTeardown>[1], string, string, string]>([
    [{ kind: 'wa-terminate', status: 'COMPLETED' }, up, 'none', 'bye', 'user-hung-up'],
    [{ kind: 'wa-terminate', status: 'FAILED', errorCode: 131000 }, ringingExt, 'none', 'cancel', 'whatsapp-failed'],
    [{ kind: 'wa-rejected' }, ringingUser, 'none', 'none', 'user-declined'],
    [{ kind: 'pbx-final', status: 486, reason: 'Busy Here' }, ringingExt, 'terminate', 'none', 'pbx-busy'],
    [{ kind: 'pbx-bye' }, up, 'terminate', 'none', 'agent-hung-up'],
    [{ kind: 'ring-timeout', side: 'whatsapp' }, ringingUser, 'terminate', 'none', 'no-answer'],
    [{ kind: 'ring-timeout', side: 'pbx' }, ringingExt, 'terminate', 'cancel', 'ring-timeout'],
    [{ kind: 'wa-api-error', action: 'connect', code: 131047, message: 'x' }, before, 'none', 'none', 'whatsapp-connect-failed'],
    [{ kind: 'no-permission' }, before, 'none', 'none', 'wa-no-permission'],
    [{ kind: 'media-error', message: 'x' }, ringingUser, 'terminate', 'none', 'media-failed'],
    [{ kind: 'media-failure', failure: { kind: 'webrtc-failed', detail: 'x' } }, up, 'terminate', 'bye', 'whatsapp-webrtc-failed'],
    [{ kind: 'admin-hangup', by: 'ops' }, up, 'terminate', 'bye', 'admin-hangup'],
    [{ kind: 'shutdown' }, ringingExt, 'terminate', 'cancel', 'shutdown'],
  ])('%j with %j → WhatsApp %s, SIP %s (%s)', (cause, legs, whatsapp, sip, label) => {
    expect(planClickTeardown(cause, legs)).toEqual({ whatsapp, sip, label });
  });
});
