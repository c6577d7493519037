import { describe, expect, it } from 'vitest';
import { G722Decoder, G722Encoder } from '../../src/media/codecs/g722.js';
import { decodePcmu, encodePcmu } from '../../src/media/codecs/g711.js';
import { Resampler } from '../../src/media/codecs/resampler.js';
import { sine, toneRatio } from '../../src/media/audio/tone.js';

/** SNR in dB of `got` against `ref`, best over lags 0..maxLag (codec delay). */
function snrDb(ref: Int16Array, got: Int16Array, maxLag = 80, skip = 400): number {
  let best = -Infinity;
  for (let lag = 0; lag <= maxLag; lag++) {
    let sig = 0;
    let err = 0;
    for (let i = skip; i + lag < got.length && i < ref.length; i++) {
      const r = ref[i]!;
      const e = got[i + lag]! - r;
      sig += r * r;
      err += e * e;
    }
    best = Math.max(best, 10 * Math.log10(sig / Math.max(err, 1e-9)));
  }
  return best;
}

function g722RoundTrip(pcm: Int16Array, frame = 320): Int16Array {
  const enc = new G722Encoder();
  const dec = new G722Decoder();
  const out = new Int16Array(pcm.length);
  for (let off = 0; off + frame <= pcm.length; off += frame) {
    const bytes = enc.encode(pcm.subarray(off, off + frame));
    expect(bytes.length).toBe(frame / 2);
    out.set(dec.decode(bytes), off);
  }
  return out;
}

describe('G.722 (64 kbit/s SB-ADPCM)', () => {
  it('1 kHz survives encode -> decode with high SNR', () => {
    const pcm = sine(1000, 16000, 1000, 0.5);
    const out = g722RoundTrip(pcm);
    const snr = snrDb(pcm, out);
    console.info(`[g722] 1 kHz SNR ${snr.toFixed(1)} dB`);
    expect(snr).toBeGreaterThan(25);
    expect(toneRatio(out.subarray(1600), 1000, 16000)).toBeGreaterThan(0.95);
  });

  it('6 kHz survives G.722 (wideband) but not PCMU (narrowband, 8 kHz)', () => {
    const pcm = sine(6000, 16000, 1000, 0.5);
    const out = g722RoundTrip(pcm);
    const snr6 = snrDb(pcm, out);
    console.info(`[g722] 6 kHz SNR ${snr6.toFixed(1)} dB`);
    expect(snr6).toBeGreaterThan(15);
    expect(toneRatio(out.subarray(1600), 6000, 16000)).toBeGreaterThan(0.9);

    // The same tone through a properly filtered 8 kHz PCMU path: nothing of it is left.
    const down = new Resampler(16000, 8000).process(pcm);
    const ulaw = decodePcmu(encodePcmu(down));
    const back = new Resampler(8000, 16000).process(ulaw);
    let e = 0;
    for (let i = 1600; i < back.length; i++) e += (back[i]! / 32768) ** 2;
    const rmsBack = Math.sqrt(e / (back.length - 1600));
    expect(rmsBack).toBeLessThan(0.005); // input rms ~0.35
  });

  it('is deterministic and stateful across frames (split == whole)', () => {
    const pcm = sine(440, 16000, 200, 0.3);
    const whole = new G722Encoder().encode(pcm);
    const enc = new G722Encoder();
    const parts = new Uint8Array(whole.length);
    for (let off = 0; off < pcm.length; off += 320) parts.set(enc.encode(pcm.subarray(off, off + 320)), off / 2);
    expect(Buffer.from(parts).equals(Buffer.from(whole))).toBe(true);
  });

  it('silence encodes to a steady pattern and decodes near zero', () => {
    const out = g722RoundTrip(new Int16Array(3200));
    let max = 0;
    for (const s of out) max = Math.max(max, Math.abs(s));
    expect(max).toBeLessThan(64);
  });
});
