/**
 * Minimal WAV (RIFF) helpers for tests, no dependencies.
 *
 * - `encodeWav` / `writeWavFile`: 16-bit PCM mono.
 * - `decodeWav` / `readWavFile`: integer PCM (8/16/24/32-bit) or 32-bit float, any rate and
 *   channel count, mixed down to mono Int16Array. Tolerates files still being written (a data
 *   chunk size of 0 or past the end of the file, as libsndfile leaves it until it closes the
 *   file): everything up to the end of the file is taken, cut to whole frames.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { wavHeader } from '../../src/media/audio/wav.js';

export interface DecodedWav {
  /** Mono samples (channels averaged). */
  samples: Int16Array;
  sampleRate: number;
  /** Channel count in the file (before the mix-down). */
  channels: number;
  /** Bits per sample in the file. */
  bitsPerSample: number;
}

/** A 44-byte-header WAV file with 16-bit PCM mono samples. */
export function encodeWav(samples: Int16Array, sampleRate: number): Buffer {
  const dataBytes = samples.length * 2;
  const buf = Buffer.alloc(44 + dataBytes);
  wavHeader(dataBytes, sampleRate, 16).copy(buf, 0);
  for (let i = 0; i < samples.length; i++) buf.writeInt16LE(samples[i]!, 44 + i * 2);
  return buf;
}

export async function writeWavFile(path: string, samples: Int16Array, sampleRate: number): Promise<void> {
  await writeFile(path, encodeWav(samples, sampleRate));
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

export function decodeWav(input: Uint8Array): DecodedWav {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a RIFF/WAVE file');
  }
  let fmt: { format: number; channels: number; sampleRate: number; blockAlign: number; bits: number } | undefined;
  let off = 12;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      if (body + 16 > buf.length) throw new Error('truncated fmt chunk');
      let format = buf.readUInt16LE(body);
      const channels = buf.readUInt16LE(body + 2);
      const sampleRate = buf.readUInt32LE(body + 4);
      const blockAlign = buf.readUInt16LE(body + 12);
      const bits = buf.readUInt16LE(body + 14);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first 2 bytes of the SubFormat GUID.
      if (format === WAVE_FORMAT_EXTENSIBLE && size >= 40 && body + 26 <= buf.length) format = buf.readUInt16LE(body + 24);
      fmt = { format, channels, sampleRate, blockAlign, bits };
    } else if (id === 'data') {
      if (!fmt) throw new Error('data chunk before fmt chunk');
      const available = buf.length - body;
      // Size 0 / 0xFFFFFFFF / past EOF: the writer has not finalised the header yet.
      const len = size === 0 || size > available ? available : size;
      return decodeData(buf.subarray(body, body + len), fmt);
    }
    off = body + size + (size & 1);
  }
  throw new Error(fmt ? 'no data chunk' : 'no fmt chunk');
}

function decodeData(
  data: Buffer,
  fmt: { format: number; channels: number; sampleRate: number; blockAlign: number; bits: number },
): DecodedWav {
  const { format, channels, sampleRate, bits } = fmt;
  if (channels < 1) throw new Error(`bad channel count ${channels}`);
  const bytesPerSample = bits / 8;
  const isFloat = format === WAVE_FORMAT_IEEE_FLOAT;
  if (!(format === WAVE_FORMAT_PCM && [8, 16, 24, 32].includes(bits)) && !(isFloat && bits === 32)) {
    throw new Error(`unsupported WAV format ${format} with ${bits} bits`);
  }
  const frameBytes = bytesPerSample * channels;
  const frames = Math.floor(data.length / frameBytes);
  const out = new Int16Array(frames);
  const readOne = (pos: number): number => {
    // Returns the sample as a float in -1..1.
    if (isFloat) return data.readFloatLE(pos);
    switch (bits) {
      case 8:
        return (data[pos]! - 128) / 128;
      case 16:
        return data.readInt16LE(pos) / 32768;
      case 24:
        return data.readIntLE(pos, 3) / 8388608;
      default:
        return data.readInt32LE(pos) / 2147483648;
    }
  };
  for (let f = 0; f < frames; f++) {
    let acc = 0;
    const base = f * frameBytes;
    for (let c = 0; c < channels; c++) acc += readOne(base + c * bytesPerSample);
    const v = Math.round((acc / channels) * 32768);
    out[f] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return { samples: out, sampleRate, channels, bitsPerSample: bits };
}

export async function readWavFile(path: string): Promise<DecodedWav> {
  return decodeWav(await readFile(path));
}
