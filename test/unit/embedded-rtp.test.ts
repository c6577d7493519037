import { describe, expect, it } from 'vitest';
import { RtpOutStream, TelephoneEventRelay, buildRtp, parseRtp, parseTelephoneEvent } from '../../src/media/embedded/rtp.js';

describe('RTP restamping (RtpOutStream)', () => {
  it('our own SSRC, seq +1 per packet and ts +frame per frame, wrapping', () => {
    const s = new RtpOutStream(8000, 0x1234);
    const frames = Array.from({ length: 70000 }, (_, i) => s.frame(160, i * 20));
    expect(frames[0]!.marker).toBe(true);
    let bad = 0;
    for (let i = 1; i < frames.length; i++) {
      if (((frames[i]!.seq - frames[i - 1]!.seq) & 0xffff) !== 1) bad++;
      if (((frames[i]!.ts - frames[i - 1]!.ts) >>> 0) !== 160) bad++;
      if (frames[i]!.marker) bad++;
    }
    expect(bad).toBe(0);
    expect(s.ssrc).toBe(0x1234);
  });

  it('jitter below three frames keeps timestamps contiguous', () => {
    const s = new RtpOutStream(48000);
    const a = s.frame(960, 0);
    const b = s.frame(960, 70); // 50 ms late
    const c = s.frame(960, 71);
    const d = s.frame(960, 72);
    expect((b.ts - a.ts) >>> 0).toBe(960);
    expect((c.ts - b.ts) >>> 0).toBe(960);
    expect((d.ts - c.ts) >>> 0).toBe(960);
    expect(b.marker || c.marker || d.marker).toBe(false);
  });

  it('an input gap (hold, new source after a pause) jumps ts to real time with the marker; seq stays +1', () => {
    const s = new RtpOutStream(8000);
    const a = s.frame(160, 0);
    const b = s.frame(160, 20);
    const c = s.frame(160, 2020); // 2 s of nothing
    expect((c.seq - b.seq) & 0xffff).toBe(1);
    expect(c.marker).toBe(true);
    expect((c.ts - a.ts) >>> 0).toBe(2020 * 8); // real time since the first frame, whole frames
    const d = s.frame(160, 2040);
    expect((d.ts - c.ts) >>> 0).toBe(160);
    expect(d.marker).toBe(false);
  });
});

describe('RFC 4733 relay (TelephoneEventRelay)', () => {
  const ev = (event: number, end: boolean, duration: number): Buffer => {
    const b = Buffer.from([event, (end ? 0x80 : 0) | 10, 0, 0]);
    b.writeUInt16BE(duration, 2);
    return b;
  };

  it('one output ts per event, marker on its first packet, own seq, end bits and durations kept', () => {
    const out = new RtpOutStream(8000);
    out.frame(160, 0);
    const relay = new TelephoneEventRelay(8000, 8000);
    const pkts = [ev(5, false, 160), ev(5, false, 320), ev(5, true, 480), ev(5, true, 480), ev(5, true, 480)].map((p, i) =>
      relay.relay(99, 5000, p, out, 10 + i * 20),
    );
    expect(pkts.every(Boolean)).toBe(true);
    expect(new Set(pkts.map((p) => p!.ts)).size).toBe(1);
    expect(pkts.map((p) => p!.marker)).toEqual([true, false, false, false, false]);
    for (let i = 1; i < pkts.length; i++) expect((pkts[i]!.seq - pkts[i - 1]!.seq) & 0xffff).toBe(1);
    const decoded = pkts.map((p) => parseTelephoneEvent(p!.payload)!);
    expect(decoded.map((d) => d.duration)).toEqual([160, 320, 480, 480, 480]);
    expect(decoded.map((d) => d.end)).toEqual([false, false, true, true, true]);
    expect(decoded.every((d) => d.event === 5 && d.volume === 10)).toBe(true);
    // A late duplicate of the finished event after another one started is dropped.
    const next = relay.relay(99, 6000, ev(7, false, 160), out, 200);
    expect(next!.marker).toBe(true);
    expect(next!.ts).not.toBe(pkts[0]!.ts);
    expect(relay.relay(99, 5000, ev(5, true, 480), out, 210)).toBeUndefined();
  });

  it('converts durations between event clocks', () => {
    const out = new RtpOutStream(48000);
    const r = new TelephoneEventRelay(8000, 48000).relay(1, 1, ev(1, false, 800), out, 0)!;
    expect(parseTelephoneEvent(r.payload)!.duration).toBe(4800);
  });
});

describe('RTP parsing', () => {
  it('skips CSRCs, header extension and padding; ignores RTCP', () => {
    const payload = Buffer.from([1, 2, 3]);
    const base = buildRtp(0, true, 7, 1000, 42, payload);
    expect(parseRtp(base)).toMatchObject({ pt: 0, marker: true, seq: 7, ts: 1000, ssrc: 42 });
    // CC=1, X=1 (one 32-bit word), P=1 (2 padding bytes)
    const pkt = Buffer.concat([
      Buffer.from([0x80 | 0x20 | 0x10 | 0x01, 0x00, 0, 7, 0, 0, 3, 232, 0, 0, 0, 42]),
      Buffer.from([0, 0, 0, 9]),
      Buffer.from([0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]),
      payload,
      Buffer.from([0, 2]),
    ]);
    expect([...parseRtp(pkt)!.payload]).toEqual([1, 2, 3]);
    expect(parseRtp(Buffer.from([0x80, 200, 0, 6, ...new Array(24).fill(0)]))).toBeUndefined();
  });
});
