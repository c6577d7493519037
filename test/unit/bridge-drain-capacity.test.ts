import { describe, expect, it } from 'vitest';
import { CapacityGuard, capacityLimits, EMBEDDED_CALLS_PER_CORE } from '../../src/bridge/capacity.js';
import { ExpiringSet } from '../../src/bridge/dedupe.js';
import { PermissionCache } from '../../src/bridge/permissions.js';
import { buildConfig } from '../../src/config/load.js';
import { createHttpServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/util/log.js';
import { deliverInvite, FakeIncomingInvite, FakeWhatsApp } from '../support/fakes.js';
import { BridgeScenario, until, userCall, waTerminate } from '../support/bridge-scenario.js';

/** Graceful drain, the capacity guard and bounded state, on fakes. The real process: test/e2e/drain.test.ts. */

async function refusedInvite(s: BridgeScenario): Promise<FakeIncomingInvite> {
  const inv = new FakeIncomingInvite('sip:+5511987654321@bridge.test');
  deliverInvite(s.sip, inv);
  await until(() => inv.responses.length > 0, 'a final response to the INVITE');
  return inv;
}

describe('graceful drain', () => {
  it('refuses new calls both ways while calls in progress carry on, and ends when the last one ends', async () => {
    const s = new BridgeScenario();
    const inbound = await s.inboundActive();
    const outbound = await s.outboundActive();
    const drained = s.bridge.drain(60_000);
    expect(s.bridge.state).toBe('draining');

    const invitesBefore = s.sip.invites.length;
    s.bridge.handleEvents([userCall('wacid.new')]);
    await s.waitEnded(1, 'the new WhatsApp call to be refused');
    expect(s.ended[0]).toMatchObject({ waCallId: 'wacid.new', label: 'refused-draining', whatsapp: 'reject' });
    expect(s.wa.actions.at(-1)).toMatchObject({ action: 'reject', callId: 'wacid.new' });
    expect(s.sip.invites.length).toBe(invitesBefore);

    const inv = await refusedInvite(s);
    expect(inv.statuses()).toEqual([503]);
    expect(inv.responses[0]!.headers).toMatchObject({ 'Retry-After': '30', Warning: '399 wa-sip-bridge "bridge shutting down"' });

    // The calls in progress are untouched.
    expect(s.bridge.call(inbound.callId)!.state).toBe('active');
    expect(s.bridge.outboundCall(outbound.invite.callId)!.state).toBe('active');
    expect(inbound.dialog.byes + outbound.dialog.byes).toBe(0);

    s.bridge.handleEvents([waTerminate(inbound.callId)]);
    outbound.dialog.remoteBye();
    expect(await drained).toBe('drained');
    expect(s.bridge.state).toBe('stopped');
    expect(s.ended.map((r) => r.label).sort()).toEqual(['agent-hung-up', 'caller-hung-up', 'refused-draining', 'refused-draining']);
  });

  it('when drainSec passes, every call still up ends: WhatsApp terminate, BYE with a Reason', async () => {
    const s = new BridgeScenario();
    const inbound = await s.inboundActive();
    const outbound = await s.outboundActive();
    expect(await s.bridge.drain(100)).toBe('deadline');
    expect(s.wa.actions.filter((a) => a.action === 'terminate').map((a) => a.callId).sort()).toEqual([inbound.callId, outbound.waCallId].sort());
    expect(inbound.dialog.byeReasons).toEqual(['Q.850;cause=41;text="shutdown"']);
    expect(outbound.dialog.byeReasons).toEqual(['Q.850;cause=41;text="shutdown"']);
    expect(s.bridge.activeCalls).toBe(0);
  });

  it('a drain with no call in progress ends at once', async () => {
    const s = new BridgeScenario();
    const t0 = performance.now();
    expect(await s.bridge.drain(60_000)).toBe('drained');
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('capacity guard', () => {
  it('beyond calls.maxConcurrent a new call is refused either way (reject / 503 Retry-After), and taken again once one ends', async () => {
    const s = new BridgeScenario({ calls: { maxConcurrent: 2 } });
    const a = await s.inboundActive();
    await s.outboundActive();
    s.bridge.handleEvents([userCall('wacid.third')]);
    await s.waitEnded(1);
    expect(s.ended[0]).toMatchObject({ waCallId: 'wacid.third', label: 'refused-over-capacity', whatsapp: 'reject', sip: 'none' });
    const inv = await refusedInvite(s);
    expect(inv.statuses()).toEqual([503]);
    expect(inv.responses[0]!.headers).toMatchObject({ 'Retry-After': '5' });
    expect(s.sip.invites).toHaveLength(1);

    s.bridge.handleEvents([waTerminate(a.callId)]);
    await s.waitEnded(3);
    await s.inboundActive();
    expect(s.bridge.activeCalls).toBe(2);
  });

  it('beyond calls.maxSetupsPerSec a new call is refused; the rate is measured against the clock', async () => {
    const s = new BridgeScenario({ calls: { maxSetupsPerSec: 2, maxConcurrent: 100 } });
    const t0 = performance.now();
    s.bridge.handleEvents([userCall('wacid.1'), userCall('wacid.2'), userCall('wacid.3')]);
    await s.waitEnded(1);
    expect(s.ended[0]).toMatchObject({ waCallId: 'wacid.3', label: 'refused-setup-rate', whatsapp: 'reject' });
    const inv = await refusedInvite(s);
    // Only meaningful while the bucket cannot have refilled a token (500 ms at 2/s).
    if (performance.now() - t0 < 450) expect(inv.statuses()).toEqual([503]);
    expect(inv.responses[0]!.headers).toMatchObject({ 'Retry-After': expect.any(String) });
    // A token is back 500 ms later (2/s): wait for the clock, then a call is taken.
    await until(() => performance.now() - t0 > 520, 'half a second to pass');
    const invited = s.sip.next();
    s.bridge.handleEvents([userCall('wacid.4')]);
    expect((await invited).req.headers!['X-WA-Call-Id']).toBe('wacid.4');
  });

  it('the token bucket admits maxSetupsPerSec per second of clock, whatever the call pattern', () => {
    let t = 0;
    const g = new CapacityGuard({ maxConcurrent: 1000, maxSetupsPerSec: 5 }, () => t);
    let admitted = 0;
    for (let i = 0; i < 1000; i++) {
      t = i * 10; // 100 attempts per second for 10 s
      if (g.admit(0).ok) admitted++;
    }
    // 5 in the initial burst, then 5 per second for 9.99 s.
    expect(admitted).toBeGreaterThanOrEqual(54);
    expect(admitted).toBeLessThanOrEqual(55);
    expect(g.admit(1000)).toEqual({ ok: false, reason: 'over-capacity' });
  });

  it('the embedded engine defaults to its measured ceiling per core; rtpengine to 1000; the key wins', () => {
    expect(capacityLimits(buildConfig({}), 2).maxConcurrent).toBe(2 * EMBEDDED_CALLS_PER_CORE);
    expect(capacityLimits(buildConfig({ media: { engine: 'rtpengine' } }), 2).maxConcurrent).toBe(1000);
    expect(capacityLimits(buildConfig({ calls: { maxConcurrent: 7 } }), 2).maxConcurrent).toBe(7);
  });
});

describe('bounded state', () => {
  it('the dedupe set forgets its oldest key past its size and expired keys on time', () => {
    let t = 0;
    const set = new ExpiringSet(1000, () => t, 3);
    for (const k of ['a', 'b', 'c', 'd']) set.add(k);
    expect(set.size).toBe(3);
    expect(set.has('a')).toBe(false);
    expect(set.has('d')).toBe(true);
    t = 1001;
    expect(set.has('d')).toBe(false);
    expect(set.size).toBe(0);
  });

  it('the permission cache drops expired entries and its oldest past its size', async () => {
    let t = 0;
    const wa = new FakeWhatsApp();
    const cache = new PermissionCache(wa, 1000, silentLogger(), () => t, 3);
    for (const u of ['1', '2', '3', '4']) await cache.check('p', u);
    expect(cache.size).toBe(3);
    t = 2000;
    await cache.check('p', '5');
    expect(cache.size).toBe(1);
  });

  it('every per-call map is empty after calls of both directions end', async () => {
    const s = new BridgeScenario();
    const a = await s.inboundActive();
    const b = await s.outboundActive();
    s.bridge.handleEvents([waTerminate(a.callId)]);
    b.dialog.remoteBye();
    await s.waitEnded(2);
    expect(s.bridge.status().maps).toMatchObject({ inbound: 0, outbound: 0, outboundByWaId: 0 });
  });
});

describe('/readyz', () => {
  it('answers 503 with the reasons named when not ready, 200 when ready; /healthz stays liveness', async () => {
    let ready = { ready: false, state: 'draining', reasons: ['bridge: draining'] };
    const app = createHttpServer({
      log: silentLogger(),
      security: { check: () => ({ ok: true, authenticated: true }), challenge: () => undefined },
      parse: () => ({ events: [], ignored: [] }),
      onEvents: () => undefined,
      health: async () => ({ ok: true }),
      ready: async () => ready,
    });
    const r = await app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual(ready);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    ready = { ready: true, state: 'running', reasons: [] };
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    await app.close();
  });
});
