import { describe, expect, it, vi } from 'vitest';
import { ConnectReconciler, carryOnAfterLostConnect } from '../../src/bridge/connect-reconciler.js';
import { WhatsAppCounters } from '../../src/whatsapp/counters.js';
import { GraphApiError, type WaStatusEvent } from '../../src/whatsapp/types.js';
import { silentLogger } from '../../src/util/log.js';

const ringing = (callId: string, opaque?: string): WaStatusEvent => ({
  kind: 'status',
  phoneNumberId: '111',
  businessNumber: '13175551399',
  timestamp: 1,
  callId,
  status: 'RINGING',
  ...(opaque ? { bizOpaqueCallbackData: opaque } : {}),
});

describe('ConnectReconciler', () => {
  it('terminates a WhatsApp call whose connect the bridge gave up on, once, and ignores others', async () => {
    const terminate = vi.fn(async () => undefined);
    const counters = new WhatsAppCounters();
    const r = new ConnectReconciler({ whatsapp: { terminate }, log: silentLogger(), counters });
    r.abandoned('111', 'wa-sip-bridge:a');
    expect(r.onOrphan(ringing('wacid.other', 'wa-sip-bridge:zzz'))).toBe(false);
    expect(r.onOrphan(ringing('wacid.none'))).toBe(false);
    expect(r.onOrphan(ringing('wacid.lost', 'wa-sip-bridge:a'))).toBe(true);
    expect(terminate).toHaveBeenCalledWith('111', 'wacid.lost');
    expect(r.onOrphan(ringing('wacid.lost', 'wa-sip-bridge:a'))).toBe(false); // the connect after RINGING: already handled
    expect(counters.get('connect_reconciled', { outcome: 'terminated' })).toBe(1);
  });

  it('forgets after ttlMs and keeps at most maxEntries', () => {
    let t = 0;
    const r = new ConnectReconciler({ whatsapp: { terminate: async () => undefined }, log: silentLogger(), ttlMs: 1000, maxEntries: 3, now: () => t });
    for (let i = 0; i < 5; i++) r.abandoned('111', `o${i}`);
    expect(r.size).toBe(3);
    expect(r.onOrphan(ringing('wacid.x', 'o0'))).toBe(false); // evicted, oldest first
    t = 2000;
    expect(r.onOrphan(ringing('wacid.x', 'o4'))).toBe(false); // expired
    expect(r.size).toBe(0);
  });
});

describe('carryOnAfterLostConnect', () => {
  const lost = Object.assign(new GraphApiError('timeout after 100 ms', 0, 0), { transport: 'lost' as const, outcomeUnknown: true });

  it('carries on when the webhook names the call within the grace period', async () => {
    const call: { waCallId: string | undefined; isEnding: boolean } = { waCallId: undefined, isEnding: false };
    setTimeout(() => (call.waCallId = 'wacid.late'), 100);
    await expect(carryOnAfterLostConnect(call, lost, silentLogger(), undefined, 5000)).resolves.toBe(true);
  });

  it('gives up after the grace period, at once for a definite failure, and when the call is ending', async () => {
    const call = { waCallId: undefined, isEnding: false };
    const t0 = performance.now();
    await expect(carryOnAfterLostConnect(call, lost, silentLogger(), undefined, 200)).resolves.toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    const t1 = performance.now();
    await expect(carryOnAfterLostConnect(call, new GraphApiError('no permission', 400, 138006), silentLogger(), undefined, 5000)).resolves.toBe(false);
    expect(performance.now() - t1).toBeLessThan(1000);
    await expect(carryOnAfterLostConnect({ waCallId: 'wacid.x', isEnding: true }, lost, silentLogger())).resolves.toBe(false);
  });
});
