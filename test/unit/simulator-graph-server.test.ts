import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createGraphSimulator, type GraphSimulator, type RecordedAction } from '../../src/simulator/graph-server.js';

const TOKEN = 'EAAG-sim-token';
const KEY = 'd360-sim-key';
const PN = '436666719526789';
const GOOD = 'v=0\r\na=setup:active\r\na=fingerprint:sha-256 AA\r\n';
const BAD = 'v=0\r\na=setup:active\r\na=fingerprint:sha-256 AA\r\na=fingerprint:sha-384 BB\r\n';

/** A stand-in for media's checkWhatsAppAnswer. */
function validateAnswerSdp(sdp: string): string[] {
  const v: string[] = [];
  if (/a=fingerprint:(?!sha-256)/.test(sdp)) v.push('Fingerprint algo is not SHA256');
  if (!/a=setup:active/.test(sdp)) v.push('setup must be active');
  return v;
}

let sim: GraphSimulator;
let url: string;

beforeAll(async () => {
  sim = createGraphSimulator({ accessToken: TOKEN, apiKey: KEY, version: 'v23.0', validateAnswerSdp });
  url = await sim.listen();
});
afterAll(() => sim.close());
afterEach(() => {
  sim.actions.length = 0;
});

async function post(body: unknown, opts: { token?: string; path?: string; raw?: string } = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${opts.path ?? `/v23.0/${PN}/calls`}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.token ?? TOKEN}` },
    body: opts.raw ?? JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const action = (callId: string, act: string, sdp?: string) => ({
  messaging_product: 'whatsapp',
  call_id: callId,
  action: act,
  ...(sdp !== undefined ? { session: { sdp_type: 'answer', sdp } } : {}),
});

describe('graph simulator: auth and bodies', () => {
  it('401 with Meta OAuth shape on a bad or missing token', async () => {
    const r = await post(action('wacid.a', 'terminate'), { token: 'wrong' });
    expect(r.status).toBe(401);
    expect(r.body.error).toMatchObject({ type: 'OAuthException', code: 190, message: expect.stringContaining('access token') });
    expect(r.body.error.fbtrace_id).toEqual(expect.any(String));
    const none = await fetch(`${url}/v23.0/${PN}/calls`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(none.status).toBe(401);
  });

  it('missing call_id → 400 code 100', async () => {
    const r = await post({ messaging_product: 'whatsapp', action: 'accept' });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 100, message: '(#100) Invalid parameter', error_data: { details: expect.stringContaining('call_id') } });
  });

  it('unknown action, missing messaging_product, malformed JSON → 400 code 100', async () => {
    expect((await post({ messaging_product: 'whatsapp', call_id: 'x', action: 'hold' })).body.error.code).toBe(100);
    expect((await post({ call_id: 'x', action: 'terminate' })).body.error.code).toBe(100);
    const bad = await post(undefined, { raw: '{not json' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe(100);
  });

  it('wrong Graph version is refused', async () => {
    const r = await post(action('x', 'terminate'), { path: `/v19.0/${PN}/calls` });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe(2635);
  });

  it('records every request, refused ones too, with body and time', async () => {
    const t0 = Date.now();
    await post(action('wacid.rec', 'terminate'), { token: 'bad' });
    const a = await sim.waitForAction('terminate', 1000);
    expect(a).toMatchObject({ provider: 'meta', action: 'terminate', callId: 'wacid.rec', phoneNumberId: PN, response: { status: 401 } });
    expect(a.body).toEqual(action('wacid.rec', 'terminate'));
    expect(a.at).toBeGreaterThanOrEqual(t0);
  });
});

describe('graph simulator: SDP rules', () => {
  it('an SDP violation → 400 code 100 subcode 2494010 with the first violation as details', async () => {
    sim.registerCall('wacid.sdp', PN);
    const r = await post(action('wacid.sdp', 'pre_accept', BAD.replace('a=setup:active\r\n', '')));
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      error: {
        message: '(#100) Invalid parameter',
        type: 'OAuthException',
        code: 100,
        error_subcode: 2494010,
        error_data: { messaging_product: 'whatsapp', details: 'Fingerprint algo is not SHA256' },
        fbtrace_id: expect.any(String),
      },
    });
    expect(sim.getCall('wacid.sdp')?.state).toBe('ringing');
  });

  it('sdp_type must be answer', async () => {
    sim.registerCall('wacid.type', PN);
    const r = await post({ ...action('wacid.type', 'accept'), session: { sdp_type: 'offer', sdp: GOOD } });
    expect(r.body.error.error_data.details).toMatch(/answer/);
  });

  it('accept must carry the pre_accept SDP', async () => {
    sim.registerCall('wacid.same', PN);
    expect((await post(action('wacid.same', 'pre_accept', GOOD))).status).toBe(200);
    const r = await post(action('wacid.same', 'accept', `${GOOD}a=sendrecv\r\n`));
    expect(r.status).toBe(400);
    expect(r.body.error.error_data.details).toMatch(/identical/);
    expect((await post(action('wacid.same', 'accept', GOOD))).body).toEqual({ messaging_product: 'whatsapp', success: true });
  });
});

describe('graph simulator: call state', () => {
  it('accept on an unknown call → 100', async () => {
    const r = await post(action('wacid.nope', 'accept', GOOD));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 100, error_data: { details: expect.stringContaining('Unknown call_id') } });
  });

  it('a call registered for another number is unknown here', async () => {
    sim.registerCall('wacid.other', '999');
    expect((await post(action('wacid.other', 'accept', GOOD))).status).toBe(400);
  });

  it('accept on a call the user already hung up → error', async () => {
    sim.registerCall('wacid.gone', PN);
    sim.markTerminated('wacid.gone');
    const r = await post(action('wacid.gone', 'accept', GOOD));
    expect(r.status).toBe(400);
    expect(r.body.error.error_data.details).toMatch(/terminated/);
  });

  it('reject after accept, a second accept, and anything after terminate → error', async () => {
    sim.registerCall('wacid.flow', PN);
    expect((await post(action('wacid.flow', 'accept', GOOD))).status).toBe(200);
    expect((await post(action('wacid.flow', 'accept', GOOD))).body.error.error_data.details).toMatch(/already accepted/);
    expect((await post(action('wacid.flow', 'reject'))).body.error.error_data.details).toMatch(/use terminate/);
    expect((await post(action('wacid.flow', 'terminate'))).status).toBe(200);
    expect((await post(action('wacid.flow', 'terminate'))).status).toBe(400);
  });

  it('reject a ringing call, then nothing else', async () => {
    sim.registerCall('wacid.rej', PN);
    expect((await post(action('wacid.rej', 'reject'))).status).toBe(200);
    expect((await post(action('wacid.rej', 'accept', GOOD))).status).toBe(400);
  });

  it('registerCall again (a redelivered connect) does not reset the state', async () => {
    sim.registerCall('wacid.dup', PN);
    await post(action('wacid.dup', 'accept', GOOD));
    sim.registerCall('wacid.dup', PN);
    expect(sim.getCall('wacid.dup')?.state).toBe('accepted');
  });

  it('connect creates a business-initiated call that cannot be accepted by the business', async () => {
    const r = await post({ messaging_product: 'whatsapp', to: '12185552828', action: 'connect', session: { sdp_type: 'offer', sdp: 'v=0' } });
    expect(r.body).toEqual({ messaging_product: 'whatsapp', calls: [{ id: expect.stringMatching(/^wacid\./) }] });
    const id = r.body.calls[0].id as string;
    expect(sim.getCall(id)).toMatchObject({ direction: 'BUSINESS_INITIATED', state: 'calling', to: '12185552828' });
    expect((await post(action(id, 'accept', GOOD))).status).toBe(400);
    expect((await post(action(id, 'terminate'))).status).toBe(200);
  });

  it('connect validates to and session', async () => {
    expect((await post({ messaging_product: 'whatsapp', to: '+1 218', action: 'connect', session: { sdp_type: 'offer', sdp: 'v=0' } })).status).toBe(400);
    expect((await post({ messaging_product: 'whatsapp', to: '12185552828', action: 'connect', session: { sdp_type: 'answer', sdp: 'v=0' } })).status).toBe(400);
  });
});

describe('graph simulator: test controls', () => {
  it('failNext answers once with the given error, then normal service', async () => {
    sim.registerCall('wacid.fail', PN);
    sim.failNext('pre_accept', { httpStatus: 500, code: 138004, message: 'Connection error', isTransient: true });
    const r = await post(action('wacid.fail', 'pre_accept', GOOD));
    expect(r.status).toBe(500);
    expect(r.body.error).toMatchObject({ code: 138004, is_transient: true });
    expect((await post(action('wacid.fail', 'pre_accept', GOOD))).status).toBe(200);
  });

  it('setHandler overrides an answer; undefined falls through', async () => {
    sim.setHandler('terminate', (ctx) => (ctx.callId === 'wacid.custom' ? { status: 200, body: { success: true, custom: 1 } } : undefined));
    try {
      expect((await post(action('wacid.custom', 'terminate'))).body).toEqual({ success: true, custom: 1 });
      expect((await post(action('wacid.unknown', 'terminate'))).status).toBe(400);
    } finally {
      sim.setHandler('terminate', undefined);
    }
  });

  it('waitForAction by predicate waits for a future action; times out otherwise', async () => {
    const pending = sim.waitForAction((a: RecordedAction) => a.callId === 'wacid.later', 1000);
    sim.registerCall('wacid.later', PN);
    await post(action('wacid.later', 'reject'));
    await expect(pending).resolves.toMatchObject({ action: 'reject' });
    await expect(sim.waitForAction('connect', 50)).rejects.toThrow(/no connect within 50 ms/);
  });

  it('action listeners see every request and cannot break the server', async () => {
    const seen: string[] = [];
    const ok = (a: RecordedAction) => seen.push(a.action);
    const boom = () => {
      throw new Error('listener bug');
    };
    sim.on('action', boom);
    sim.on('action', ok);
    try {
      const r = await post(action('wacid.x', 'terminate'));
      expect(r.status).toBe(400);
      expect(seen).toEqual(['terminate']);
    } finally {
      sim.off('action', boom);
      sim.off('action', ok);
    }
  });

  it('360dialog routes: key auth and string errors', async () => {
    const res = await fetch(`${url}/calling/calls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'd360-api-key': 'wrong' },
      body: JSON.stringify(action('x', 'terminate')),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: expect.stringContaining('Invalid api key') });
    const res2 = await fetch(`${url}/calling/calls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'd360-api-key': KEY },
      body: JSON.stringify({ messaging_product: 'whatsapp', action: 'accept' }),
    });
    expect(res2.status).toBe(400);
    expect(await res2.json()).toEqual({ error: '(#100) Invalid parameter: The parameter call_id is required' });
  });

  it('close is idempotent and rejects pending waiters', async () => {
    const s = createGraphSimulator({ accessToken: TOKEN, apiKey: KEY });
    await s.listen();
    const w = s.waitForAction('accept', 5000);
    await s.close();
    await s.close();
    await expect(w).rejects.toThrow(/closed/);
  });
});
