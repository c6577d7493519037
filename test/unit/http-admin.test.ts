import Fastify from 'fastify';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { registerOps } from '../../src/http/admin.js';
import { BridgeMetrics } from '../../src/ops/metrics.js';
import { CallTraces } from '../../src/ops/trace.js';

function server(opts: { metricsToken?: string } = {}) {
  const traces = new CallTraces();
  const hungUp: Array<[string, string]> = [];
  const reloads: string[] = [];
  const placed: Array<[unknown, string]> = [];
  const metrics = new BridgeMetrics({ processMetrics: false });
  const app = Fastify();
  registerOps(app, {
    log: pino({ level: 'silent' }),
    metrics: { registry: metrics, token: opts.metricsToken },
    admin: {
      tokens: [
        { name: 'ops-team', token: 'secret-token-1' },
        { name: 'crm', token: 'secret-token-2' },
      ],
      traces,
      hangup: async (id, by) => {
        if (!traces.get(id)) return false;
        hungUp.push([id, by]);
        return true;
      },
      reloadRouting: (by) => {
        reloads.push(by);
        return reloads.length === 1 ? { ok: true } : { ok: false, error: 'routing.default: Invalid SIP URI' };
      },
      placeCall: async (body, by) => {
        placed.push([body, by]);
        const to = (body as { to?: string } | undefined)?.to;
        if (to === '15550001111') return { ok: true, id: 'c2c-1', waCallId: 'wacid.c2c' };
        if (to === '15550002222') return { ok: false, status: 429, error: 'at its limit', label: 'refused-over-capacity', retryAfterSec: 5 };
        return { ok: false, status: 403, error: 'no call permission', label: 'wa-no-permission' };
      },
    },
  });
  return { app, traces, hungUp, metrics, reloads, placed };
}

describe('admin API', () => {
  it('refuses every admin route without a valid token', async () => {
    const { app } = server();
    for (const [method, url] of [
      ['GET', '/admin/calls'],
      ['GET', '/admin/calls/x'],
      ['POST', '/admin/calls/x/hangup'],
      ['POST', '/admin/calls'],
      ['GET', '/admin/events'],
    ] as const) {
      expect((await app.inject({ method, url })).statusCode, url).toBe(401);
      expect((await app.inject({ method, url, headers: { authorization: 'Bearer wrong' } })).statusCode, url).toBe(401);
    }
    // The page without a session is the sign-in form, with no call data.
    const page = await app.inject({ method: 'GET', url: '/admin/' });
    expect(page.body).toContain('Admin token');
    expect(page.body).not.toContain('EventSource');
  });

  it('lists calls and hangs one up, naming who asked', async () => {
    const { app, traces, hungUp } = server();
    traces.start('wacid.1', { direction: 'inbound', whatsappUser: '15551234567' });
    const auth = { authorization: 'Bearer secret-token-2' };
    const list = await app.inject({ method: 'GET', url: '/admin/calls', headers: auth });
    expect(list.json().active.map((c: { id: string }) => c.id)).toEqual(['wacid.1']);
    expect((await app.inject({ method: 'POST', url: '/admin/calls/wacid.1/hangup', headers: auth })).statusCode).toBe(200);
    expect(hungUp).toEqual([['wacid.1', 'crm']]);
    expect((await app.inject({ method: 'POST', url: '/admin/calls/nope/hangup', headers: auth })).statusCode).toBe(404);
  });

  it('places a click-to-call with the body and the token name, and answers 202 or the refusal', async () => {
    const { app, placed } = server();
    const auth = { authorization: 'Bearer secret-token-2', 'content-type': 'application/json' };
    const ok = await app.inject({ method: 'POST', url: '/admin/calls', headers: auth, payload: { to: '15550001111', extension: '2001' } });
    expect(ok.statusCode).toBe(202);
    expect(ok.json()).toEqual({ ok: true, id: 'c2c-1', waCallId: 'wacid.c2c' });
    expect(placed[0]).toEqual([{ to: '15550001111', extension: '2001' }, 'crm']);
    const busy = await app.inject({ method: 'POST', url: '/admin/calls', headers: auth, payload: { to: '15550002222', extension: '2001' } });
    expect([busy.statusCode, busy.headers['retry-after'], busy.json().label]).toEqual([429, '5', 'refused-over-capacity']);
    const denied = await app.inject({ method: 'POST', url: '/admin/calls', headers: auth, payload: { to: '15550003333', extension: '2001' } });
    expect([denied.statusCode, denied.json().error]).toEqual([403, 'no call permission']);
    // Not JSON: the action gets `undefined` (and refuses it), never a parse exception.
    await app.inject({ method: 'POST', url: '/admin/calls', headers: { ...auth, 'content-type': 'text/plain' }, payload: '{oops' });
    expect(placed.length).toBe(4);
  });

  it('reloads the routing on request, and says why when the new config is refused', async () => {
    const { app, reloads } = server();
    const auth = { authorization: 'Bearer secret-token-1' };
    expect((await app.inject({ method: 'POST', url: '/admin/routing/reload' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/admin/routing/reload', headers: auth })).json()).toEqual({ ok: true });
    const refused = await app.inject({ method: 'POST', url: '/admin/routing/reload', headers: auth });
    expect(refused.statusCode).toBe(422);
    expect(refused.json().error).toMatch(/routing.default/);
    expect(reloads).toEqual(['admin ops-team', 'admin ops-team']);
  });

  it('refuses an address that keeps guessing tokens, even when it then has the right one', async () => {
    const { app } = server();
    const from = (ip: string, token: string) => ({ method: 'GET' as const, url: '/admin/calls', headers: { authorization: `Bearer ${token}` }, remoteAddress: ip });
    for (let i = 0; i < 10; i++) expect((await app.inject(from('203.0.113.9', `guess-${i}`))).statusCode).toBe(401);
    const refused = await app.inject(from('203.0.113.9', 'secret-token-1'));
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBe('300');
    expect((await app.inject({ method: 'POST', url: '/admin/login', payload: { token: 'secret-token-1' }, remoteAddress: '203.0.113.9' })).statusCode).toBe(429);
    // Another address is not affected.
    expect((await app.inject(from('198.51.100.7', 'secret-token-1'))).statusCode).toBe(200);
  });

  it('signs a browser in with a session cookie (HttpOnly, SameSite=Strict)', async () => {
    const { app } = server();
    expect((await app.inject({ method: 'POST', url: '/admin/login', payload: { token: 'nope' } })).statusCode).toBe(401);
    const ok = await app.inject({ method: 'POST', url: '/admin/login', payload: { token: 'secret-token-1' } });
    expect(ok.statusCode).toBe(200);
    const set = String(ok.headers['set-cookie']);
    expect(set).toMatch(/HttpOnly/);
    expect(set).toMatch(/SameSite=Strict/);
    const cookie = set.split(';')[0]!;
    expect((await app.inject({ method: 'GET', url: '/admin/calls', headers: { cookie } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/admin/', headers: { cookie } })).body).toContain('EventSource');
  });
});

describe('/metrics', () => {
  it('serves Prometheus text, behind a token when one is configured', async () => {
    const { app, metrics } = server({ metricsToken: 'm-token' });
    metrics.callStarted('outbound');
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const r = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer m-token' } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    expect(r.body).toContain('wasip_calls_active{direction="outbound"} 1');
  });
});
