import { describe, expect, it } from 'vitest';
import { Resampler } from '../../src/media/codecs/resampler.js';
import { rms, sine, toneRatio } from '../../src/media/audio/tone.js';

function runFrames(r: Resampler, pcm: Int16Array, frameMs = 20): Int16Array {
  const frame = (r.inRate * frameMs) / 1000;
  const parts: Int16Array[] = [];
  for (let off = 0; off < pcm.length; off += frame) parts.push(r.process(pcm.subarray(off, off + frame)));
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const settle = (x: Int16Array, rate: number): Int16Array => x.subarray(Math.round(rate * 0.05));

describe('polyphase FIR resampler', () => {
  for (const [from, to] of [
    [48000, 16000],
    [48000, 8000],
    [16000, 8000],
    [8000, 16000],
    [16000, 48000],
    [8000, 48000],
  ] as const) {
    it(`${from} -> ${to}: 20 ms frames give 20 ms frames and a 1 kHz tone stays 1 kHz at the same level`, () => {
      const r = new Resampler(from, to);
      const pcm = sine(1000, from, 1000, 0.3);
      const frame = r.process(pcm.subarray(0, from / 50));
      expect(frame.length).toBe(to / 50);
      const out = settle(runFrames(new Resampler(from, to), pcm), to);
      expect(toneRatio(out, 1000, to)).toBeGreaterThan(0.99);
      expect(rms(out)).toBeGreaterThan(0.3 * 0.707 * 0.95);
      expect(rms(out)).toBeLessThan(0.3 * 0.707 * 1.05);
    });
  }

  // 48k->8k is the generic polyphase path; 16k->8k the folded (symmetric decimation) one and
  // 8k->16k the paired (symmetric doubling) one.
  for (const [from, to] of [
    [48000, 8000],
    [16000, 8000],
    [8000, 16000],
    [16000, 48000],
  ] as const) {
    it(`${from} -> ${to}: frame by frame equals one shot, and into a caller's buffer equals allocating`, () => {
      const pcm = sine(700, from, 300, 0.3);
      const a = runFrames(new Resampler(from, to), pcm);
      const b = new Resampler(from, to).process(pcm);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      const r = new Resampler(from, to);
      const frame = from / 50;
      const scratch = new Int16Array(r.outputLength(frame) + 8).fill(12345);
      const c = new Int16Array(b.length);
      let o = 0;
      for (let off = 0; off < pcm.length; off += frame) {
        const view = r.process(pcm.subarray(off, off + frame), scratch);
        expect(view.buffer).toBe(scratch.buffer);
        c.set(view, o);
        o += view.length;
      }
      expect(o).toBe(b.length);
      expect(Buffer.from(c.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    });
  }

  it('anti-aliasing: 6 kHz at 48 kHz does not fold into 2 kHz at 8 kHz (> 60 dB down)', () => {
    const out = settle(new Resampler(48000, 8000).process(sine(6000, 48000, 500, 0.5)), 8000);
    const level = rms(out) / (0.5 * 0.707);
    expect(20 * Math.log10(level)).toBeLessThan(-60);
  });

  it('anti-aliasing: 5 kHz at 16 kHz is removed when going to 8 kHz; 3 kHz passes', () => {
    const gone = settle(new Resampler(16000, 8000).process(sine(5000, 16000, 500, 0.5)), 8000);
    expect(20 * Math.log10(rms(gone) / (0.5 * 0.707))).toBeLessThan(-60);
    const kept = settle(new Resampler(16000, 8000).process(sine(3000, 16000, 500, 0.5)), 8000);
    expect(toneRatio(kept, 3000, 8000)).toBeGreaterThan(0.99);
    expect(rms(kept) / (0.5 * 0.707)).toBeGreaterThan(0.9);
  });

  it('anti-imaging: 1 kHz at 8 kHz up to 48 kHz has no image at 7 kHz', () => {
    const out = settle(new Resampler(8000, 48000).process(sine(1000, 8000, 500, 0.5)), 48000);
    // Energy outside 1 kHz: total minus the tone's share.
    const ratio = toneRatio(out, 7000, 48000) + toneRatio(out, 9000, 48000);
    expect(ratio).toBeLessThan(1e-6);
  });
});
