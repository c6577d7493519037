import { describe, expect, it } from 'vitest';
import { CallTraces, redact, type TraceUpdate } from '../../src/ops/trace.js';

describe('call traces (ladder data)', () => {
  it('records arrows in order with offsets, under any of the call names', () => {
    let now = 1000;
    const t = new CallTraces({}, () => now);
    t.start('wacid.A', { direction: 'inbound', waCallId: 'wacid.A', whatsappUser: '1555' });
    now = 1003;
    t.arrow('wacid.A', 'whatsapp', 'bridge', 'webhook', 'connect', '{"sdp":"…"}');
    t.alias('wacid.A', 'sip-call-1', { sipCallId: 'sip-call-1' });
    now = 1010;
    t.arrow('sip-call-1', 'bridge', 'pbx', 'sip', 'INVITE', 'INVITE sip:q@pbx SIP/2.0');
    const trace = t.get('sip-call-1')!;
    expect(trace.arrows.map((a) => [a.t, a.label])).toEqual([
      [3, 'connect'],
      [10, 'INVITE'],
    ]);
    expect(trace.summary).toMatchObject({ id: 'wacid.A', sipCallId: 'sip-call-1' });
  });

  it('keeps a bounded history and a bounded number of arrows per call', () => {
    const t = new CallTraces({ maxRecent: 3, maxEvents: 2 });
    for (let i = 0; i < 10; i++) {
      t.start(`c${i}`, { direction: 'outbound' });
      t.alias(`c${i}`, `sip${i}`);
      for (let k = 0; k < 5; k++) t.arrow(`c${i}`, 'pbx', 'bridge', 'sip', 'INFO');
      t.end(`c${i}`, 'agent-hung-up');
    }
    expect(t.sizes()).toEqual({ live: 0, aliases: 0, recent: 3, pending: 0, pendingBytes: 0 });
    expect(t.list().recent.map((c) => c.id)).toEqual(['c9', 'c8', 'c7']);
    expect(t.get('c9')!.arrows).toHaveLength(2);
    expect(t.get('c9')!.droppedArrows).toBe(3);
    expect(t.get('c0')).toBeUndefined();
  });

  it('tells listeners of calls and arrows; a listener that throws is dropped, the call goes on', () => {
    const t = new CallTraces();
    const seen: TraceUpdate['type'][] = [];
    t.subscribe((u) => seen.push(u.type));
    t.subscribe(() => {
      throw new Error('broken stream');
    });
    t.start('x', { direction: 'inbound' });
    t.arrow('x', 'media', 'media', 'media', 'DTLS up');
    t.end('x', 'done');
    expect(seen).toEqual(['call', 'arrow', 'call']);
  });

  it('redacts credentials and media keys from message bodies', () => {
    const sip = 'INVITE sip:a@b SIP/2.0\r\nAuthorization: Digest username="agent", response="abc"\r\nVia: x\r\n\r\na=ice-pwd:SECRETPWD\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEY\r\n';
    const out = redact(sip);
    expect(out).not.toContain('response="abc"');
    expect(out).not.toContain('SECRETPWD');
    expect(out).not.toContain('inline:KEY');
    expect(out).toContain('Authorization: [redacted]');
    expect(out).toContain('Via: x');
  });
});

describe('arrows that come before their call has the name', () => {
  it('adopts them when the call starts or learns the name, in time order', () => {
    let now = 0;
    const t = new CallTraces({}, () => now);
    t.arrow('wacid.B', 'whatsapp', 'bridge', 'webhook', 'connect'); // before start()
    now = 2;
    t.start('wacid.B', { direction: 'inbound' });
    now = 3;
    t.arrow('sip-B', 'bridge', 'pbx', 'sip', 'INVITE'); // Call-ID not yet known to the trace
    now = 4;
    t.alias('wacid.B', 'sip-B', { sipCallId: 'sip-B' });
    now = 10;
    t.arrow('sip-B', 'pbx', 'bridge', 'sip', '180 (INVITE)');
    expect(t.get('wacid.B')!.arrows.map((a) => [a.t, a.label])).toEqual([
      [0, 'connect'],
      [3, 'INVITE'],
      [10, '180 (INVITE)'],
    ]);
    expect(t.sizes().pending).toBe(0);
  });

  it('a stranger inventing a Call-ID per message cannot grow the held text past its budget', () => {
    const t = new CallTraces();
    const body = `OPTIONS sip:x SIP/2.0\r\n${'X-Pad: y\r\n'.repeat(800)}`; // about 8 KiB each
    for (let i = 0; i < 10_000; i++) t.arrow(`stranger-${i}`, 'pbx', 'bridge', 'sip', 'OPTIONS', body);
    const { pending, pendingBytes } = t.sizes();
    expect(pending).toBeLessThanOrEqual(2000);
    expect(pendingBytes).toBeLessThanOrEqual(2 * 1024 * 1024);
    // A call that does claim its name later still gets its arrow (the label, at least).
    t.start('stranger-9999', { direction: 'inbound' });
    expect(t.get('stranger-9999')!.arrows.map((a) => a.label)).toEqual(['OPTIONS']);
    expect(t.sizes().pending).toBeLessThan(pending);
  });

  it('forgets names no call claims (bounded)', () => {
    let now = 0;
    const t = new CallTraces({}, () => now);
    for (let i = 0; i < 100; i++) t.arrow(`stray-${i}`, 'pbx', 'bridge', 'sip', 'OPTIONS');
    now = 60_000;
    t.arrow('late', 'pbx', 'bridge', 'sip', 'OPTIONS');
    expect(t.sizes().pending).toBe(1);
  });
});
