/**
 * Rational polyphase resampler (L/M) with a Kaiser-windowed sinc low-pass: the prototype filter
 * runs at in*L, cut off below min(in, out)/2 so it is both the interpolation image filter and
 * the decimation anti-alias filter. Streaming: history is kept between calls, so 20 ms frames
 * in give continuous output (a fixed group delay of (taps-1)/2 prototype samples).
 *
 * Defaults: pass band to 0.85 x Nyquist of the lower rate, stop band from its Nyquist,
 * 70 dB attenuation. 16k->8k: 3.4 kHz pass, 4 kHz stop, ~95 taps at 16 kHz.
 */

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Zeroth-order modified Bessel function of the first kind (series). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

export interface ResamplerOptions {
  /** Stop-band attenuation in dB; default 70. */
  attenuationDb?: number;
  /** End of the pass band as a share of the lower rate's Nyquist; default 0.85. */
  passband?: number;
}

export class Resampler {
  readonly up: number; // L
  readonly down: number; // M
  /** Taps per polyphase branch. */
  readonly tapsPerPhase: number;
  /** Polyphase branches: phase p holds h[p + k*L], k = 0..tapsPerPhase-1. */
  private readonly phases: Float32Array[];
  /** Input history (last tapsPerPhase-1 samples) followed by the new input. */
  private buf: Float32Array;
  private hist: number;
  /** Position of the next output in prototype (upsampled) samples, relative to buf[hist]. */
  private t = 0;

  constructor(
    readonly inRate: number,
    readonly outRate: number,
    opts: ResamplerOptions = {},
  ) {
    const g = gcd(inRate, outRate);
    this.up = outRate / g;
    this.down = inRate / g;
    const protoRate = inRate * this.up;
    const nyq = Math.min(inRate, outRate) / 2;
    const pass = nyq * (opts.passband ?? 0.85);
    const stop = nyq;
    const att = opts.attenuationDb ?? 70;
    const cutoff = (pass + stop) / 2 / protoRate; // cycles per prototype sample
    const dw = (2 * Math.PI * (stop - pass)) / protoRate;
    let n = Math.ceil((att - 8) / (2.285 * dw)) + 1;
    // Length a multiple of L so every branch has the same number of taps.
    n = Math.ceil(n / this.up) * this.up;
    const beta = att > 50 ? 0.1102 * (att - 8.7) : att >= 21 ? 0.5842 * (att - 21) ** 0.4 + 0.07886 * (att - 21) : 0;
    const h = new Float64Array(n);
    const mid = (n - 1) / 2;
    const i0b = besselI0(beta);
    for (let i = 0; i < n; i++) {
      const x = i - mid;
      const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
      const r = (2 * i) / (n - 1) - 1;
      const w = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / i0b;
      h[i] = sinc * w * this.up; // gain L restores the level after zero stuffing
    }
    this.tapsPerPhase = n / this.up;
    this.phases = [];
    for (let p = 0; p < this.up; p++) {
      const ph = new Float32Array(this.tapsPerPhase);
      for (let k = 0; k < this.tapsPerPhase; k++) ph[k] = h[p + k * this.up]!;
      this.phases.push(ph);
    }
    this.hist = this.tapsPerPhase - 1;
    this.buf = new Float32Array(this.hist + 4096);
  }

  /** Resample a chunk; returns as many output samples as the input allows. */
  process(input: Int16Array): Int16Array {
    const need = this.hist + input.length;
    if (this.buf.length < need) {
      const nb = new Float32Array(need * 2);
      nb.set(this.buf.subarray(0, this.hist));
      this.buf = nb;
    }
    const buf = this.buf;
    const hist = this.hist;
    for (let i = 0; i < input.length; i++) buf[hist + i] = input[i]!;
    const L = this.up;
    const M = this.down;
    const taps = this.tapsPerPhase;
    const total = input.length * L; // prototype samples available in this chunk
    const count = Math.max(0, Math.ceil((total - this.t) / M));
    const out = new Int16Array(count);
    let t = this.t;
    for (let o = 0; o < count; o++, t += M) {
      const n = Math.floor(t / L); // newest input sample index (0-based in this chunk)
      const ph = this.phases[t - n * L]!;
      // y = sum_k h[p + kL] x[n - k]; x[n] sits at buf[hist + n].
      let acc = 0;
      let idx = hist + n;
      for (let k = 0; k < taps; k++) acc += ph[k]! * buf[idx--]!;
      out[o] = acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc);
    }
    this.t = t - total;
    // Keep the last `hist` samples as history.
    buf.copyWithin(0, input.length, input.length + hist);
    return out;
  }

  /** Group delay in output samples. */
  get delayOut(): number {
    return ((this.tapsPerPhase * this.up - 1) / 2 / this.up) * (this.outRate / this.inRate);
  }

  reset(): void {
    this.buf.fill(0);
    this.t = 0;
  }
}
