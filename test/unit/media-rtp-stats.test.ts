import { describe, expect, it } from 'vitest';
import { RtpReceiveStats } from '../../src/media/rtp-stats.js';

describe('RTP receive statistics (RFC 3550)', () => {
  it('counts nothing lost and no jitter for a perfect 20 ms stream', () => {
    const s = new RtpReceiveStats(8000);
    for (let i = 0; i < 100; i++) s.packet(1, 65500 + i, 1000 + i * 160, i * 20); // wraps the sequence
    expect(s.packets).toBe(100);
    expect(s.lost).toBe(0);
    expect(s.jitterMs).toBeCloseTo(0, 5);
  });

  it('counts gaps in the sequence as lost', () => {
    const s = new RtpReceiveStats(8000);
    for (let i = 0; i < 100; i++) if (i % 10 !== 3) s.packet(1, i, i * 160, i * 20);
    expect(s.lost).toBe(10);
    expect(s.lossRatio).toBeCloseTo(0.1, 5);
  });

  it('estimates jitter from arrival-time spread', () => {
    const s = new RtpReceiveStats(48000);
    for (let i = 0; i < 500; i++) s.packet(7, i, i * 960, i * 20 + (i % 2 === 0 ? 0 : 10));
    // |D| is 10 ms on every packet: J converges to 10 ms.
    expect(s.jitterMs).toBeGreaterThan(9);
    expect(s.jitterMs).toBeLessThan(10.5);
  });

  it('starts afresh on a new SSRC, keeping the earlier totals', () => {
    const s = new RtpReceiveStats(8000);
    for (let i = 0; i < 10; i++) s.packet(1, i, i * 160, i * 20);
    for (let i = 0; i < 10; i++) if (i !== 5) s.packet(2, 40000 + i, 9999 + i * 160, 200 + i * 20);
    expect(s.packets).toBe(19);
    expect(s.lost).toBe(1);
  });
});
