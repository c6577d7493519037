/**
 * A FIFO of 16-bit PCM samples that hands out fixed-size frames (re-framing 10/30/60 ms to 20 ms).
 * take() returns a view into the FIFO's own buffer, without copying: it stays valid until the
 * next push() (the engine consumes each frame synchronously before pushing more).
 */
export class PcmFifo {
  private buf: Int16Array;
  /** Buffered samples are buf[start .. start + len). */
  private start = 0;
  private len = 0;

  constructor(
    private readonly frame: number,
    /** Most samples kept; older ones are dropped (bounded latency). */
    private readonly max = frame * 10,
  ) {
    this.buf = new Int16Array(max + frame * 4);
  }

  push(pcm: Int16Array): void {
    if (this.start > 0) {
      // Move what is left to the front (usually nothing: whole frames in, whole frames out).
      if (this.len > 0) this.buf.copyWithin(0, this.start, this.start + this.len);
      this.start = 0;
    }
    if (this.len + pcm.length > this.buf.length) {
      const drop = this.len + pcm.length - this.max;
      if (drop > 0) {
        this.buf.copyWithin(0, Math.min(drop, this.len), this.len);
        this.len = Math.max(0, this.len - drop);
      }
      if (this.len + pcm.length > this.buf.length) {
        const nb = new Int16Array((this.len + pcm.length) * 2);
        nb.set(this.buf.subarray(0, this.len));
        this.buf = nb;
      }
    }
    this.buf.set(pcm, this.len);
    this.len += pcm.length;
  }

  /** The next frame (a view, valid until the next push), or undefined while less than a frame is buffered. */
  take(): Int16Array | undefined {
    if (this.len < this.frame) return undefined;
    const out = this.buf.subarray(this.start, this.start + this.frame);
    this.start += this.frame;
    this.len -= this.frame;
    if (this.len === 0) this.start = 0;
    return out;
  }

  clear(): void {
    this.start = 0;
    this.len = 0;
  }

  get length(): number {
    return this.len;
  }
}
