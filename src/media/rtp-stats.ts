/**
 * Receive statistics of one incoming RTP stream, as RFC 3550 defines them for reception
 * reports: packets expected from the extended highest sequence number (section A.3), lost =
 * expected − received (duplicates can make it negative, clamped at 0 for reporting), and the
 * interarrival jitter estimate J += (|D| − J)/16 (section 6.4.1, A.8), in timestamp units and
 * here reported in ms. A new SSRC starts the counts afresh (a new source, e.g. a PBX transfer).
 */
export class RtpReceiveStats {
  private ssrc: number | undefined;
  private baseSeq = 0;
  private maxSeq = 0;
  private cycles = 0;
  private received = 0;
  private jitter = 0;
  private lastTransit: number | undefined;
  /** Totals of earlier sources of the same leg (SSRC changes). */
  private priorExpected = 0;
  private priorReceived = 0;

  constructor(private readonly clockRate: number) {}

  /** One packet: its sequence number, RTP timestamp, and arrival time (ms). */
  packet(ssrc: number, seq: number, ts: number, arrivalMs: number): void {
    if (ssrc !== this.ssrc) {
      if (this.ssrc !== undefined) {
        this.priorExpected += this.expectedNow();
        this.priorReceived += this.received;
      }
      this.ssrc = ssrc;
      this.baseSeq = seq;
      this.maxSeq = seq;
      this.cycles = 0;
      this.received = 0;
      this.lastTransit = undefined;
    } else {
      const delta = (seq - this.maxSeq) & 0xffff;
      if (delta > 0 && delta < 0x8000) {
        if (seq < this.maxSeq) this.cycles += 0x10000; // wrapped
        this.maxSeq = seq;
      }
    }
    this.received++;
    const transit = (arrivalMs * this.clockRate) / 1000 - ts;
    if (this.lastTransit !== undefined) {
      let d = transit - this.lastTransit;
      // RTP timestamps wrap at 2^32: take the short way round.
      if (d > 2 ** 31) d -= 2 ** 32;
      else if (d < -(2 ** 31)) d += 2 ** 32;
      this.jitter += (Math.abs(d) - this.jitter) / 16;
    }
    this.lastTransit = transit;
  }

  private expectedNow(): number {
    return this.ssrc === undefined ? 0 : this.cycles + this.maxSeq - this.baseSeq + 1;
  }

  get packets(): number {
    return this.priorReceived + this.received;
  }

  get lost(): number {
    return Math.max(0, this.priorExpected + this.expectedNow() - this.packets);
  }

  /** Lost / expected, 0..1 (0 before any packet). */
  get lossRatio(): number {
    const expected = this.priorExpected + this.expectedNow();
    return expected > 0 ? this.lost / expected : 0;
  }

  get jitterMs(): number {
    return (this.jitter * 1000) / this.clockRate;
  }
}
