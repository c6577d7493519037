/**
 * The embedded media engine: WhatsApp's WebRTC leg on werift (full ICE agent, controlling toward
 * WhatsApp's ICE-lite; DTLS client when answering; SRTP) and the PBX's plain RTP leg on a UDP
 * port pair, in this process. Audio is transcoded here (Opus <-> G.722/PCMU/PCMA) or passed
 * through (Opus both sides); RFC 4733 events are relayed; every outgoing stream has our own
 * SSRC, sequence numbers and timestamps.
 *
 * Pipeline (one session):
 *   WhatsApp --SRTP/Opus 48k clock--> werift dtlsTransport.onRtp --> Opus decode at 16 kHz
 *     --> [G.722 encode | FIR 16k->8k + G.711] --> 20 ms frames --> PBX (own SSRC/seq/ts)
 *   PBX --RTP--> [G.722 decode | G.711 + FIR 8k->16k] --> 20 ms FIFO --> Opus encode (16 kHz,
 *     VOIP, 20 kbit/s, complexity 5) --> dtlsTransport.sendRtp --> WhatsApp
 * Opus runs at 16 kHz: WhatsApp's fmtp says maxplaybackrate=16000 and sprop-maxcapturerate=16000,
 * so 48 kHz PCM would only cost CPU. libopus decodes/encodes at 16 kHz itself; our resampler
 * (src/media/codecs/resampler.ts) does 16 <-> 8 kHz for G.711 (and 48 kHz where asked).
 *
 * Keep-alive toward WhatsApp (it drops a call after ~20 s without business media at the start,
 * 30 s mid-call): once DTLS is up, whenever the PBX has sent no audio for 100 ms (ringing, hold,
 * a silent PBX) an Opus silence frame is sent every 20 ms on the same stream, and an RTCP SR
 * (with SDES CNAME and a report block on WhatsApp's stream) every ~2 s.
 * The rtpengine engine has no such filler by default. The rtpengine (10.x, ng protocol) options
 * that do the same job are, for the record (not used by src/media/rtpengine/, not edited here):
 * - `generate-RTCP` (ng flag, or `rtcp-interval`/`--rtcp-interval`): rtpengine sends its own RTCP
 *   SR/RR on a leg instead of only forwarding the other side's;
 * - `silence-detect`/`--silence-detect` and `cn-payload`/`--cn-payload`: with transcoding,
 *   replaces silence with comfort noise (RFC 3389) frames;
 * - `player`/`play media` ng command (`--audio-player=on-demand|play-media|transcoding|always`,
 *   `--audio-buffer-length`, `--audio-buffer-delay`): with `--audio-player=always` rtpengine
 *   generates the output stream itself on its own clock, so a leg keeps getting frames (silence)
 *   while the other side sends nothing; `play media` with `repeat-times` plays a file (e.g. a
 *   silence or ringback WAV) into the WhatsApp leg while the PBX rings;
 * - `media-handover` / `port-latching`: symmetric RTP re-latching to a new source address,
 *   not a keep-alive but the other half of the same concern;
 * - `--silence-detect` alone only affects detection; `always-transcode` plus the audio player is
 *   what guarantees a continuous 50 packets/s toward WhatsApp.
 */
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtcpReceiverInfo,
  RtcpSenderInfo,
  RtcpSourceDescriptionPacket,
  RtcpSrPacket,
  RtpHeader,
  SourceDescriptionChunk,
  SourceDescriptionItem,
  ntpTime,
  type RTCDtlsTransport,
  type RtpPacket,
} from 'werift';
import type dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { MediaError, type EngineReadiness, type MediaEngine, type MediaFailure, type MediaSession } from '../types.js';
import { checkWhatsAppAnswer, sameSdpIgnoringVersion } from '../sdp-rules.js';
import { G722Decoder, G722Encoder } from '../codecs/g722.js';
import { decodePcma, decodePcmu, encodePcma, encodePcmu } from '../codecs/g711.js';
import { Resampler } from '../codecs/resampler.js';
import { OPUS_MAX_FRAME, OpusCodec } from '../codecs/opus.js';
import { FillSchedule } from './keepalive.js';
import { PcmFifo } from './pcm-fifo.js';
import { PortAllocator, type PortPair } from './ports.js';
import { RtpOutStream, TelephoneEventRelay, buildRtp, parseRtp } from './rtp.js';
import {
  WA_OPUS_PT,
  WA_TE_PT,
  WHATSAPP_OPUS_FMTP,
  parsePlain,
  pickCodec,
  shapeWebRtcSdp,
  webRtcCodecs,
  writePlainAnswer,
  writePlainOffer,
  type PbxCodecName,
  type PlainMedia,
  type SdpCodec,
} from './sdp.js';

const ENGINE = 'embedded';
/**
 * PCM between the codecs runs at the PBX codec's own rate: 8 kHz for G.711 (libopus decodes to
 * and encodes from 8 kHz itself, so a G.711 call resamples nothing), 16 kHz for G.722.
 */
type PcmRate = 8000 | 16000;
const FRAME_16K = 320; // 20 ms at 16 kHz (the largest frame)
const OPUS_TICKS = 960; // 20 ms at the 48 kHz RTP clock
/** A 20 ms Opus frame of silence (TOC 0xF8: CELT FB 20 ms mono, one frame). */
const OPUS_SILENCE = Buffer.from([0xf8, 0xff, 0xfe]);
const IDLE_MS = 100;
const RTCP_WA_MS = 2000;
const RTCP_PBX_MS = 5000;

export interface EmbeddedEngineOptions {
  /** Address the plain RTP sockets bind to. */
  rtpHost: string;
  /** Address written into the SDP for the PBX. */
  rtpAdvertiseHost: string;
  /** Host candidate addresses for WhatsApp; empty = every non-internal IPv4 address. */
  iceAddresses: string[];
  portMin: number;
  portMax: number;
  logger: Logger;
  /** PBX codecs offered (inbound) / accepted (outbound), in preference order. */
  pbxCodecs?: PbxCodecName[];
  /** ICE (WhatsApp side) port range; default: ephemeral ports. */
  icePortRange?: [number, number];
  /** Opus encoder bitrate toward WhatsApp in bit/s; default 20000 (Meta's maxaveragebitrate). */
  opusBitrate?: number;
  /** Opus encoder complexity 0..10; default 5 (half the CPU of libopus' default 10 in WebAssembly). */
  opusComplexity?: number;
}

const DEFAULT_CODECS: PbxCodecName[] = ['opus', 'G722', 'PCMU', 'PCMA'];

/** Counters of one session, for tests, health and the bench. */
export interface SessionStats {
  waIn: number;
  waOut: number;
  pbxIn: number;
  pbxOut: number;
  silenceOut: number;
  dtmfToPbx: number;
  dtmfToWa: number;
  decodeErrors: number;
  dtlsState: string;
  pbxCodec: string | undefined;
  latchedTo: string | undefined;
}

class EmbeddedSession implements MediaSession {
  private pc: RTCPeerConnection | undefined;
  private dtls: RTCDtlsTransport | undefined;
  private ports: PortPair | undefined;
  private unsubs: Array<() => void> = [];
  private closing: Promise<void> | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  // negotiation
  private direction: 'inbound' | 'outbound' | undefined;
  private waOpusPt = WA_OPUS_PT;
  private waTePt: number | undefined = WA_TE_PT;
  private whatsAppAnswer: string | undefined;
  private lastPbxSdp: string | undefined;
  private pbxPlain: PlainMedia | undefined;
  private pbxOffer: PlainMedia | undefined;
  private sendCodec: (SdpCodec & { kind: PbxCodecName }) | undefined;
  private pbxTePt: number | undefined;

  // PBX addresses (from SDP, then latched to the actual source)
  private pbxRtp: { host: string; port: number } | undefined;
  private pbxRtcp: { host: string; port: number } | undefined;
  private latched = false;

  // streams
  private waOut: RtpOutStream | undefined;
  private pbxOut: RtpOutStream | undefined;
  private readonly dtmfToPbx = new TelephoneEventRelay(8000, 8000);
  private readonly dtmfToWa = new TelephoneEventRelay(8000, 8000);
  private passthroughLastIn: { ssrc: number; ts: number } | undefined;
  private passthroughLastInPbx: { ssrc: number; ts: number } | undefined;

  // codecs
  /** One libopus handler per session: its encoder feeds WhatsApp, its decoder reads WhatsApp. */
  private opus: OpusCodec | undefined;
  private waInSsrc: number | undefined;
  private pbxInSsrc: number | undefined;
  private g722Enc: G722Encoder | undefined;
  private g722Dec: G722Decoder | undefined;
  /** Rate of the PCM the Opus codec reads and writes (see PcmRate). */
  private pcmRate: PcmRate = 16000;
  /** Only when the PBX sends another band than we send it (e.g. G.722 sent, PCMU received). */
  private rxUp8to16: Resampler | undefined;
  private rxDown16to8: Resampler | undefined;
  private toPbx = new PcmFifo(FRAME_16K);
  private toWa = new PcmFifo(FRAME_16K);
  // Per-frame scratch buffers (every frame is consumed before the next one is produced).
  private readonly opusPcm = new Int16Array(OPUS_MAX_FRAME);
  private readonly payloadOut = new Uint8Array(FRAME_16K);
  private pcmIn = new Int16Array(2 * FRAME_16K);
  private pcm16In = new Int16Array(2 * FRAME_16K);
  /** Codec name of the last PBX payload type seen, for the SDP it was looked up in. */
  private ptName: { pt: number; plain: PlainMedia | undefined; offer: PlainMedia | undefined; name: string } | undefined;

  // state for keep-alive and RTCP
  connected = false;
  private lastPbxAudioMs = 0;
  private readonly fill = new FillSchedule();
  private lastRtcpWa = 0;
  private lastRtcpPbx = 0;
  private waInHighestSeq = 0;
  private waInPackets = 0;
  private readonly cname = randomBytes(8).toString('hex');
  readonly stats: SessionStats = {
    waIn: 0,
    waOut: 0,
    pbxIn: 0,
    pbxOut: 0,
    silenceOut: 0,
    dtmfToPbx: 0,
    dtmfToWa: 0,
    decodeErrors: 0,
    dtlsState: 'new',
    pbxCodec: undefined,
    latchedTo: undefined,
  };

  constructor(
    readonly callId: string,
    private readonly engine: EmbeddedEngine,
    private readonly log: Logger,
  ) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private fail(message: string, reason: string, cause?: unknown): MediaError {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new MediaError(`${message}${detail}`, ENGINE, reason);
  }

  private assertOpen(): void {
    if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
  }

  // ---------------------------------------------------------------- WebRTC leg

  private createPeerConnection(opusPt: number, opusFmtp: string, tePt: number | undefined): RTCPeerConnection {
    const o = this.engine.opts;
    const addrs = o.iceAddresses;
    const codecs = [
      new RTCRtpCodecParameters({
        mimeType: 'audio/opus',
        clockRate: 48000,
        channels: 2,
        payloadType: opusPt,
        parameters: opusFmtp,
        rtcpFeedback: [],
      }),
    ];
    if (tePt !== undefined) {
      codecs.push(new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, payloadType: tePt }));
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
      ...(o.icePortRange ? { icePortRange: o.icePortRange } : {}),
      bundlePolicy: 'max-bundle',
      codecs: { audio: codecs },
      headerExtensions: { audio: [] },
    });
  }

  private async waitGathered(pc: RTCPeerConnection): Promise<void> {
    if (pc.iceGatheringState === 'complete') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        unSubscribe();
        reject(new Error('ICE gathering did not complete in 5 s'));
      }, 5000);
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
    const pc = this.pc;
    const dtls = pc?.dtlsTransports[0];
    if (!pc || !dtls || this.dtls === dtls) return;
    this.dtls = dtls;
    const sender = pc.getTransceivers()[0]?.sender;
    this.waOut = new RtpOutStream(48000, sender?.ssrc);
    this.unsubs.push(dtls.onRtp.subscribe((rtp) => this.onWaRtp(rtp)).unSubscribe);
    this.unsubs.push(
      dtls.onStateChange.subscribe((state) => {
        this.stats.dtlsState = state;
        if (state === 'connected') {
          this.connected = true;
          this.log.debug({ callId: this.callId, role: dtls.role }, 'WhatsApp leg connected (ICE + DTLS)');
        } else if (state === 'closed' || state === 'failed') {
          this.connected = false;
          if (state === 'failed') this.log.warn({ callId: this.callId }, 'WhatsApp DTLS failed');
        }
      }).unSubscribe,
    );
  }

  private sendToWa(pt: number, marker: boolean, seq: number, ts: number, payload: Buffer): void {
    const dtls = this.dtls;
    if (!dtls || !this.connected || !this.waOut) return;
    const header = new RtpHeader({ payloadType: pt, marker, sequenceNumber: seq, timestamp: ts, ssrc: this.waOut.ssrc });
    this.waOut.count(payload.length);
    this.stats.waOut++;
    dtls.sendRtp(payload, header).catch(() => undefined);
  }

  // ---------------------------------------------------------------- PBX leg

  private async openPbxPorts(): Promise<PortPair> {
    if (this.ports) return this.ports;
    try {
      this.ports = await this.engine.ports.allocate();
    } catch (err) {
      throw this.fail('no RTP port for the PBX leg', 'ports', err);
    }
    const { rtp, rtcp } = this.ports;
    rtp.on('message', (msg, rinfo) => this.onPbxPacket(msg, rinfo));
    rtcp.on('message', (_msg, rinfo) => {
      // Symmetric RTCP: answer to where the PBX's RTCP comes from.
      if (this.pbxRtcp?.host !== rinfo.address || this.pbxRtcp.port !== rinfo.port) {
        this.pbxRtcp = { host: rinfo.address, port: rinfo.port };
      }
    });
    rtp.on('error', (err) => this.log.warn({ callId: this.callId, err: err.message }, 'PBX RTP socket error'));
    rtcp.on('error', (err) => this.log.warn({ callId: this.callId, err: err.message }, 'PBX RTCP socket error'));
    return this.ports;
  }

  private setPbxRemote(p: PlainMedia): void {
    const changed = !this.pbxRtp || this.pbxRtp.host !== p.host || this.pbxRtp.port !== p.port;
    if (changed) {
      this.pbxRtp = { host: p.host, port: p.port };
      this.pbxRtcp = p.rtcpMux ? undefined : { host: p.host, port: p.rtcpPort };
      this.latched = false;
    }
    this.pbxPlain = p;
  }

  private selectSendCodec(codec: SdpCodec & { kind: PbxCodecName }, tePt: number | undefined): void {
    const prev = this.sendCodec?.kind;
    this.sendCodec = codec;
    this.pbxTePt = tePt;
    this.stats.pbxCodec = `${codec.name}/${codec.pt}`;
    if (prev === codec.kind) return;
    this.pbxOut = new RtpOutStream(codec.kind === 'opus' ? 48000 : 8000, this.pbxOut?.ssrc);
    this.toPbx.clear();
    if (codec.kind !== 'opus') this.ensureCodecs();
  }

  /** The Opus codec, at the PCM rate the PBX codec we send wants (made anew if that changed). */
  private ensureCodecs(): void {
    const kind = this.sendCodec?.kind;
    const rate: PcmRate = kind === 'PCMU' || kind === 'PCMA' ? 8000 : 16000;
    if (this.opus && this.pcmRate === rate) return;
    this.opus?.delete();
    if (this.pcmRate !== rate) {
      this.pcmRate = rate;
      this.toPbx = new PcmFifo(rate / 50);
      this.toWa = new PcmFifo(rate / 50);
    }
    this.opus = new OpusCodec(rate, 1);
    this.opus.setBitrate(this.engine.opts.opusBitrate ?? 20000);
    this.opus.setComplexity(this.engine.opts.opusComplexity ?? 5);
  }

  private sendToPbx(pt: number, f: { seq: number; ts: number; marker: boolean }, payload: Uint8Array): void {
    const ports = this.ports;
    const dst = this.pbxRtp;
    if (!ports || !dst || !this.pbxOut || this.closing) return;
    const pkt = buildRtp(pt, f.marker, f.seq, f.ts, this.pbxOut.ssrc, payload);
    this.pbxOut.count(payload.length);
    this.stats.pbxOut++;
    ports.rtp.send(pkt, dst.port, dst.host);
  }

  // ---------------------------------------------------------------- media: WhatsApp -> PBX

  private onWaRtp(rtp: RtpPacket): void {
    if (this.closing) return;
    const now = performance.now();
    this.stats.waIn++;
    this.waInPackets++;
    this.waInHighestSeq = rtp.header.sequenceNumber;
    const h = rtp.header;
    const codec = this.sendCodec;
    if (!codec || !this.pbxOut || !this.pbxRtp) return;
    if (h.payloadType === this.waTePt) {
      if (this.pbxTePt === undefined) return;
      const r = this.dtmfToPbx.relay(h.ssrc, h.timestamp, rtp.payload, this.pbxOut, now);
      if (r) {
        this.stats.dtmfToPbx++;
        this.sendToPbx(this.pbxTePt, r, r.payload);
      }
      return;
    }
    if (h.payloadType !== this.waOpusPt || rtp.payload.length === 0) return;
    if (codec.kind === 'opus') {
      // Passthrough: the payload as is, our SSRC/seq/ts; ts advance from the input's own.
      const last = this.passthroughLastIn;
      let ticks = OPUS_TICKS;
      if (last && last.ssrc === h.ssrc) {
        const d = (h.timestamp - last.ts) >>> 0;
        if (d > 0 && d <= 5760) ticks = d;
      }
      this.passthroughLastIn = { ssrc: h.ssrc, ts: h.timestamp };
      this.sendToPbx(codec.pt, this.pbxOut.frame(ticks, now), rtp.payload);
      return;
    }
    if (this.waInSsrc !== h.ssrc) {
      // A new source: fresh decoder state, nothing of the old stream left in the FIFO.
      if (this.waInSsrc !== undefined) {
        this.opus?.delete();
        this.opus = undefined;
        this.ensureCodecs();
        this.toPbx.clear();
      }
      this.waInSsrc = h.ssrc;
    }
    let pcm: Int16Array;
    try {
      this.ensureCodecs();
      pcm = this.opus!.decode(rtp.payload, this.opusPcm);
    } catch {
      this.stats.decodeErrors++;
      return;
    }
    this.toPbx.push(pcm);
    for (let frame = this.toPbx.take(); frame; frame = this.toPbx.take()) this.encodeToPbx(frame, now);
  }

  /** One 20 ms frame at pcmRate, which ensureCodecs() made the send codec's own rate. */
  private encodeToPbx(frame: Int16Array, now: number): void {
    const codec = this.sendCodec!;
    let payload: Uint8Array;
    if (codec.kind === 'G722') {
      this.g722Enc ??= new G722Encoder();
      payload = this.g722Enc.encode(frame, this.payloadOut.subarray(0, frame.length >> 1));
    } else {
      const out = this.payloadOut.subarray(0, frame.length);
      payload = codec.kind === 'PCMU' ? encodePcmu(frame, out) : encodePcma(frame, out);
    }
    this.sendToPbx(codec.pt, this.pbxOut!.frame(160, now), payload);
  }

  // ---------------------------------------------------------------- media: PBX -> WhatsApp

  private onPbxPacket(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closing) return;
    const rtp = parseRtp(msg);
    if (!rtp) return;
    this.stats.pbxIn++;
    // Symmetric RTP: send where the PBX really sends from (NAT, SBCs, a different media host).
    if (!this.latched || this.pbxRtp?.host !== rinfo.address || this.pbxRtp.port !== rinfo.port) {
      if (this.pbxRtp?.host !== rinfo.address || this.pbxRtp.port !== rinfo.port) {
        this.log.debug({ callId: this.callId, from: `${rinfo.address}:${rinfo.port}` }, 'PBX RTP latched');
      }
      this.pbxRtp = { host: rinfo.address, port: rinfo.port };
      this.latched = true;
      this.stats.latchedTo = `${rinfo.address}:${rinfo.port}`;
    }
    const now = performance.now();
    if (!this.waOut) return;
    if (rtp.pt === this.pbxTePt) {
      if (this.waTePt === undefined) return;
      const r = this.dtmfToWa.relay(rtp.ssrc, rtp.ts, rtp.payload, this.waOut, now);
      if (r) {
        this.stats.dtmfToWa++;
        this.sendToWa(this.waTePt, r.marker, r.seq, r.ts, r.payload);
      }
      return;
    }
    const name = this.pbxPtName(rtp.pt);
    if (name === 'OPUS') {
      this.lastPbxAudioMs = now;
      const last = this.passthroughLastInPbx;
      let ticks = OPUS_TICKS;
      if (last && last.ssrc === rtp.ssrc) {
        const d = (rtp.ts - last.ts) >>> 0;
        if (d > 0 && d <= 5760) ticks = d;
      }
      this.passthroughLastInPbx = { ssrc: rtp.ssrc, ts: rtp.ts };
      const f = this.waOut.frame(ticks, now);
      this.sendToWa(this.waOpusPt, f.marker, f.seq, f.ts, Buffer.from(rtp.payload));
      return;
    }
    if (this.pbxInSsrc !== rtp.ssrc) {
      if (this.pbxInSsrc !== undefined) {
        this.g722Dec = undefined;
        this.rxUp8to16?.reset();
        this.rxDown16to8?.reset();
        this.toWa.clear();
      }
      this.pbxInSsrc = rtp.ssrc;
    }
    if (name !== 'G722' && name !== 'PCMU' && name !== 'PCMA') return; // comfort noise, unknown payloads
    this.ensureCodecs();
    const n = rtp.payload.length;
    let pcm: Int16Array;
    if (name === 'G722') {
      this.g722Dec ??= new G722Decoder();
      if (this.pcm16In.length < 2 * n) this.pcm16In = new Int16Array(4 * n);
      pcm = this.g722Dec.decode(rtp.payload, this.pcm16In.subarray(0, 2 * n));
      if (this.pcmRate === 8000) pcm = this.resampleRx((this.rxDown16to8 ??= new Resampler(16000, 8000)), pcm, this.pcmIn);
    } else {
      if (this.pcmIn.length < n) this.pcmIn = new Int16Array(2 * n);
      const in8 = this.pcmIn.subarray(0, n);
      pcm = name === 'PCMU' ? decodePcmu(rtp.payload, in8) : decodePcma(rtp.payload, in8);
      if (this.pcmRate === 16000) pcm = this.resampleRx((this.rxUp8to16 ??= new Resampler(8000, 16000)), pcm, this.pcm16In);
    }
    this.lastPbxAudioMs = now;
    this.toWa.push(pcm);
    const frameSamples = this.pcmRate / 50;
    for (let frame = this.toWa.take(); frame; frame = this.toWa.take()) {
      const enc = this.opus!.encode(frame, frameSamples);
      const f = this.waOut.frame(OPUS_TICKS, now);
      this.sendToWa(this.waOpusPt, f.marker, f.seq, f.ts, enc);
    }
  }

  /** PBX audio in the other band than pcmRate, into a scratch buffer (grown when too short). */
  private resampleRx(r: Resampler, pcm: Int16Array, scratch: Int16Array): Int16Array {
    const m = r.outputLength(pcm.length);
    const out = scratch.length >= m && scratch.buffer !== pcm.buffer ? scratch : new Int16Array(2 * m);
    return r.process(pcm, out);
  }

  /** Codec name (upper case) of a PBX payload type: from the SDP, else the static types. */
  private pbxPtName(pt: number): string {
    const c = this.ptName;
    if (c && c.pt === pt && c.plain === this.pbxPlain && c.offer === this.pbxOffer) return c.name;
    const offered = this.pbxPlain?.codecs.find((x) => x.pt === pt) ?? this.pbxOffer?.codecs.find((x) => x.pt === pt);
    const name = offered?.name.toUpperCase() ?? (pt === 0 ? 'PCMU' : pt === 8 ? 'PCMA' : pt === 9 ? 'G722' : '');
    this.ptName = { pt, plain: this.pbxPlain, offer: this.pbxOffer, name };
    return name;
  }

  // ---------------------------------------------------------------- keep-alive and RTCP (engine tick)

  tick(now: number): void {
    if (this.closing || !this.connected || !this.waOut) return;
    if (now - this.lastPbxAudioMs >= IDLE_MS) {
      // The PBX is silent: fill the WhatsApp stream with 20 ms Opus silence frames (on a schedule).
      for (let n = this.fill.due(now); n > 0; n--) {
        const f = this.waOut.frame(OPUS_TICKS, now);
        this.stats.silenceOut++;
        this.sendToWa(this.waOpusPt, f.marker, f.seq, f.ts, OPUS_SILENCE);
      }
    } else {
      this.fill.stop();
    }
    if (now - this.lastRtcpWa >= RTCP_WA_MS) {
      this.lastRtcpWa = now;
      this.sendRtcpToWa();
    }
    if (now - this.lastRtcpPbx >= RTCP_PBX_MS && this.pbxOut && this.pbxOut.packets > 0) {
      this.lastRtcpPbx = now;
      this.sendRtcpToPbx();
    }
  }

  private sendRtcpToWa(): void {
    const dtls = this.dtls;
    const out = this.waOut;
    if (!dtls || !out) return;
    const reports =
      this.waInSsrc !== undefined || this.waInPackets > 0
        ? [
            new RtcpReceiverInfo({
              ssrc: this.waInSsrc ?? 0,
              fractionLost: 0,
              packetsLost: 0,
              highestSequence: this.waInHighestSeq,
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
        rtpTimestamp: out.lastTs,
        packetCount: out.packets,
        octetCount: out.octets,
      }),
      reports,
    });
    const sdes = new RtcpSourceDescriptionPacket({
      chunks: [new SourceDescriptionChunk({ source: out.ssrc, items: [new SourceDescriptionItem({ type: 1, text: this.cname })] })],
    });
    dtls.sendRtcp([sr, sdes]).catch(() => undefined);
  }

  private sendRtcpToPbx(): void {
    const ports = this.ports;
    const out = this.pbxOut;
    const dst = this.pbxPlain?.rtcpMux ? this.pbxRtp : this.pbxRtcp;
    if (!ports || !out || !dst) return;
    const ntp = ntpTime();
    const sr = Buffer.alloc(28);
    sr[0] = 0x80;
    sr[1] = 200;
    sr.writeUInt16BE(6, 2);
    sr.writeUInt32BE(out.ssrc >>> 0, 4);
    sr.writeBigUInt64BE(ntp, 8);
    sr.writeUInt32BE(out.lastTs >>> 0, 16);
    sr.writeUInt32BE(out.packets >>> 0, 20);
    sr.writeUInt32BE(out.octets >>> 0, 24);
    const sock = this.pbxPlain?.rtcpMux ? ports.rtp : ports.rtcp;
    sock.send(sr, dst.port, dst.host);
  }

  // ---------------------------------------------------------------- MediaSession: inbound

  offerFromWhatsApp(webrtcOffer: string): Promise<string> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.direction) throw new MediaError('offerFromWhatsApp called twice', ENGINE, 'state');
      this.direction = 'inbound';
      let info: ReturnType<typeof webRtcCodecs>;
      try {
        info = webRtcCodecs(webrtcOffer);
      } catch (err) {
        throw this.fail('unusable WhatsApp offer', 'sdp', err);
      }
      this.waOpusPt = info.opusPt;
      this.waTePt = info.tePt;
      const pc = this.createPeerConnection(info.opusPt, info.opusFmtp, info.tePt);
      this.pc = pc;
      pc.addTransceiver('audio', { direction: 'sendrecv' });
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp: webrtcOffer });
      } catch (err) {
        throw this.fail('werift rejected the WhatsApp offer', 'sdp', err);
      }
      const ports = await this.openPbxPorts();
      const o = this.engine.opts;
      return writePlainOffer(o.rtpAdvertiseHost, ports.port, o.pbxCodecs ?? DEFAULT_CODECS, info.opusPt);
    });
  }

  answerFromPbx(plainAnswer: string): Promise<string> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.direction !== 'inbound' || !this.pc) throw new MediaError('answerFromPbx before offerFromWhatsApp', ENGINE, 'no offer');
      if (this.whatsAppAnswer && plainAnswer === this.lastPbxSdp) return this.whatsAppAnswer;
      let plain: PlainMedia;
      try {
        plain = parsePlain(plainAnswer);
      } catch (err) {
        throw this.fail('unusable PBX answer', 'sdp', err);
      }
      const codec = pickCodec(plain.codecs, this.engine.opts.pbxCodecs ?? DEFAULT_CODECS);
      if (!codec) throw new MediaError(`PBX answer has no codec we offered (${plain.codecs.map((c) => c.name).join(',')})`, ENGINE, 'codec');
      const tePt = plain.codecs.find((c) => c.name.toLowerCase() === 'telephone-event' && c.rate === 8000)?.pt;
      this.setPbxRemote(plain);
      this.selectSendCodec(codec, tePt);
      this.lastPbxSdp = plainAnswer;
      if (this.whatsAppAnswer) return this.whatsAppAnswer; // accept SDP == pre_accept SDP

      const pc = this.pc;
      let sdp: string;
      try {
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.hookTransport();
        await this.waitGathered(pc);
        sdp = shapeWebRtcSdp(pc.localDescription!.sdp, 'active');
      } catch (err) {
        throw this.fail('WebRTC answer failed', 'webrtc', err);
      }
      const violations = checkWhatsAppAnswer(sdp);
      if (violations.length > 0) throw new MediaError(`embedded answer breaks WhatsApp rules: ${violations.join('; ')}`, ENGINE, 'sdp rules');
      this.whatsAppAnswer = sdp;
      return sdp;
    });
  }

  // ---------------------------------------------------------------- MediaSession: outbound

  private outboundOffer: string | undefined;

  offerFromPbx(plainOffer: string): Promise<string> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.outboundOffer) return this.outboundOffer;
      if (this.direction) throw new MediaError('offerFromPbx on an inbound session', ENGINE, 'state');
      this.direction = 'outbound';
      let plain: PlainMedia;
      try {
        plain = parsePlain(plainOffer);
      } catch (err) {
        throw this.fail('unusable PBX offer', 'sdp', err);
      }
      const codec = pickCodec(plain.codecs, this.engine.opts.pbxCodecs ?? DEFAULT_CODECS);
      if (!codec) throw new MediaError(`PBX offer has no codec we support (${plain.codecs.map((c) => c.name).join(',')})`, ENGINE, 'codec');
      this.pbxOffer = plain;
      this.setPbxRemote(plain);
      this.selectSendCodec(codec, plain.tePt);
      await this.openPbxPorts();

      this.waOpusPt = WA_OPUS_PT;
      this.waTePt = WA_TE_PT;
      const pc = this.createPeerConnection(WA_OPUS_PT, WHATSAPP_OPUS_FMTP, WA_TE_PT);
      this.pc = pc;
      pc.addTransceiver('audio', { direction: 'sendrecv' });
      let sdp: string;
      try {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        this.hookTransport();
        await this.waitGathered(pc);
        sdp = shapeWebRtcSdp(pc.localDescription!.sdp, 'actpass');
      } catch (err) {
        throw this.fail('WebRTC offer failed', 'webrtc', err);
      }
      this.outboundOffer = sdp;
      return sdp;
    });
  }

  answerFromWhatsApp(webrtcAnswer: string): Promise<string> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.direction !== 'outbound' || !this.pc || !this.pbxOffer || !this.sendCodec || !this.ports) {
        throw new MediaError('answerFromWhatsApp before offerFromPbx', ENGINE, 'no offer');
      }
      try {
        const info = webRtcCodecs(webrtcAnswer);
        this.waTePt = info.tePt;
        // WhatsApp answers with its ICE-lite at session level; werift then takes the controlling
        // role itself, and the DTLS role follows the answer's a=setup (active or passive).
        await this.pc.setRemoteDescription({ type: 'answer', sdp: webrtcAnswer });
        this.hookTransport();
      } catch (err) {
        throw this.fail('werift rejected the WhatsApp answer', 'sdp', err);
      }
      const o = this.engine.opts;
      return writePlainAnswer(o.rtpAdvertiseHost, this.ports.port, this.sendCodec, this.pbxOffer.tePt, this.pbxOffer.direction);
    });
  }

  // ---------------------------------------------------------------- teardown

  /**
   * Nothing to do: the engine sees the PBX's RTP itself and fills WhatsApp's stream with Opus
   * silence whenever the PBX has been silent for IDLE_MS (hold, ringing, silence suppression).
   */
  async pbxSending(sending: boolean): Promise<void> {
    this.log.debug({ callId: this.callId, pbxSending: sending }, 'PBX direction changed');
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.engine.forget(this);
      this.connected = false;
      for (const u of this.unsubs.splice(0)) {
        try {
          u();
        } catch {
          /* ignore */
        }
      }
      try {
        await this.pc?.close();
      } catch (err) {
        this.log.debug({ callId: this.callId, err: (err as Error).message }, 'werift close failed');
      }
      if (this.ports) await this.engine.ports.release(this.ports);
      this.opus?.delete();
      this.opus = undefined;
    })().catch(() => undefined);
    return this.closing;
  }

  private failureListener: ((f: MediaFailure) => void) | undefined;

  onFailure(listener: (failure: MediaFailure) => void): void {
    this.failureListener = listener;
  }

  /** Whether the latest PBX SDP changed the answer (never: WhatsApp keeps the first). */
  sameAnswer(sdp: string): boolean {
    return this.whatsAppAnswer !== undefined && sameSdpIgnoringVersion(sdp, this.whatsAppAnswer);
  }
}

export class EmbeddedEngine implements MediaEngine {
  readonly name = ENGINE;
  readonly ports: PortAllocator;
  private readonly sessions = new Map<string, EmbeddedSession>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    readonly opts: EmbeddedEngineOptions,
    private readonly log: Logger,
  ) {
    this.ports = new PortAllocator(opts.rtpHost, opts.portMin, opts.portMax);
    // One 20 ms clock for every session: keep-alive silence and RTCP.
    this.timer = setInterval(() => {
      const now = performance.now();
      for (const s of this.sessions.values()) s.tick(now);
    }, 20);
    this.timer.unref();
  }

  createSession(callId: string): MediaSession {
    if (this.closed) throw new MediaError('engine closed', ENGINE, 'closed');
    const s = new EmbeddedSession(callId, this, this.log);
    this.sessions.set(callId, s);
    return s;
  }

  /** Counters of a live session (tests, bench, health). */
  sessionStats(callId: string): SessionStats | undefined {
    return this.sessions.get(callId)?.stats;
  }

  forget(s: EmbeddedSession): void {
    if (this.sessions.get(s.callId) === s) this.sessions.delete(s.callId);
  }

  async listSessions(): Promise<string[]> {
    return [...this.sessions.keys()];
  }

  async readiness(): Promise<EngineReadiness> {
    if (this.closed) return { ready: false, reason: 'embedded engine closed' };
    const { pairs, free } = this.ports.capacity();
    const detail = { portPairs: pairs, freePortPairs: free, sessions: this.sessions.size };
    return free > 0 ? { ready: true, detail } : { ready: false, reason: `no free RTP port pair (${pairs} in use)`, detail };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }
}
