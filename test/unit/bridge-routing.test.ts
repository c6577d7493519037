import { describe, expect, it } from 'vitest';
import { route, withinHours } from '../../src/bridge/routing.js';
import { buildConfig } from '../../src/config/load.js';

const cfg = buildConfig({
  routing: {
    default: 'sip:operator@pbx.local',
    rules: [
      { name: 'brazil-vip', businessNumber: '+1 317 555 1399', callerPrefix: '55', target: 'sip:pt-queue@pbx.local' },
      {
        name: 'sales-hours',
        phoneNumberId: '111',
        hours: { timezone: 'America/New_York', days: [1, 2, 3, 4, 5], open: '09:00', close: '17:00' },
        target: 'sip:sales@pbx.local',
      },
      { name: 'sales-closed', phoneNumberId: '111', target: 'sip:voicemail@pbx.local' },
    ],
  },
});

const base = { phoneNumberId: '999', businessNumber: '13175551399', callerWaId: '5511987654321', at: new Date('2026-11-23T15:00:00Z') };

describe('routing', () => {
  it('matches business number (digits only) and caller prefix', () => {
    expect(route(cfg.routing, base)).toEqual({ target: 'sip:pt-queue@pbx.local', rule: 'brazil-vip' });
  });

  it('falls back to the default', () => {
    expect(route(cfg.routing, { ...base, callerWaId: '4915112345678' })).toEqual({ target: 'sip:operator@pbx.local', rule: 'default' });
  });

  it('routes on opening hours in the rule time zone, then falls through to the next rule', () => {
    // Monday 2026-11-23 15:00 UTC = 10:00 in New York: open.
    expect(route(cfg.routing, { ...base, phoneNumberId: '111', businessNumber: '1', at: new Date('2026-11-23T15:00:00Z') }).rule).toBe('sales-hours');
    // Monday 23:00 UTC = 18:00 in New York: closed.
    expect(route(cfg.routing, { ...base, phoneNumberId: '111', businessNumber: '1', at: new Date('2026-11-23T23:00:00Z') }).rule).toBe('sales-closed');
    // Sunday: closed.
    expect(route(cfg.routing, { ...base, phoneNumberId: '111', businessNumber: '1', at: new Date('2026-11-22T15:00:00Z') }).rule).toBe('sales-closed');
  });

  it('hours that wrap past midnight', () => {
    const night = { timezone: 'UTC', days: [0, 1, 2, 3, 4, 5, 6], open: '22:00', close: '06:00' };
    expect(withinHours(night, new Date('2026-11-23T23:30:00Z'))).toBe(true);
    expect(withinHours(night, new Date('2026-11-23T05:59:00Z'))).toBe(true);
    expect(withinHours(night, new Date('2026-11-23T12:00:00Z'))).toBe(false);
  });
});
