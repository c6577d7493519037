import { describe, expect, it } from 'vitest';
import { alawDecode, alawEncode, decodePcma, decodePcmu, encodePcma, encodePcmu, ulawDecode, ulawEncode } from '../../src/media/codecs/g711.js';
import { ulawEncode as refUlawEncode, ulawDecode as refUlawDecode } from '../harness/rtp-endpoint.js';
import { sine } from '../../src/media/audio/tone.js';

function snrDb(ref: Int16Array, got: Int16Array): number {
  let sig = 0;
  let err = 0;
  for (let i = 0; i < ref.length; i++) {
    sig += ref[i]! ** 2;
    err += (got[i]! - ref[i]!) ** 2;
  }
  return 10 * Math.log10(sig / Math.max(err, 1e-9));
}

describe('G.711', () => {
  it('µ-law matches the reference encoder/decoder for every sample and code', () => {
    let diff = 0;
    for (let s = -32768; s <= 32767; s++) if (ulawEncode(s) !== refUlawEncode(s)) diff++;
    expect(diff).toBe(0);
    for (let b = 0; b < 256; b++) expect(ulawDecode(b) === refUlawDecode(b)).toBe(true); // -0 == 0
  });

  it('known code points (G.711 tables)', () => {
    expect(ulawEncode(0)).toBe(0xff);
    expect(ulawDecode(0xff)).toBe(0);
    expect(ulawDecode(0x80)).toBe(32124);
    expect(ulawDecode(0x00)).toBe(-32124);
    expect(alawEncode(0)).toBe(0xd5);
    expect(alawDecode(0xd5)).toBe(8);
    expect(alawDecode(0x55)).toBe(-8);
    expect(alawDecode(0xaa)).toBe(32256);
    expect(alawDecode(0x2a)).toBe(-32256);
  });

  it('decode -> encode is the identity on codes (A-law all, µ-law all but negative zero)', () => {
    for (let b = 0; b < 256; b++) {
      expect(alawEncode(alawDecode(b))).toBe(b);
      if (b !== 0x7f) expect(ulawEncode(ulawDecode(b))).toBe(b);
    }
  });

  it('a 1 kHz tone round-trips with the ~38 dB SNR of log PCM', () => {
    const pcm = sine(1000, 8000, 500, 0.5);
    expect(snrDb(pcm, decodePcmu(encodePcmu(pcm)))).toBeGreaterThan(33);
    expect(snrDb(pcm, decodePcma(encodePcma(pcm)))).toBeGreaterThan(33);
  });
});
