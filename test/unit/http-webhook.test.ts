import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHttpServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/util/log.js';
import { sign, verifySignature } from '../../src/whatsapp/signature.js';
import { parseWebhook } from '../../src/whatsapp/webhook.js';
import type { WaEvent } from '../../src/whatsapp/types.js';
import { buildTerminateWebhook, buildUserConnectWebhook } from '../../src/simulator/webhook-sender.js';

const SECRET = 'app-secret';
const target = { phoneNumberId: '436666719526789', businessNumber: '13175551399' };
let events: WaEvent[][];
let app: ReturnType<typeof createHttpServer>;

function make(appSecret = SECRET) {
  return createHttpServer({
    log: silentLogger(),
    security: { appSecret, signatureHeader: 'x-hub-signature-256', verify: verifySignature, verifyToken: 'vt' },
    parse: parseWebhook,
    onEvents: (e) => events.push(e),
    health: async () => ({ ok: true }),
  });
}
const tick = () => new Promise((r) => setImmediate(r));

beforeEach(() => {
  events = [];
  app = make();
});
afterEach(() => app.close());

const body = JSON.stringify(buildUserConnectWebhook({ ...target, callId: 'wacid.X', userWaId: '5511987654321', userName: 'Ana', sdp: 'v=0\r\n' }));

describe('webhook HTTP endpoint', () => {
  it('answers Meta subscription handshake only with the right verify token', async () => {
    const ok = await app.inject({ method: 'GET', url: '/webhook?hub.mode=subscribe&hub.verify_token=vt&hub.challenge=1158201444' });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toBe('1158201444');
    const bad = await app.inject({ method: 'GET', url: '/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1' });
    expect(bad.statusCode).toBe(403);
  });

  it('accepts a correctly signed webhook, answers 200 first and hands the events over after', async () => {
    const res = await app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(Buffer.from(body), SECRET) }, payload: body });
    expect(res.statusCode).toBe(200);
    expect(events).toEqual([]); // not yet: processing happens after the response
    await tick();
    expect(events[0]!.map((e) => e.kind)).toEqual(['connect']);
  });

  it.each([
    ['missing', undefined],
    ['wrong secret', sign(Buffer.from(body), 'other')],
    ['malformed', 'sha256=zz'],
    ['signature of other bytes', sign(Buffer.from(body + ' '), SECRET)],
  ])('refuses a %s signature with 401 and does nothing', async (_name, sig) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (sig) headers['x-hub-signature-256'] = sig;
    const res = await app.inject({ method: 'POST', url: '/webhook', headers, payload: body });
    expect(res.statusCode).toBe(401);
    await tick();
    expect(events).toEqual([]);
  });

  it('verifies the raw bytes, not a re-serialised object (whitespace and key order kept)', async () => {
    const spaced = body.replace('{', '{ \n');
    const res = await app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(Buffer.from(spaced), SECRET) }, payload: spaced });
    expect(res.statusCode).toBe(200);
    await tick();
    expect(events.flat().map((e) => e.kind)).toEqual(['connect']);
  });

  it('says 400 for a signed body that is not JSON, and acknowledges unknown shapes', async () => {
    const junk = '{"object": ';
    const r1 = await app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(Buffer.from(junk), SECRET) }, payload: junk });
    expect(r1.statusCode).toBe(400);
    const odd = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ changes: [{ field: 'calls', value: { calls: [{ event: 'teleport' }] } }] }] });
    const r2 = await app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(Buffer.from(odd), SECRET) }, payload: odd });
    expect(r2.statusCode).toBe(200);
    await tick();
    expect(events.flat()).toEqual([]);
  });

  it('without an app secret configured, takes unsigned webhooks', async () => {
    await app.close();
    app = make('');
    const t = JSON.stringify(buildTerminateWebhook({ ...target, callId: 'wacid.X', status: 'COMPLETED' } as never));
    const res = await app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json' }, payload: t });
    expect(res.statusCode).toBe(200);
    await tick();
    expect(events[0]!.map((e) => e.kind)).toEqual(['terminate']);
  });

  it('health answers 200', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
