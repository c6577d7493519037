/**
 * The WhatsApp leg of an embedded session: a werift peer connection (full ICE agent, controlling
 * toward WhatsApp's ICE-lite; DTLS client when answering; SRTP), its DTLS state, and RTP/RTCP
 * in and out. RTP is taken from the DTLS transport before werift's router, which drops SSRCs the
 * SDP does not announce. The DTLS handshake is guarded (dtls-guard.ts): WhatsApp may get our
 * answer, and so start its DTLS side, seconds after ICE is up.
 */
import { RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, type RTCDtlsTransport, type RtpPacket } from 'werift';
import type { RtcpPacket } from 'werift';
import { WHATSAPP_OPUS_CHANNELS, WHATSAPP_OPUS_RATE } from '../whatsapp-profile.js';
import { guardDtlsHandshake, type DtlsGuardStats } from './dtls-guard.js';
import { RtpOutStream } from './rtp.js';

export interface WhatsAppLegOptions {
  /** Host candidate addresses; empty = every non-internal IPv4 address. */
  iceAddresses: string[];
  icePortRange?: [number, number];
}

export interface WhatsAppLegEvents {
  rtp(packet: RtpPacket): void;
  /** DTLS state changes: 'connected', 'failed', 'closed', ... */
  state(state: string): void;
}

const GATHER_TIMEOUT_MS = 5000;

export class WhatsAppLeg {
  readonly pc: RTCPeerConnection;
  private dtls: RTCDtlsTransport | undefined;
  private readonly unsubs: Array<() => void> = [];
  /** Our stream toward WhatsApp (SSRC of werift's sender), once the transport exists. */
  out: RtpOutStream | undefined;
  connected = false;
  dtlsState = 'new';
  /** What the DTLS guard did (repeated HelloVerifyRequests dropped, handshake timeout). */
  dtlsGuard: DtlsGuardStats | undefined;

  constructor(
    opts: WhatsAppLegOptions,
    codec: { opusPt: number; opusFmtp: string; tePt: number | undefined },
    private readonly events: WhatsAppLegEvents,
  ) {
    this.pc = createPeerConnection(opts, codec);
    this.pc.addTransceiver('audio', { direction: 'sendrecv' });
  }

  /** Our SDP (offer or answer) once ICE gathering is complete, the transport hooked. */
  async localDescription(kind: 'offer' | 'answer'): Promise<string> {
    const desc = kind === 'offer' ? await this.pc.createOffer() : await this.pc.createAnswer();
    await this.pc.setLocalDescription(desc);
    this.hookTransport();
    await this.waitGathered();
    return this.pc.localDescription!.sdp;
  }

  async setRemote(type: 'offer' | 'answer', sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type, sdp });
    if (type === 'answer') this.hookTransport();
  }

  private async waitGathered(): Promise<void> {
    const pc = this.pc;
    if (pc.iceGatheringState === 'complete') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        unSubscribe();
        reject(new Error(`ICE gathering did not complete in ${GATHER_TIMEOUT_MS / 1000} s`));
      }, GATHER_TIMEOUT_MS);
      const { unSubscribe } = pc.iceGatheringStateChange.subscribe((s) => {
        if (s === 'complete') {
          clearTimeout(timer);
          unSubscribe();
          resolve();
        }
      });
    });
  }

  /** Subscribe to the (bundled) DTLS transport once it exists. */
  private hookTransport(): void {
    const dtls = this.pc.dtlsTransports[0];
    if (!dtls || this.dtls === dtls) return;
    this.dtls = dtls;
    const sender = this.pc.getTransceivers()[0]?.sender;
    this.out = new RtpOutStream(48000, sender?.ssrc);
    const guard = guardDtlsHandshake(dtls);
    this.dtlsGuard = guard.stats;
    this.unsubs.push(guard.dispose);
    this.unsubs.push(dtls.onRtp.subscribe((rtp) => this.events.rtp(rtp)).unSubscribe);
    this.unsubs.push(
      dtls.onStateChange.subscribe((state) => {
        this.dtlsState = state;
        if (state === 'connected') this.connected = true;
        else if (state === 'closed' || state === 'failed') this.connected = false;
        this.events.state(state);
      }).unSubscribe,
    );
  }

  get dtlsRole(): string | undefined {
    return this.dtls?.role;
  }

  /** One RTP packet on our stream; dropped until DTLS is up. */
  send(pt: number, marker: boolean, seq: number, ts: number, payload: Buffer): boolean {
    const dtls = this.dtls;
    const out = this.out;
    if (!dtls || !this.connected || !out) return false;
    const header = new RtpHeader({ payloadType: pt, marker, sequenceNumber: seq, timestamp: ts, ssrc: out.ssrc });
    out.count(payload.length);
    dtls.sendRtp(payload, header).catch(() => undefined);
    return true;
  }

  sendRtcp(packets: RtcpPacket[]): void {
    this.dtls?.sendRtcp(packets).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.connected = false;
    for (const u of this.unsubs.splice(0)) {
      try {
        u();
      } catch {
        /* ignore */
      }
    }
    await this.pc.close();
    await this.closeIceSockets();
  }

  /**
   * werift binds the leg's ICE socket while it gathers candidates; a leg closed during that
   * gathering (a call hung up while its offer was being made) gets its socket after pc.close()
   * and would hold it, and its port in the ICE range, for good. Close the ICE connections again
   * once gathering has ended (bounded; close() may be called again for the same purpose).
   */
  private async closeIceSockets(): Promise<void> {
    const end = performance.now() + GATHER_TIMEOUT_MS;
    for (const t of this.pc.iceTransports) {
      while (t.gatheringState === 'gathering' && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
      await t.connection.close().catch(() => undefined);
    }
  }
}

function createPeerConnection(
  opts: WhatsAppLegOptions,
  codec: { opusPt: number; opusFmtp: string; tePt: number | undefined },
): RTCPeerConnection {
  const addrs = opts.iceAddresses;
  const codecs = [
    new RTCRtpCodecParameters({
      mimeType: 'audio/opus',
      clockRate: WHATSAPP_OPUS_RATE,
      channels: WHATSAPP_OPUS_CHANNELS,
      payloadType: codec.opusPt,
      parameters: codec.opusFmtp,
      rtcpFeedback: [],
    }),
  ];
  if (codec.tePt !== undefined) {
    codecs.push(new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, payloadType: codec.tePt }));
  }
  return new RTCPeerConnection({
    iceServers: [],
    // werift drops loopback from its interface scan and falls back to every interface when a
    // filter matches nothing; with explicit addresses, skip the scan and announce only those.
    ...(addrs.length > 0
      ? {
          iceUseIpv4: false,
          iceAdditionalHostAddresses: [...addrs],
          ...(addrs.length === 1 ? { iceInterfaceAddresses: { udp4: addrs[0]! } } : {}),
        }
      : { iceUseIpv4: true }),
    iceUseIpv6: false,
    iceUseTcp: false,
    ...(opts.icePortRange ? { icePortRange: opts.icePortRange } : {}),
    bundlePolicy: 'max-bundle',
    codecs: { audio: codecs },
    headerExtensions: { audio: [] },
  });
}
