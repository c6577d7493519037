import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHttpServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/util/log.js';
import { sign, sign360dialog } from '../../src/whatsapp/signature.js';
import { WhatsAppCounters } from '../../src/whatsapp/counters.js';
import { WebhookAuth, type WebhookAuthConfig } from '../../src/whatsapp/webhook-auth.js';
import { parseWebhook } from '../../src/whatsapp/webhook.js';
import type { WaEvent } from '../../src/whatsapp/types.js';
import { buildTerminateWebhook, buildUserConnectWebhook } from '../../src/simulator/webhook-sender.js';

const SECRET = 'app-secret';
const target = { phoneNumberId: '436666719526789', businessNumber: '13175551399' };
let events: WaEvent[][];
let app: ReturnType<typeof createHttpServer>;

let counters: WhatsAppCounters;
function make(appSecret = SECRET, over: Partial<WebhookAuthConfig> = {}) {
  counters = new WhatsAppCounters();
  const cfg: WebhookAuthConfig = { provider: 'meta', appSecret, allowUnsignedWebhooks: false, verifyToken: 'vt', ...over };
  return createHttpServer({
    log: silentLogger(),
    security: new WebhookAuth(cfg, counters),
    counters,
    parse: (b) => parseWebhook(b, { maxEvents: 5 }),
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

  it('with allowUnsignedWebhooks: true, takes unsigned webhooks from anywhere and counts each', async () => {
    await app.close();
    app = make('', { allowUnsignedWebhooks: true });
    const t = JSON.stringify(buildTerminateWebhook({ ...target, callId: 'wacid.X', status: 'COMPLETED' } as never));
    const res = await app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json' }, payload: t, remoteAddress: '203.0.113.7' });
    expect(res.statusCode).toBe(200);
    await tick();
    expect(events[0]!.map((e) => e.kind)).toEqual(['terminate']);
    expect(counters.get('webhook_unsigned_accepted')).toBe(1);
  });

  it("local-trial mode ('loopback') takes unsigned webhooks from this machine only", async () => {
    await app.close();
    app = make('', { allowUnsignedWebhooks: 'loopback' });
    const t = JSON.stringify(buildTerminateWebhook({ ...target, callId: 'wacid.X', status: 'COMPLETED' } as never));
    const post = (remoteAddress: string) => app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json' }, payload: t, remoteAddress });
    expect((await post('127.0.0.1')).statusCode).toBe(200);
    expect((await post('::1')).statusCode).toBe(200);
    expect((await post('203.0.113.7')).statusCode).toBe(401);
    expect((await post('::ffff:10.0.0.1')).statusCode).toBe(401);
    await tick();
    expect(events.flat().map((e) => e.kind)).toEqual(['terminate', 'terminate']);
    expect(counters.get('webhook_auth_refused', { reason: 'unsigned-not-loopback' })).toBe(2);
  });

  it('360dialog: a configured shared-secret header authenticates; wrong, missing or repeated header is 401', async () => {
    await app.close();
    app = make('', { provider: '360dialog', webhookAuthHeader: { name: 'X-Bridge-Key', value: 'k3y-Value' } });
    const send = (headers: Record<string, string | string[]>) =>
      app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', ...headers } as never, payload: body });
    expect((await send({ 'x-bridge-key': 'k3y-Value' })).statusCode).toBe(200);
    expect((await send({ 'x-bridge-key': 'k3y-Valuf' })).statusCode).toBe(401);
    expect((await send({ 'x-bridge-key': 'k3y-Value ' })).statusCode).toBe(401);
    expect((await send({})).statusCode).toBe(401);
    expect((await send({ 'x-hub-signature-256': sign(Buffer.from(body), 'k3y-Value') })).statusCode).toBe(401);
    expect(counters.get('webhook_auth_refused', { reason: 'bad-shared-header' })).toBe(4);
  });

  it('360dialog with both a shared header and a partner secret requires both', async () => {
    await app.close();
    app = make('partner', { provider: '360dialog', webhookAuthHeader: { name: 'x-bridge-key', value: 'k' } });
    const sig = sign360dialog(Buffer.from(body), 'partner');
    const send = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', ...headers }, payload: body });
    expect((await send({ 'x-bridge-key': 'k', 'x-360dialog-signature': sig })).statusCode).toBe(200);
    expect((await send({ 'x-bridge-key': 'k' })).statusCode).toBe(401);
    expect((await send({ 'x-360dialog-signature': sig })).statusCode).toBe(401);
  });

  it('drops an invalid event with a count and keeps the rest of the POST; caps events per POST', async () => {
    const good = buildTerminateWebhook({ ...target, callId: 'wacid.GOOD', status: 'COMPLETED' } as never) as any;
    const calls = good.entry[0].changes[0].value.calls;
    calls.push({ ...calls[0], id: 'wacid.X\r\nAlert-Info: <http://x>;info=alert-autoanswer' });
    for (let i = 0; i < 10; i++) calls.push({ ...calls[0], id: `wacid.N${i}` });
    const raw = JSON.stringify(good);
    const res = await app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(Buffer.from(raw), SECRET) }, payload: raw });
    expect(res.statusCode).toBe(200);
    await tick();
    // cap 5: the good one, the bad one (dropped) and 3 more; 7 over the cap
    expect(events.flat().map((e) => (e as { callId: string }).callId)).toEqual(['wacid.GOOD', 'wacid.N0', 'wacid.N1', 'wacid.N2']);
    expect(counters.get('webhook_events_dropped', { reason: 'call-id' })).toBe(1);
    expect(counters.get('webhook_events_over_cap')).toBe(7);
  });

  it('health answers 200', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
