/**
 * ITU-T G.711 µ-law (PCMU) and A-law (PCMA), table driven. Decoding is a 256-entry table;
 * encoding a 65536-entry table indexed by the 16-bit sample (built once at load, 128 KiB).
 * The bit-exact reference is the classic Sun/CCITT g711.c (µ-law with bias 0x84 on 14-bit
 * magnitudes, A-law on 13-bit magnitudes with the even-bit inversion 0x55).
 */

function ulawEncodeSample(sample: number): number {
  const BIAS = 0x84;
  const CLIP = 32635;
  let s = sample;
  const sign = s < 0 ? 0x80 : 0;
  if (s < 0) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function ulawDecodeSample(byte: number): number {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
  return u & 0x80 ? -magnitude : magnitude;
}

const ALAW_SEG_END = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];

function alawEncodeSample(sample: number): number {
  let pcm = sample >> 3; // 13-bit
  let mask: number;
  if (pcm >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    pcm = -pcm - 1;
  }
  let seg = 0;
  while (seg < 8 && pcm > ALAW_SEG_END[seg]!) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  let aval = seg << 4;
  aval |= seg < 2 ? (pcm >> 1) & 0x0f : (pcm >> seg) & 0x0f;
  return aval ^ mask;
}

function alawDecodeSample(byte: number): number {
  const a = byte ^ 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

export const ULAW_DECODE = Int16Array.from({ length: 256 }, (_, i) => ulawDecodeSample(i));
export const ALAW_DECODE = Int16Array.from({ length: 256 }, (_, i) => alawDecodeSample(i));
const ULAW_ENCODE = new Uint8Array(65536);
const ALAW_ENCODE = new Uint8Array(65536);
for (let i = 0; i < 65536; i++) {
  ULAW_ENCODE[i] = ulawEncodeSample(i - 32768);
  ALAW_ENCODE[i] = alawEncodeSample(i - 32768);
}

export function ulawEncode(sample: number): number {
  return ULAW_ENCODE[(sample | 0) + 32768]!;
}
export function ulawDecode(byte: number): number {
  return ULAW_DECODE[byte & 0xff]!;
}
export function alawEncode(sample: number): number {
  return ALAW_ENCODE[(sample | 0) + 32768]!;
}
export function alawDecode(byte: number): number {
  return ALAW_DECODE[byte & 0xff]!;
}

/** Encode 16-bit PCM to µ-law (one byte per sample). */
export function encodePcmu(pcm: Int16Array, out: Uint8Array = new Uint8Array(pcm.length)): Uint8Array {
  for (let i = 0; i < pcm.length; i++) out[i] = ULAW_ENCODE[pcm[i]! + 32768]!;
  return out;
}
export function decodePcmu(data: Uint8Array, out: Int16Array = new Int16Array(data.length)): Int16Array {
  for (let i = 0; i < data.length; i++) out[i] = ULAW_DECODE[data[i]!]!;
  return out;
}
export function encodePcma(pcm: Int16Array, out: Uint8Array = new Uint8Array(pcm.length)): Uint8Array {
  for (let i = 0; i < pcm.length; i++) out[i] = ALAW_ENCODE[pcm[i]! + 32768]!;
  return out;
}
export function decodePcma(data: Uint8Array, out: Int16Array = new Int16Array(data.length)): Int16Array {
  for (let i = 0; i < data.length; i++) out[i] = ALAW_DECODE[data[i]!]!;
  return out;
}
