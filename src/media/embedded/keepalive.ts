/**
 * Keep-alive toward WhatsApp: while the PBX sends no audio, WhatsApp must still get a steady
 * 50 packets/s (it drops a call after ~20 s without business media at the start, 30 s
 * mid-call). The schedule below decides how many 20 ms silence frames are due at each engine
 * tick: frame k is due at start + 20k ms, so a late tick sends what fell due since the last
 * one instead of losing the remainder (counting from "now" on each tick gave ~38/s).
 *
 * RTCP keeps both legs' view of our streams current: `senderReport` builds the one compound
 * SR (+ SDES CNAME) both legs send, WhatsApp's through werift's SRTCP, the PBX's as plain bytes.
 */
import {
  RtcpReceiverInfo,
  RtcpSenderInfo,
  RtcpSourceDescriptionPacket,
  RtcpSrPacket,
  SourceDescriptionChunk,
  SourceDescriptionItem,
  ntpTime,
} from 'werift';
import type { RtpOutStream } from './rtp.js';

export const FILL_FRAME_MS = 20;

export class FillSchedule {
  /** When the next frame is due (performance.now() ms); undefined while not filling. */
  private nextMs: number | undefined;

  constructor(
    /** Frames owed after a late tick are sent at once, up to this many per tick. */
    private readonly maxBurst = 10,
    /** Past this much lag (an event-loop stall), the schedule restarts from now. */
    private readonly maxLagMs = 200,
  ) {}

  /** How many frames to send now; the first call after stop() starts the schedule at `now`. */
  due(now: number): number {
    if (this.nextMs === undefined || now - this.nextMs > this.maxLagMs) this.nextMs = now;
    let n = 0;
    while (this.nextMs <= now && n < this.maxBurst) {
      this.nextMs += FILL_FRAME_MS;
      n++;
    }
    return n;
  }

  /** The PBX sends audio again: the next fill starts afresh. */
  stop(): void {
    this.nextMs = undefined;
  }

  get filling(): boolean {
    return this.nextMs !== undefined;
  }
}

/** SDES item type of the canonical name (RFC 3550 6.5.1). */
const SDES_CNAME = 1;

/** What we have received on the other side of a leg, for the SR's one report block. */
export interface ReceivedStream {
  ssrc: number;
  highestSeq: number;
}

/**
 * A compound RTCP packet for one outgoing stream: an SR (with a report block on `received`,
 * if any) and an SDES with our CNAME. Pass it to werift's `sendRtcp`, or `serializeRtcp` it.
 */
export function senderReport(out: RtpOutStream, cname: string, received?: ReceivedStream): [RtcpSrPacket, RtcpSourceDescriptionPacket] {
  const reports = received
    ? [
        new RtcpReceiverInfo({
          ssrc: received.ssrc,
          fractionLost: 0,
          packetsLost: 0,
          highestSequence: received.highestSeq,
          jitter: 0,
          lsr: 0,
          dlsr: 0,
        }),
      ]
    : [];
  const sr = new RtcpSrPacket({
    ssrc: out.ssrc,
    senderInfo: new RtcpSenderInfo({
      ntpTimestamp: ntpTime(),
      rtpTimestamp: out.lastTs >>> 0,
      packetCount: out.packets >>> 0,
      octetCount: out.octets >>> 0,
    }),
    reports,
  });
  const sdes = new RtcpSourceDescriptionPacket({
    chunks: [new SourceDescriptionChunk({ source: out.ssrc, items: [new SourceDescriptionItem({ type: SDES_CNAME, text: cname })] })],
  });
  return [sr, sdes];
}

/** The wire bytes of a compound RTCP packet (plain RTP leg). */
export function serializeRtcp(packets: ReadonlyArray<{ serialize(): Buffer }>): Buffer {
  return Buffer.concat(packets.map((p) => p.serialize()));
}
