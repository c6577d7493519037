/**
 * The PBX leg of an embedded session: the plain RTP/RTCP UDP port pair, the address rules, and
 * RTP/RTCP out.
 *
 * Address rules (issue 8: media that only listens to its peer). The ports are predictable, so
 * anyone who can reach them could otherwise listen to the customer (by making us re-latch) or
 * talk into the call:
 * - `strict`: RTP and RTCP are taken only from the address and port the PBX's SDP names
 *   (RTCP: a=rtcp's port, or the RTP port with rtcp-mux); we send to those too.
 * - `learn` (default; a PBX behind NAT, or on a multi-homed host, sends from another address
 *   than its SDP names, e.g. baresip in the tests): within `learnWindowMs` of the PBX's SDP,
 *   a packet from the SDP's exact address always latches; otherwise the first RTP packet's
 *   source and SSRC are latched, and a packet from another source with that SSRC re-latches
 *   while the window lasts (NAT rebinding). After the window the source is locked: only the
 *   latched address, with the latched SSRC, gets through; RTCP only from the latched host.
 *   Like rtpengine's heuristic learning followed by `strict source`.
 * Everything else is dropped and counted (`dropped`), the first drop of a call logged.
 */
import type dgram from 'node:dgram';
import type { Logger } from 'pino';
import type { PortAllocator, PortPair } from './ports.js';
import { buildRtp, parseRtp, type RtpOutStream, type RtpView } from './rtp.js';
import type { PlainMedia } from './sdp.js';

export interface Address {
  host: string;
  port: number;
}

export interface PbxSourceRules {
  mode: 'strict' | 'learn';
  /** `learn` only: how long after the PBX's SDP the source may be learned or re-learned. */
  learnWindowMs: number;
}

export const DEFAULT_SOURCE_RULES: PbxSourceRules = { mode: 'learn', learnWindowMs: 3000 };

const same = (a: Address | undefined, host: string, port: number): boolean => a !== undefined && a.host === host && a.port === port;

export class PbxLeg {
  private ports: PortPair | undefined;
  /** Where RTP (and, with rtcp-mux, RTCP) goes: the SDP's address, then the latched source. */
  private rtpDst: Address | undefined;
  private rtcpDst: Address | undefined;
  /** What the PBX's SDP names. */
  private sdpRtp: Address | undefined;
  private sdpRtcp: Address | undefined;
  private rtcpMux = false;
  /** `learn`: the latched source and its SSRC, and until when it may change. */
  private latchedSsrc: number | undefined;
  private learnUntilMs = 0;
  latchedTo: string | undefined;
  packetsIn = 0;
  /** RTP and RTCP packets dropped by the address rules. */
  dropped = 0;
  sendErrors = 0;

  constructor(
    private readonly callId: string,
    private readonly log: Logger,
    /** Each RTP packet the PBX sends (already checked against the address rules). */
    private readonly onRtp: (rtp: RtpView) => void,
    private readonly rules: PbxSourceRules = DEFAULT_SOURCE_RULES,
  ) {}

  get port(): number | undefined {
    return this.ports?.port;
  }

  get hasRemote(): boolean {
    return this.rtpDst !== undefined;
  }

  async open(allocator: PortAllocator): Promise<number> {
    if (this.ports) return this.ports.port;
    this.ports = await allocator.allocate();
    const { rtp, rtcp } = this.ports;
    rtp.on('message', (msg, rinfo) => this.onRtpMessage(msg, rinfo));
    rtcp.on('message', (_msg, rinfo) => this.onRtcpMessage(rinfo));
    rtp.on('error', (err) => this.log.warn({ callId: this.callId, err: err.message }, 'PBX RTP socket error'));
    rtcp.on('error', (err) => this.log.warn({ callId: this.callId, err: err.message }, 'PBX RTCP socket error'));
    return this.ports.port;
  }

  /**
   * The address the PBX's latest SDP names. A new address starts over: strict mode takes only
   * it, learn mode opens a new learning window.
   */
  setRemote(p: PlainMedia): void {
    this.rtcpMux = p.rtcpMux;
    if (same(this.sdpRtp, p.host, p.port)) return;
    this.sdpRtp = { host: p.host, port: p.port };
    this.sdpRtcp = { host: p.host, port: p.rtcpMux ? p.port : p.rtcpPort };
    this.rtpDst = this.sdpRtp;
    this.rtcpDst = p.rtcpMux ? undefined : this.sdpRtcp;
    this.latchedSsrc = undefined;
    this.latchedTo = undefined;
    this.learnUntilMs = performance.now() + this.rules.learnWindowMs;
  }

  /** Whether RTP from this source (with this SSRC) belongs to the PBX; latches in learn mode. */
  private acceptRtp(host: string, port: number, ssrc: number): boolean {
    if (!this.sdpRtp) return false; // no SDP from the PBX yet: nobody is the PBX
    if (this.rules.mode === 'strict') return same(this.sdpRtp, host, port);
    const learning = performance.now() <= this.learnUntilMs;
    if (learning && same(this.sdpRtp, host, port) && !same(this.rtpDst, host, port)) {
      this.latch(host, port, ssrc); // the PBX itself, from where its SDP says: it wins
      return true;
    }
    if (same(this.rtpDst, host, port) && (this.latchedSsrc === undefined || this.latchedSsrc === ssrc || learning)) {
      if (this.latchedSsrc === undefined) this.latch(host, port, ssrc);
      else this.latchedSsrc = ssrc;
      return true;
    }
    if (!learning) return false;
    // Within the window: the first source, or the latched SSRC from a new source (NAT rebinding).
    if (this.latchedSsrc !== undefined && this.latchedSsrc !== ssrc) return false;
    this.latch(host, port, ssrc);
    return true;
  }

  private latch(host: string, port: number, ssrc: number): void {
    this.rtpDst = { host, port };
    this.latchedSsrc = ssrc;
    this.latchedTo = `${host}:${port}`;
    if (!this.rtcpMux && this.rtcpDst?.host !== host) this.rtcpDst = { host, port: port + 1 };
    this.log.debug({ callId: this.callId, from: this.latchedTo, ssrc }, 'PBX RTP source learned');
  }

  private drop(what: string, host: string, port: number): void {
    if (this.dropped++ === 0) {
      this.log.warn({ callId: this.callId, from: `${host}:${port}`, expected: this.latchedTo ?? (this.sdpRtp ? `${this.sdpRtp.host}:${this.sdpRtp.port}` : 'none') }, `PBX ${what} from an unexpected source dropped`);
    }
  }

  private onRtpMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const rtp = parseRtp(msg);
    if (!rtp) return;
    if (!this.acceptRtp(rinfo.address, rinfo.port, rtp.ssrc)) return this.drop('RTP', rinfo.address, rinfo.port);
    this.packetsIn++;
    if (this.rules.mode === 'strict') this.latchedTo ??= `${rinfo.address}:${rinfo.port}`;
    this.onRtp(rtp);
  }

  private onRtcpMessage(rinfo: dgram.RemoteInfo): void {
    const ok =
      this.rules.mode === 'strict'
        ? same(this.sdpRtcp, rinfo.address, rinfo.port)
        : this.rtpDst !== undefined && this.rtpDst.host === rinfo.address && (this.latchedSsrc !== undefined || same(this.sdpRtcp, rinfo.address, rinfo.port));
    if (!ok) return this.drop('RTCP', rinfo.address, rinfo.port);
    // Learn mode: answer to where the PBX's RTCP comes from (its NAT binding).
    if (this.rules.mode === 'learn' && !same(this.rtcpDst, rinfo.address, rinfo.port)) this.rtcpDst = { host: rinfo.address, port: rinfo.port };
  }

  /** One RTP packet on `out` toward the PBX; false when there is nowhere to send it yet. */
  send(out: RtpOutStream, pt: number, f: { seq: number; ts: number; marker: boolean }, payload: Uint8Array): boolean {
    const ports = this.ports;
    const dst = this.rtpDst;
    if (!ports || !dst) return false;
    out.count(payload.length);
    this.sendTo(ports.rtp, buildRtp(pt, f.marker, f.seq, f.ts, out.ssrc, payload), dst);
    return true;
  }

  sendRtcp(packet: Buffer): void {
    const ports = this.ports;
    const dst = this.rtcpMux ? this.rtpDst : this.rtcpDst;
    if (!ports || !dst) return;
    this.sendTo(this.rtcpMux ? ports.rtp : ports.rtcp, packet, dst);
  }

  /** Never throws (a send error must not break the engine's shared tick): logged once per call. */
  private sendTo(sock: dgram.Socket, packet: Buffer, dst: Address): void {
    if (dst.host === '0.0.0.0') return; // RFC 2543 hold: nowhere to send
    try {
      sock.send(packet, dst.port, dst.host);
    } catch (err) {
      if (this.sendErrors++ === 0) this.log.warn({ callId: this.callId, to: `${dst.host}:${dst.port}`, err: (err as Error).message }, 'PBX send failed');
    }
  }

  async close(allocator: PortAllocator): Promise<void> {
    if (this.ports) await allocator.release(this.ports);
    this.ports = undefined;
  }
}
