/**
 * Opus pass-through (the PBX speaks Opus too): the payload crosses unchanged, under the outgoing
 * stream's own SSRC, sequence numbers and timestamps. The timestamp advance of each packet is
 * taken from the input's own advance, so 10/40/60 ms packets keep their duration.
 */

/** 20 ms at Opus's 48 kHz RTP clock: the advance assumed for a stream's first packet. */
export const OPUS_FRAME_TICKS = 960;
/** The longest Opus packet, 120 ms at 48 kHz (RFC 6716): a bigger jump is a gap, not a frame. */
export const OPUS_MAX_PACKET_TICKS = 5760;

/** Timestamp advance of each passed-through packet, from the input stream it came on. */
export class OpusRestamp {
  private last: { ssrc: number; ts: number } | undefined;

  /** Ticks the outgoing stream advances for this input packet. */
  ticks(ssrc: number, ts: number): number {
    const last = this.last;
    let ticks = OPUS_FRAME_TICKS;
    if (last && last.ssrc === ssrc) {
      const d = (ts - last.ts) >>> 0;
      if (d > 0 && d <= OPUS_MAX_PACKET_TICKS) ticks = d;
    }
    this.last = { ssrc, ts };
    return ticks;
  }
}
