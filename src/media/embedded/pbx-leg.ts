/**
 * The PBX leg of an embedded session: the plain RTP/RTCP UDP port pair, where to send (from the
 * PBX's SDP, then latched to where its RTP really comes from) and RTP/RTCP out.
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

export class PbxLeg {
  private ports: PortPair | undefined;
  /** Where RTP (and, with rtcp-mux, RTCP) goes: the SDP's address, then the latched source. */
  private rtpDst: Address | undefined;
  private rtcpDst: Address | undefined;
  private rtcpMux = false;
  private latched = false;
  latchedTo: string | undefined;
  packetsIn = 0;

  constructor(
    private readonly callId: string,
    private readonly log: Logger,
    /** Each RTP packet the PBX sends (already checked against the address rules). */
    private readonly onRtp: (rtp: RtpView) => void,
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
    rtcp.on('message', (_msg, rinfo) => {
      // Symmetric RTCP: answer to where the PBX's RTCP comes from.
      if (this.rtcpDst?.host !== rinfo.address || this.rtcpDst.port !== rinfo.port) {
        this.rtcpDst = { host: rinfo.address, port: rinfo.port };
      }
    });
    rtp.on('error', (err) => this.log.warn({ callId: this.callId, err: err.message }, 'PBX RTP socket error'));
    rtcp.on('error', (err) => this.log.warn({ callId: this.callId, err: err.message }, 'PBX RTCP socket error'));
    return this.ports.port;
  }

  /** The address the PBX's latest SDP names (a new one drops the latch). */
  setRemote(p: PlainMedia): void {
    this.rtcpMux = p.rtcpMux;
    const changed = !this.rtpDst || this.rtpDst.host !== p.host || this.rtpDst.port !== p.port;
    if (!changed) return;
    this.rtpDst = { host: p.host, port: p.port };
    this.rtcpDst = p.rtcpMux ? undefined : { host: p.host, port: p.rtcpPort };
    this.latched = false;
  }

  private onRtpMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const rtp = parseRtp(msg);
    if (!rtp) return;
    this.packetsIn++;
    // Symmetric RTP: send where the PBX really sends from (NAT, SBCs, a different media host).
    if (!this.latched || this.rtpDst?.host !== rinfo.address || this.rtpDst.port !== rinfo.port) {
      if (this.rtpDst?.host !== rinfo.address || this.rtpDst.port !== rinfo.port) {
        this.log.debug({ callId: this.callId, from: `${rinfo.address}:${rinfo.port}` }, 'PBX RTP latched');
      }
      this.rtpDst = { host: rinfo.address, port: rinfo.port };
      this.latched = true;
      this.latchedTo = `${rinfo.address}:${rinfo.port}`;
    }
    this.onRtp(rtp);
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

  private sendTo(sock: dgram.Socket, packet: Buffer, dst: Address): void {
    sock.send(packet, dst.port, dst.host);
  }

  async close(allocator: PortAllocator): Promise<void> {
    if (this.ports) await allocator.release(this.ports);
    this.ports = undefined;
  }
}
