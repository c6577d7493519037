/**
 * RTP helpers of the embedded engine: a minimal parser/serialiser for the plain side, the
 * outgoing stream restamper (own SSRC, own sequence numbers and timestamps) and the RFC 4733
 * telephone-event relay.
 */
import { randomInt } from 'node:crypto';

export interface RtpView {
  pt: number;
  marker: boolean;
  seq: number;
  ts: number;
  ssrc: number;
  payload: Buffer;
}

/** Parse an RTP packet (version 2); undefined for anything else (RTCP on the RTP port, junk). */
export function parseRtp(msg: Buffer): RtpView | undefined {
  if (msg.length < 12 || msg[0]! >> 6 !== 2) return undefined;
  const b1 = msg[1]!;
  const pt = b1 & 0x7f;
  if (pt >= 72 && pt <= 79) return undefined; // RTCP (SR/RR/SDES/BYE...) muxed on the RTP port
  const cc = msg[0]! & 0x0f;
  let off = 12 + cc * 4;
  if (msg[0]! & 0x10) {
    if (msg.length < off + 4) return undefined;
    off += 4 + msg.readUInt16BE(off + 2) * 4;
  }
  let end = msg.length;
  if (msg[0]! & 0x20) end -= msg[end - 1]!;
  if (end < off) return undefined;
  return {
    pt,
    marker: (b1 & 0x80) !== 0,
    seq: msg.readUInt16BE(2),
    ts: msg.readUInt32BE(4),
    ssrc: msg.readUInt32BE(8),
    payload: msg.subarray(off, end),
  };
}

export function buildRtp(pt: number, marker: boolean, seq: number, ts: number, ssrc: number, payload: Uint8Array): Buffer {
  const pkt = Buffer.allocUnsafe(12 + payload.length);
  pkt[0] = 0x80;
  pkt[1] = (marker ? 0x80 : 0) | (pt & 0x7f);
  pkt.writeUInt16BE(seq & 0xffff, 2);
  pkt.writeUInt32BE(ts >>> 0, 4);
  pkt.writeUInt32BE(ssrc >>> 0, 8);
  pkt.set(payload, 12);
  return pkt;
}

export interface StampedFrame {
  seq: number;
  ts: number;
  marker: boolean;
}

/**
 * One outgoing RTP stream: our SSRC, our sequence numbers (+1 per packet, always) and our
 * timestamps. Timestamps advance by the frame length per frame; when the input falls behind
 * real time by more than `maxLagFrames` (input gap: hold, loss, a new SSRC after a pause), the
 * timestamp jumps to real time and the marker bit is set, so the receiver's jitter buffer sees
 * a new talk spurt instead of a stream that ran slow. Jitter below the threshold keeps the
 * timestamps contiguous. Timestamps never run ahead of real time by more than the input did.
 */
export class RtpOutStream {
  readonly ssrc: number;
  private seq = randomInt(0, 0x10000);
  private ts = randomInt(0, 0x100000000);
  /** Wall clock (ms) and timestamp of the stream's anchor (first frame or last re-sync). */
  private anchorMs: number | undefined;
  private anchorTs = 0;
  /** Timestamp the next contiguous frame gets. */
  private nextTs = 0;
  packets = 0;
  octets = 0;
  lastSentMs = 0;
  /** Timestamp of the last packet and when it was sent (for RTCP SR). */
  lastTs = 0;

  constructor(
    readonly clockRate: number,
    ssrc?: number,
    private readonly maxLagFrames = 3,
    private readonly frameMs = 20,
  ) {
    this.ssrc = ssrc ?? randomInt(1, 0x100000000);
  }

  /** Sequence number, timestamp and marker for a media frame of `ticks` timestamp units. */
  frame(ticks: number, nowMs: number): StampedFrame {
    let marker = false;
    if (this.anchorMs === undefined) {
      this.anchorMs = nowMs;
      this.anchorTs = this.ts;
      this.nextTs = this.ts;
      marker = true;
    } else {
      const expected = this.anchorTs + ((nowMs - this.anchorMs) * this.clockRate) / 1000;
      const lagTicks = expected - this.nextTs;
      const frameTicks = (this.frameMs * this.clockRate) / 1000;
      if (lagTicks > this.maxLagFrames * frameTicks) {
        // Input gap: jump to real time (a whole number of frames), new talk spurt.
        this.nextTs += Math.floor(lagTicks / frameTicks) * frameTicks;
        marker = true;
      }
    }
    const out = { seq: this.seq, ts: this.nextTs >>> 0, marker };
    this.seq = (this.seq + 1) & 0xffff;
    this.nextTs += ticks;
    this.lastTs = out.ts;
    this.lastSentMs = nowMs;
    return out;
  }

  /** A packet that shares the stream but carries its own timestamp (telephone-event). */
  event(): { seq: number } {
    const seq = this.seq;
    this.seq = (this.seq + 1) & 0xffff;
    return { seq };
  }

  /** The timestamp a frame sent now would get (for the start of a telephone-event). */
  peekTs(nowMs: number): number {
    if (this.anchorMs === undefined) {
      this.anchorMs = nowMs;
      this.anchorTs = this.ts;
      this.nextTs = this.ts;
    }
    const expected = this.anchorTs + ((nowMs - this.anchorMs) * this.clockRate) / 1000;
    return Math.max(this.nextTs, Math.floor(expected)) >>> 0;
  }

  count(payloadBytes: number): void {
    this.packets++;
    this.octets += payloadBytes;
  }
}

/** RFC 4733 payload: event, end bit, volume, duration. */
export interface TelephoneEvent {
  event: number;
  end: boolean;
  volume: number;
  duration: number;
}

export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent | undefined {
  if (payload.length < 4) return undefined;
  return {
    event: payload[0]!,
    end: (payload[1]! & 0x80) !== 0,
    volume: payload[1]! & 0x3f,
    duration: (payload[2]! << 8) | payload[3]!,
  };
}

export function buildTelephoneEvent(e: TelephoneEvent): Buffer {
  const b = Buffer.alloc(4);
  b[0] = e.event;
  b[1] = (e.end ? 0x80 : 0) | (e.volume & 0x3f);
  b.writeUInt16BE(Math.min(0xffff, Math.max(0, Math.round(e.duration))), 2);
  return b;
}

/**
 * Relays RFC 4733 events from one stream into another: events keep their digit, volume,
 * duration (converted from the input's to the output's event clock) and end bit; each input
 * event (identified by input SSRC + timestamp + event code) gets one output timestamp, taken from the output
 * stream's clock when the event starts, and every packet a new output sequence number.
 * Retransmitted end packets are relayed (RFC 4733 sends the end three times).
 */
export class TelephoneEventRelay {
  private current: { key: string; outTs: number } | undefined;
  private readonly ended = new Set<string>();

  constructor(
    private readonly inClock: number,
    private readonly outClock: number,
  ) {}

  /** The output packet fields for an input event packet, or undefined to drop it. */
  relay(
    inSsrc: number,
    inTs: number,
    payload: Uint8Array,
    out: RtpOutStream,
    nowMs: number,
  ): { seq: number; ts: number; marker: boolean; payload: Buffer } | undefined {
    const ev = parseTelephoneEvent(payload);
    if (!ev) return undefined;
    const key = `${inSsrc}:${inTs}:${ev.event}`;
    let marker = false;
    if (!this.current || this.current.key !== key) {
      if (this.ended.has(key)) return undefined; // a late duplicate of a finished event
      this.current = { key, outTs: out.peekTs(nowMs) };
      marker = true;
    }
    if (ev.end) {
      this.ended.add(key);
      if (this.ended.size > 64) this.ended.delete(this.ended.values().next().value!);
    }
    const duration = (ev.duration * this.outClock) / this.inClock;
    return {
      seq: out.event().seq,
      ts: this.current.outTs,
      marker,
      payload: buildTelephoneEvent({ ...ev, duration }),
    };
  }
}
