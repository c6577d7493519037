/**
 * Small DSP helpers for audio checks: a sine generator and a Goertzel detector. Used by the
 * simulator (a WhatsApp user "speaks" a tone) and by tests ("a tone sent one way is heard the
 * other way").
 */

/** `durationMs` of a sine tone as 16-bit PCM samples (mono). */
export function sine(freqHz: number, sampleRate: number, durationMs: number, amplitude = 0.3, phase0 = 0): Int16Array {
  const n = Math.round((sampleRate * durationMs) / 1000);
  const out = new Int16Array(n);
  const step = (2 * Math.PI * freqHz) / sampleRate;
  for (let i = 0; i < n; i++) out[i] = Math.round(Math.sin(phase0 + step * i) * amplitude * 32767);
  return out;
}

/** A continuous tone cut into frames of `frameMs` (phase continuous across frames). */
export class ToneSource {
  private phase = 0;
  private readonly step: number;
  constructor(
    readonly freqHz: number,
    readonly sampleRate: number,
    readonly amplitude = 0.3,
  ) {
    this.step = (2 * Math.PI * freqHz) / sampleRate;
  }
  next(frameMs = 20): Int16Array {
    const n = Math.round((this.sampleRate * frameMs) / 1000);
    const out = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      out[i] = Math.round(Math.sin(this.phase) * this.amplitude * 32767);
      this.phase += this.step;
    }
    this.phase %= 2 * Math.PI;
    return out;
  }
}

/** Goertzel power of `freqHz` in `samples`, normalised by the signal's total energy (0..1). */
export function toneRatio(samples: Int16Array, freqHz: number, sampleRate: number): number {
  const n = samples.length;
  if (n === 0) return 0;
  const k = (2 * Math.cos((2 * Math.PI * freqHz) / sampleRate));
  let s1 = 0;
  let s2 = 0;
  let energy = 0;
  for (let i = 0; i < n; i++) {
    const x = samples[i]! / 32768;
    energy += x * x;
    const s0 = x + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  if (energy === 0) return 0;
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  // A pure sine of N samples gives power ~ (N/2)^2 * A^2/... and energy ~ N*A^2/2: ratio -> 1.
  return Math.min(1, (2 * power) / (n * energy));
}

/** Root-mean-square level of the samples, 0..1 of full scale. */
export function rms(samples: Int16Array): number {
  if (samples.length === 0) return 0;
  let e = 0;
  for (const s of samples) e += (s / 32768) ** 2;
  return Math.sqrt(e / samples.length);
}

/**
 * Whether `samples` carry a tone at `freqHz`: loud enough and most of the energy at that
 * frequency. Checked over windows of 100 ms; `minShare` of the windows must match.
 */
export function hasTone(
  samples: Int16Array,
  freqHz: number,
  sampleRate: number,
  opts: { minRms?: number; minRatio?: number; minShare?: number; windowMs?: number } = {},
): boolean {
  return toneWindows(samples, freqHz, sampleRate, opts).share >= (opts.minShare ?? 0.5);
}

export function toneWindows(
  samples: Int16Array,
  freqHz: number,
  sampleRate: number,
  opts: { minRms?: number; minRatio?: number; windowMs?: number } = {},
): { windows: number; matching: number; share: number } {
  const win = Math.round((sampleRate * (opts.windowMs ?? 100)) / 1000);
  let windows = 0;
  let matching = 0;
  for (let off = 0; off + win <= samples.length; off += win) {
    const w = samples.subarray(off, off + win);
    windows++;
    if (rms(w) >= (opts.minRms ?? 0.01) && toneRatio(w, freqHz, sampleRate) >= (opts.minRatio ?? 0.5)) matching++;
  }
  return { windows, matching, share: windows ? matching / windows : 0 };
}
