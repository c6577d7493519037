import { describe, expect, it, vi } from 'vitest';
import { parseWebhook } from '../../src/whatsapp/webhook.js';
import { createStaleConnectFilter } from '../../src/whatsapp/intake.js';
import { WhatsAppCounters } from '../../src/whatsapp/counters.js';
import { silentLogger } from '../../src/util/log.js';
import type { WaConnectEvent } from '../../src/whatsapp/types.js';
import { buildStatusWebhook, buildUserConnectWebhook } from '../../src/simulator/webhook-sender.js';

const target = { phoneNumberId: '436666719526789', businessNumber: '13175551399' };
const connect = (over: Record<string, unknown> = {}, name = 'Ana') => {
  const p = buildUserConnectWebhook({ ...target, callId: 'wacid.OK', userWaId: '5511987654321', userName: name, sdp: 'v=0\r\n' }) as any;
  Object.assign(p.entry[0].changes[0].value.calls[0], over);
  return p;
};

describe('strict input: fields that travel toward SIP', () => {
  it.each([
    ['CR/LF in the call id', { id: 'wacid.A\r\nAlert-Info: <x>' }, 'call-id'],
    ['a call id without the wacid prefix', { id: 'X' }, 'call-id'],
    ['a number with a plus and letters', { from: '+55abc' }, 'number'],
    ['a number with CR/LF', { from: '5511\r\nP-Asserted-Identity: <sip:1@x>' }, 'number'],
    ['a number of the wrong type', { from: 5511987654321 }, 'number'],
    ['an SDP over 64 KiB', { session: { sdp_type: 'offer', sdp: 'v=0\r\n'.padEnd(70_000, 'a') } }, 'sdp'],
  ])('drops a connect with %s, naming the check', (_n, over, check) => {
    const r = parseWebhook(connect(over));
    expect(r.events).toEqual([]);
    expect(r.ignored).toHaveLength(1);
    expect(r.ignored[0]!.invalid).toBe(check);
  });

  it('drops an event whose metadata.phone_number_id is not a Graph id, keeps events of other changes', () => {
    const bad = connect();
    bad.entry[0].changes[0].value.metadata.phone_number_id = '4366\r\nX: y';
    bad.entry[0].changes.push(connect().entry[0].changes[0]);
    const r = parseWebhook(bad);
    expect(r.events.map((e) => e.kind)).toEqual(['connect']);
    expect(r.ignored[0]).toMatchObject({ invalid: 'phone-number-id' });
  });

  it('keeps the call but leaves out a profile name with NUL, ESC, DEL, CR/LF or bidi overrides', () => {
    for (const name of ['A\u0000na', 'A\u001b[2Jna', 'Ana\u007f', 'Ana\r\nX: y', 'Ana\u202Eevil', 'x'.repeat(300)]) {
      const r = parseWebhook(connect({}, name));
      const ev = r.events[0] as WaConnectEvent;
      expect(ev.callId).toBe('wacid.OK');
      expect(ev.userName).toBeUndefined();
      expect(r.notes).toEqual([expect.objectContaining({ kind: 'name-dropped', callId: 'wacid.OK' })]);
    }
    // emoji (with ZWJ) and accents are printable
    const ok = parseWebhook(connect({}, 'Zoë 👩‍👩‍👧 Souza')).events[0] as WaConnectEvent;
    expect(ok.userName).toBe('Zoë 👩‍👩‍👧 Souza');
  });

  it('a formatted display number becomes digits; a hostile one drops the event', () => {
    const p = connect();
    p.entry[0].changes[0].value.metadata.display_phone_number = '+1 317-555-1399';
    expect(parseWebhook(p).events[0]).toMatchObject({ businessNumber: '13175551399' });
    p.entry[0].changes[0].value.metadata.display_phone_number = '1317\r\nVia: x';
    expect(parseWebhook(p).ignored[0]).toMatchObject({ invalid: 'number' });
  });

  it('a status with a non-word status is dropped', () => {
    const p = buildStatusWebhook({ ...target, callId: 'wacid.4', userWaId: '1', status: 'RINGING' } as never) as any;
    p.entry[0].changes[0].value.statuses[0].status = 'RINGING\r\n';
    expect(parseWebhook(p).ignored[0]).toMatchObject({ invalid: 'status', callId: 'wacid.4' });
  });

  it('caps items per POST across entries, changes and arrays (a huge array costs no more than the cap)', () => {
    const p = connect();
    const calls = p.entry[0].changes[0].value.calls;
    for (let i = 0; i < 200_000; i++) calls.push(0);
    const t0 = performance.now();
    const r = parseWebhook(p, { maxEvents: 10 });
    const ms = performance.now() - t0;
    expect(r.events).toHaveLength(1);
    expect(r.ignored.at(-1)).toMatchObject({ overCap: 200_001 - 10 });
    expect(ms).toBeLessThan(500); // generous: bounded by the cap, not the array (a full parse of 200k would take seconds)
  });
});

describe('stale connect webhooks', () => {
  it('a user-initiated connect older than maxWebhookAgeSec is not passed on and is rejected on WhatsApp', async () => {
    const reject = vi.fn(async () => undefined);
    const counters = new WhatsAppCounters();
    const now = 1_764_000_000_000;
    const filter = createStaleConnectFilter({ api: { reject }, log: silentLogger(), maxAgeSec: 60, counters, now: () => now });
    const fresh = parseWebhook(connect({ timestamp: String(now / 1000 - 59) })).events;
    const stale = parseWebhook(connect({ id: 'wacid.OLD', timestamp: String(now / 1000 - 3600) })).events;
    expect(filter([...fresh, ...stale])).toEqual(fresh);
    expect(reject).toHaveBeenCalledWith('436666719526789', 'wacid.OLD');
    expect(counters.get('webhook_connect_stale')).toBe(1);
  });
});
