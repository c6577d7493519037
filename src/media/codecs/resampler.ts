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
  /**
   * Polyphase branches, all in one array: branch p holds h[p + k*L] for k = tapsPerPhase-1
   * down to 0 (reversed, so the dot product walks the input forwards) at p * tapsPerPhase.
   */
  private readonly phases: Float64Array;
  /** Input history (last tapsPerPhase-1 samples) followed by the new input. */
  private buf: Float64Array;
  private hist: number;
  /**
   * Fast paths for the linear-phase (symmetric) prototype, used only when the float32 taps are
   * exactly symmetric: 'fold' (L = 1, decimation) adds the input samples that share a tap
   * before multiplying; 'pair' (L = 2, M = 1, doubling) computes both outputs of one input
   * position from their sum and difference (branch 1 is branch 0 reversed). Half the multiplies.
   */
  private readonly mode: 'generic' | 'fold' | 'pair';
  /** fold: taps 0..half-1 (+ the middle one if odd); pair: (A[j] + A[T-1-j]) for j < half (+ 2 A[mid]). */
  private readonly symA: Float64Array;
  /** pair: (A[j] - A[T-1-j]) for j < half. */
  private readonly symB: Float64Array;
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
    const taps = this.tapsPerPhase;
    this.phases = new Float64Array(this.up * taps);
    for (let p = 0; p < this.up; p++) {
      // Rounded to float32 as the taps always were (same output as before the rewrite).
      for (let k = 0; k < taps; k++) this.phases[p * taps + (taps - 1 - k)] = Math.fround(h[p + k * this.up]!);
    }
    this.hist = taps - 1;
    const half = taps >> 1;
    const ph = this.phases;
    let mode: 'generic' | 'fold' | 'pair' = 'generic';
    if (this.up === 1 && ph.every((v, k) => v === ph[taps - 1 - k])) mode = 'fold';
    if (this.up === 2 && this.down === 1) {
      let rev = true;
      for (let k = 0; k < taps && rev; k++) rev = ph[taps + k] === ph[taps - 1 - k];
      if (rev) mode = 'pair';
    }
    this.mode = mode;
    this.symA = new Float64Array(half + 1);
    this.symB = new Float64Array(half);
    if (mode === 'fold') {
      for (let j = 0; j < half; j++) this.symA[j] = ph[j]!;
      if (taps & 1) this.symA[half] = ph[half]!;
    } else if (mode === 'pair') {
      for (let j = 0; j < half; j++) {
        this.symA[j] = ph[j]! + ph[taps - 1 - j]!;
        this.symB[j] = ph[j]! - ph[taps - 1 - j]!;
      }
      if (taps & 1) this.symA[half] = 2 * ph[half]!;
    }
    this.buf = new Float64Array(this.hist + 4096);
  }

  /** Output samples the next process() of `inputLength` samples returns. */
  outputLength(inputLength: number): number {
    return Math.max(0, Math.ceil((inputLength * this.up - this.t) / this.down));
  }

  /**
   * Resample a chunk; returns as many output samples as the input allows. With `out` (at least
   * outputLength(input.length) long) the samples are written there and a view of it returned,
   * so a per-frame caller allocates nothing.
   */
  process(input: Int16Array, out?: Int16Array): Int16Array {
    const need = this.hist + input.length;
    if (this.buf.length < need) {
      const nb = new Float64Array(need * 2);
      nb.set(this.buf.subarray(0, this.hist));
      this.buf = nb;
    }
    const buf = this.buf;
    const hist = this.hist;
    for (let i = 0; i < input.length; i++) buf[hist + i] = input[i]!;
    const L = this.up;
    const M = this.down;
    const taps = this.tapsPerPhase;
    const taps4 = taps & ~3;
    const phases = this.phases;
    const total = input.length * L; // prototype samples available in this chunk
    const count = Math.max(0, Math.ceil((total - this.t) / M));
    let dst: Int16Array;
    if (out) {
      if (out.length < count) throw new RangeError(`resampler: output buffer of ${out.length} < ${count} samples`);
      dst = out.length === count ? out : out.subarray(0, count);
    } else {
      dst = new Int16Array(count);
    }
    if (this.mode === 'fold') return this.processFold(input.length, count, dst);
    if (this.mode === 'pair') return this.processPair(input.length, count, dst);
    let t = this.t;
    let n = Math.floor(t / L); // newest input sample index (0-based in this chunk)
    let p = t - n * L; // its polyphase branch
    const nStep = Math.floor(M / L);
    const pStep = M - nStep * L;
    for (let o = 0; o < count; o++) {
      // y = sum_k h[p + kL] x[n - k]; x[n] sits at buf[hist + n], the reversed branch starts at
      // x[n - (taps-1)] = buf[n]. Four accumulators hide the add latency.
      const c = p * taps;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let k = 0;
      for (; k < taps4; k += 4) {
        a0 += phases[c + k]! * buf[n + k]!;
        a1 += phases[c + k + 1]! * buf[n + k + 1]!;
        a2 += phases[c + k + 2]! * buf[n + k + 2]!;
        a3 += phases[c + k + 3]! * buf[n + k + 3]!;
      }
      for (; k < taps; k++) a0 += phases[c + k]! * buf[n + k]!;
      const acc = a0 + a1 + (a2 + a3);
      dst[o] = acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc);
      t += M;
      n += nStep;
      p += pStep;
      if (p >= L) {
        p -= L;
        n++;
      }
    }
    this.t = t - total;
    // Keep the last `hist` samples as history.
    buf.copyWithin(0, input.length, input.length + hist);
    return dst;
  }

  /** L = 1 with symmetric taps: y = sum_j A[j] (x[n+j] + x[n+T-1-j]) (+ the middle tap). */
  private processFold(inLen: number, count: number, dst: Int16Array): Int16Array {
    const buf = this.buf;
    const M = this.down;
    const taps = this.tapsPerPhase;
    const half = taps >> 1;
    const half2 = half & ~1;
    const odd = (taps & 1) === 1;
    const A = this.symA;
    const last = taps - 1;
    let n = this.t; // L = 1: prototype position = input index
    for (let o = 0; o < count; o++, n += M) {
      let a0 = 0;
      let a1 = 0;
      const e = n + last;
      let j = 0;
      for (; j < half2; j += 2) {
        a0 += A[j]! * (buf[n + j]! + buf[e - j]!);
        a1 += A[j + 1]! * (buf[n + j + 1]! + buf[e - j - 1]!);
      }
      if (j < half) a0 += A[j]! * (buf[n + j]! + buf[e - j]!);
      if (odd) a1 += A[half]! * buf[n + half]!;
      const acc = a0 + a1;
      dst[o] = acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc);
    }
    this.finish(inLen, n - inLen);
    return dst;
  }

  /**
   * L = 2, M = 1 with branch 1 = branch 0 reversed: the two outputs at input position n are
   * (S + D) / 2 and (S - D) / 2 with S = sum_j (A[j] + A[T-1-j]) (x[n+j] + x[n+T-1-j]) (+ middle)
   * and D = sum_j (A[j] - A[T-1-j]) (x[n+j] - x[n+T-1-j]).
   */
  private processPair(inLen: number, count: number, dst: Int16Array): Int16Array {
    const buf = this.buf;
    const taps = this.tapsPerPhase;
    const half = taps >> 1;
    const odd = (taps & 1) === 1;
    const P = this.symA;
    const Q = this.symB;
    const last = taps - 1;
    const A = this.phases;
    let t = this.t;
    let o = 0;
    while (o < count) {
      const n = t >> 1;
      if ((t & 1) === 1 || o + 1 === count) {
        // A lone output (odd start or end of the chunk): plain dot product with its branch.
        const c = (t & 1) * taps;
        let acc = 0;
        for (let k = 0; k < taps; k++) acc += A[c + k]! * buf[n + k]!;
        dst[o++] = acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc);
        t++;
        continue;
      }
      let s0 = 0;
      let d0 = 0;
      const e = n + last;
      for (let j = 0; j < half; j++) {
        const x0 = buf[n + j]!;
        const x1 = buf[e - j]!;
        s0 += P[j]! * (x0 + x1);
        d0 += Q[j]! * (x0 - x1);
      }
      if (odd) s0 += P[half]! * buf[n + half]!;
      const y0 = (s0 + d0) * 0.5;
      const y1 = (s0 - d0) * 0.5;
      dst[o++] = y0 > 32767 ? 32767 : y0 < -32768 ? -32768 : Math.round(y0);
      dst[o++] = y1 > 32767 ? 32767 : y1 < -32768 ? -32768 : Math.round(y1);
      t += 2;
    }
    this.finish(inLen, t - 2 * inLen);
    return dst;
  }

  private finish(inLen: number, t: number): void {
    this.t = t;
    this.buf.copyWithin(0, inLen, inLen + this.hist);
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
