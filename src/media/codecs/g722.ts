/**
 * ITU-T G.722 at 64 kbit/s (mode 1): sub-band ADPCM, 16 kHz 16-bit PCM in, one byte per two
 * input samples out (6 bits low band + 2 bits high band). Written in TypeScript from the
 * structure of the ITU-T reference (blocks 1L-6L, 1H-6H and the shared block 4 predictor
 * adaptation) with the standard's tables; the 24-tap QMF uses the standard's coefficients.
 * Input is linear 16-bit (not the 14-bit of the ITU test vectors' test mode), as in spandsp and
 * libavcodec, which makes it interoperable with those: an RTP stream G722/8000 (clock 8000 per
 * RFC 3551 although the audio is sampled at 16 kHz), 20 ms = 160 bytes = 320 samples.
 */

// QMF coefficients h[0..11] = 3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11 (h[23-i] = h[i]),
// written out in the transmit and receive filters below.
/** QMF delay line: the last 24 samples are x[pos - 22 .. pos + 1] of a longer buffer, shifted back once per QMF_PAIRS pairs. */
const QMF_PAIRS = 256;
const Q6 = [0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0];
const ILN = [0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 0];
const ILP = [0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 0];
const WL = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42 = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const ILB = [
  2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025, 3091,
  3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
const QM4 = [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0];
const QM2 = [-7408, -1616, 7408, 1616];
const QM6 = [
  -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
  -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040, -728, 24808,
  21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008,
  3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
const IHN = [0, 1, 0];
const IHP = [0, 3, 2];
const WH = [0, -214, 798];
const RH2 = [2, 1, 2, 1];

function sat(x: number): number {
  return x > 32767 ? 32767 : x < -32768 ? -32768 : x;
}

/**
 * Adaptive predictor state of one sub-band (block 4 of the standard). The delay lines are
 * scalar fields (r1 = r[n-1], d1..d6 = d[n-1]..d[n-6], ...): no array accesses on the hot path.
 */
class Band {
  s = 0; // signal estimate
  sp = 0; // pole section
  sz = 0; // zero section
  r1 = 0;
  r2 = 0;
  p1 = 0;
  p2 = 0;
  a1 = 0;
  a2 = 0;
  d1 = 0;
  d2 = 0;
  d3 = 0;
  d4 = 0;
  d5 = 0;
  d6 = 0;
  b1 = 0;
  b2 = 0;
  b3 = 0;
  b4 = 0;
  b5 = 0;
  b6 = 0;
  nb = 0; // log scale factor
  det: number; // scale factor
  constructor(det: number) {
    this.det = det;
  }

  /** Block 4: reconstruction, pole/zero predictor adaptation and the next estimate. */
  update(dq: number): void {
    const r0 = sat(this.s + dq); // RECONS
    const p0 = sat(this.sz + dq); // PARREC
    const a1 = this.a1;
    const a2 = this.a2;

    // UPPOL2
    const sg0 = p0 >> 15;
    const sg1 = this.p1 >> 15;
    const sg2 = this.p2 >> 15;
    let wd1 = sat(a1 << 2);
    let wd2 = sg0 === sg1 ? -wd1 : wd1;
    if (wd2 > 32767) wd2 = 32767;
    let wd3 = (wd2 >> 7) + (sg0 === sg2 ? 128 : -128);
    wd3 += (a2 * 32512) >> 15;
    if (wd3 > 12288) wd3 = 12288;
    else if (wd3 < -12288) wd3 = -12288;
    const ap2 = wd3;

    // UPPOL1
    wd1 = sg0 === sg1 ? 192 : -192;
    wd2 = (a1 * 32640) >> 15;
    let ap1 = sat(wd1 + wd2);
    wd3 = sat(15360 - ap2);
    if (ap1 > wd3) ap1 = wd3;
    else if (ap1 < -wd3) ap1 = -wd3;

    // UPZERO (bp_i from d_i and b_i), then DELAYA: d shifts in dq, b takes bp.
    const u = dq === 0 ? 0 : 128;
    const sgd = dq >> 15;
    const d1 = this.d1;
    const d2 = this.d2;
    const d3 = this.d3;
    const d4 = this.d4;
    const d5 = this.d5;
    const d6 = this.d6;
    const b1 = sat((d1 >> 15 === sgd ? u : -u) + ((this.b1 * 32640) >> 15));
    const b2 = sat((d2 >> 15 === sgd ? u : -u) + ((this.b2 * 32640) >> 15));
    const b3 = sat((d3 >> 15 === sgd ? u : -u) + ((this.b3 * 32640) >> 15));
    const b4 = sat((d4 >> 15 === sgd ? u : -u) + ((this.b4 * 32640) >> 15));
    const b5 = sat((d5 >> 15 === sgd ? u : -u) + ((this.b5 * 32640) >> 15));
    const b6 = sat((d6 >> 15 === sgd ? u : -u) + ((this.b6 * 32640) >> 15));
    this.b1 = b1;
    this.b2 = b2;
    this.b3 = b3;
    this.b4 = b4;
    this.b5 = b5;
    this.b6 = b6;
    // new d_i = old d_(i-1), new d1 = dq
    this.d6 = d5;
    this.d5 = d4;
    this.d4 = d3;
    this.d3 = d2;
    this.d2 = d1;
    this.d1 = dq;
    const r1 = r0;
    const r2 = this.r1;
    this.r2 = r2;
    this.r1 = r1;
    this.p2 = this.p1;
    this.p1 = p0;
    this.a2 = ap2;
    this.a1 = ap1;

    // FILTEP
    wd1 = sat(r1 + r1);
    wd1 = (ap1 * wd1) >> 15;
    wd2 = sat(r2 + r2);
    wd2 = (ap2 * wd2) >> 15;
    this.sp = sat(wd1 + wd2);

    // FILTEZ (with the shifted delay line: d_i is now the old d_(i-1))
    let sz = (b6 * sat(d5 + d5)) >> 15;
    sz += (b5 * sat(d4 + d4)) >> 15;
    sz += (b4 * sat(d3 + d3)) >> 15;
    sz += (b3 * sat(d2 + d2)) >> 15;
    sz += (b2 * sat(d1 + d1)) >> 15;
    sz += (b1 * sat(dq + dq)) >> 15;
    this.sz = sat(sz);

    // PREDIC
    this.s = sat(this.sp + this.sz);
  }
}

/** Block 3L/3H: log scale factor adaptation and the linear scale factor. */
function scaleLow(band: Band, il4: number): void {
  let nb = ((band.nb * 127) >> 7) + WL[il4]!;
  if (nb < 0) nb = 0;
  else if (nb > 18432) nb = 18432;
  band.nb = nb;
  const wd1 = (nb >> 6) & 31;
  const wd2 = 8 - (nb >> 11);
  const wd3 = wd2 < 0 ? ILB[wd1]! << -wd2 : ILB[wd1]! >> wd2;
  band.det = wd3 << 2;
}

function scaleHigh(band: Band, ih2: number): void {
  let nb = ((band.nb * 127) >> 7) + WH[ih2]!;
  if (nb < 0) nb = 0;
  else if (nb > 22528) nb = 22528;
  band.nb = nb;
  const wd1 = (nb >> 6) & 31;
  const wd2 = 10 - (nb >> 11);
  const wd3 = wd2 < 0 ? ILB[wd1]! << -wd2 : ILB[wd1]! >> wd2;
  band.det = wd3 << 2;
}

/**
 * The 24-tap QMF of G.722 over the window x[w .. w + 23], unrolled: the taps at even offsets
 * (h0, h2, .. h22) and at odd offsets (h1, .. h23). Small enough for V8 to inline.
 */
function qmfEvenTaps(x: Int32Array, w: number): number {
  return (
    x[w]! * 3 +
    x[w + 2]! * -11 +
    x[w + 4]! * 12 +
    x[w + 6]! * 32 +
    x[w + 8]! * -210 +
    x[w + 10]! * 951 +
    x[w + 12]! * 3876 +
    x[w + 14]! * -805 +
    x[w + 16]! * 362 +
    x[w + 18]! * -156 +
    x[w + 20]! * 53 +
    x[w + 22]! * -11
  );
}

function qmfOddTaps(x: Int32Array, w: number): number {
  return (
    x[w + 1]! * -11 +
    x[w + 3]! * 53 +
    x[w + 5]! * -156 +
    x[w + 7]! * 362 +
    x[w + 9]! * -805 +
    x[w + 11]! * 3876 +
    x[w + 13]! * 951 +
    x[w + 15]! * -210 +
    x[w + 17]! * 32 +
    x[w + 19]! * 12 +
    x[w + 21]! * -11 +
    x[w + 23]! * 3
  );
}

export class G722Encoder {
  private low = new Band(32);
  private high = new Band(8);
  private readonly x = new Int32Array(22 + 2 * QMF_PAIRS);
  private xpos = 22;

  /** Encode 16 kHz PCM (an even number of samples) into G.722 bytes (length / 2). */
  encode(pcm: Int16Array, out: Uint8Array = new Uint8Array(pcm.length >> 1)): Uint8Array {
    const x = this.x;
    const low = this.low;
    const high = this.high;
    let pos = this.xpos;
    let o = 0;
    for (let j = 0; j + 1 < pcm.length; j += 2) {
      // Transmit QMF: shift in two samples, keep every other output.
      if (pos === x.length) {
        x.copyWithin(0, pos - 22, pos);
        pos = 22;
      }
      x[pos] = pcm[j]!;
      x[pos + 1] = pcm[j + 1]!;
      const w = pos - 22; // the 24-sample window x[w .. w + 23]
      pos += 2;
      const sumOdd = qmfEvenTaps(x, w);
      const sumEven = qmfOddTaps(x, w);
      const xlow = (sumEven + sumOdd) >> 14;
      const xhigh = (sumEven - sumOdd) >> 14;

      // Low band: SUBTRA, QUANTL (6 bits), INVQAL, LOGSCL, SCALEL, block 4.
      const el = sat(xlow - low.s);
      let wd = el >= 0 ? el : -(el + 1);
      let i = 1;
      for (; i < 30; i++) {
        if (wd < (Q6[i]! * low.det) >> 12) break;
      }
      const ilow = el < 0 ? ILN[i]! : ILP[i]!;
      const ril = ilow >> 2;
      const dlow = (low.det * QM4[ril]!) >> 15;
      scaleLow(low, RL42[ril]!);
      low.update(dlow);

      // High band: SUBTRA, QUANTH (2 bits), INVQAH, LOGSCH, SCALEH, block 4.
      const eh = sat(xhigh - high.s);
      wd = eh >= 0 ? eh : -(eh + 1);
      const mih = wd >= (564 * high.det) >> 12 ? 2 : 1;
      const ihigh = eh < 0 ? IHN[mih]! : IHP[mih]!;
      const dhigh = (high.det * QM2[ihigh]!) >> 15;
      scaleHigh(high, RH2[ihigh]!);
      high.update(dhigh);

      out[o++] = (ihigh << 6) | ilow;
    }
    this.xpos = pos;
    return out;
  }
}

export class G722Decoder {
  private low = new Band(32);
  private high = new Band(8);
  private readonly x = new Int32Array(22 + 2 * QMF_PAIRS);
  private xpos = 22;

  /** Decode G.722 bytes into 16 kHz PCM (two samples per byte). */
  decode(data: Uint8Array, out: Int16Array = new Int16Array(data.length * 2)): Int16Array {
    const x = this.x;
    const low = this.low;
    const high = this.high;
    let pos = this.xpos;
    let o = 0;
    for (let j = 0; j < data.length; j++) {
      const code = data[j]!;
      const ilow = code & 0x3f;
      const ihigh = (code >> 6) & 0x03;

      // Low band: INVQBL with all 6 bits for the output, INVQAL with 4 bits for adaptation.
      let rlow = low.s + ((low.det * QM6[ilow]!) >> 15);
      if (rlow > 16383) rlow = 16383;
      else if (rlow < -16384) rlow = -16384;
      const ril = ilow >> 2;
      const dlowt = (low.det * QM4[ril]!) >> 15;
      scaleLow(low, RL42[ril]!);
      low.update(dlowt);

      // High band.
      const dhigh = (high.det * QM2[ihigh]!) >> 15;
      let rhigh = dhigh + high.s;
      if (rhigh > 16383) rhigh = 16383;
      else if (rhigh < -16384) rhigh = -16384;
      scaleHigh(high, RH2[ihigh]!);
      high.update(dhigh);

      // Receive QMF.
      if (pos === x.length) {
        x.copyWithin(0, pos - 22, pos);
        pos = 22;
      }
      x[pos] = rlow + rhigh;
      x[pos + 1] = rlow - rhigh;
      const w = pos - 22;
      pos += 2;
      const xout2 = qmfEvenTaps(x, w);
      const xout1 = qmfOddTaps(x, w);
      out[o++] = sat(xout1 >> 11);
      out[o++] = sat(xout2 >> 11);
    }
    this.xpos = pos;
    return out;
  }
}
