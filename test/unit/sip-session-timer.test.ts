/** RFC 4028 negotiation and the session timer's schedule (fake timers; the wire is in test/e2e/sip-session-timer.test.ts). */
import sip from 'sip';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { headerText } from '../../src/sip/headers.js';
import { inviteHeaders, parseSessionExpires, SessionTimer, termsForOffer, termsFromAnswer } from '../../src/sip/session-timer.js';
import { silentLogger } from '../../src/util/log.js';

const ON = { expiresSec: 1800, minSec: 90 };
const OFF = { expiresSec: 0, minSec: 90 };

describe('negotiation', () => {
  it('reads the compact form x: as Session-Expires', () => {
    expect(headerText(sip.parse('UPDATE sip:a@b SIP/2.0\r\nx: 600;refresher=uas\r\n\r\n')!, 'session-expires')).toBe('600;refresher=uas');
  });

  it('parses Session-Expires', () => {
    expect(parseSessionExpires('1800;refresher=uac')).toEqual({ sec: 1800, refresher: 'uac' });
    expect(parseSessionExpires(' 90 ; refresher = UAS')).toEqual({ sec: 90, refresher: 'uas' });
    expect(parseSessionExpires('600')).toEqual({ sec: 600 });
    expect(parseSessionExpires('abc')).toBeUndefined();
    expect(parseSessionExpires(undefined)).toBeUndefined();
  });

  it('UAC: asks only when configured; the 2xx decides, and without one we refresh', () => {
    expect(inviteHeaders(ON)).toEqual({ supported: 'timer', 'session-expires': '1800', 'min-se': '90' });
    expect(inviteHeaders(OFF)).toEqual({});
    expect(termsFromAnswer(ON, '900;refresher=uas')).toEqual({ intervalSec: 900, refresher: 'remote' });
    expect(termsFromAnswer(ON, '900;refresher=uac')).toEqual({ intervalSec: 900, refresher: 'local' });
    expect(termsFromAnswer(ON, undefined)).toEqual({ intervalSec: 1800, refresher: 'local' });
    expect(termsFromAnswer(OFF, undefined)).toBeUndefined();
  });

  it('UAS: 422 below Min-SE, the peer refreshes when it supports timers, we refresh when it does not', () => {
    expect(termsForOffer(ON, '60', 'timer')).toEqual({ kind: 'too-small', minSec: 90 });
    expect(termsForOffer(ON, '3600;refresher=uac', 'timer')).toEqual({
      kind: 'ok',
      terms: { intervalSec: 1800, refresher: 'remote' },
      headers: { 'session-expires': '1800;refresher=uac', require: 'timer' },
    });
    expect(termsForOffer(ON, '600;refresher=uas', 'timer')).toMatchObject({ terms: { intervalSec: 600, refresher: 'local' }, headers: { 'session-expires': '600;refresher=uas' } });
    expect(termsForOffer(ON, undefined, 'replaces, timer')).toMatchObject({ terms: { intervalSec: 1800, refresher: 'remote' } });
    expect(termsForOffer(ON, undefined, 'replaces')).toEqual({ kind: 'ok', terms: { intervalSec: 1800, refresher: 'local' }, headers: {} });
    expect(termsForOffer(OFF, undefined, 'timer')).toEqual({ kind: 'none' });
    expect(termsForOffer(OFF, '300', 'timer')).toMatchObject({ terms: { intervalSec: 300, refresher: 'remote' } });
  });
});

describe('SessionTimer', () => {
  afterEach(() => vi.useRealTimers());

  it('refreshes at half the interval; 481 expires the session', async () => {
    vi.useFakeTimers();
    const statuses = [200, 481];
    const refreshes: number[] = [];
    const expired: string[] = [];
    new SessionTimer({ intervalSec: 10, refresher: 'local' }, {
      refresh: async () => (refreshes.push(Date.now()), { status: statuses.shift()! }),
      expire: (c) => expired.push(c),
    }, silentLogger());
    const t0 = Date.now();
    await vi.advanceTimersByTimeAsync(5000);
    expect(refreshes.map((t) => t - t0)).toEqual([5000]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(refreshes.map((t) => t - t0)).toEqual([5000, 10000]);
    expect(expired).toEqual(['session refresh failed with 481']);
  });

  it('peer refresher: expires at interval - min(32 s, interval/3) unless refreshed', async () => {
    vi.useFakeTimers();
    const expired: string[] = [];
    const t = new SessionTimer({ intervalSec: 90, refresher: 'remote' }, { refresh: async () => ({ status: 200 }), expire: (c) => expired.push(c) }, silentLogger());
    await vi.advanceTimersByTimeAsync(59_000);
    t.refreshed(); // the peer's re-INVITE / UPDATE
    await vi.advanceTimersByTimeAsync(59_999);
    expect(expired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(expired).toHaveLength(1);
  });

  it('a refused refresh is retried; it expires when the interval runs out', async () => {
    vi.useFakeTimers();
    const expired: string[] = [];
    let n = 0;
    new SessionTimer({ intervalSec: 20, refresher: 'local' }, { refresh: async () => (n++, { status: 500 }), expire: (c) => expired.push(c) }, silentLogger());
    await vi.advanceTimersByTimeAsync(20_000);
    expect(n).toBeGreaterThan(1);
    expect(expired[0]).toMatch(/ran out/);
  });
});
