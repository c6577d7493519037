/**
 * (Over 400 lines on purpose: the offer/answer API of all three call directions (inbound,
 * outbound, click to call) and the packet routing share one call's negotiated state; the parts
 * with their own state live beside it.)
 *
 * One call's media in the embedded engine: the MediaSession API (offer/answer in every call
 * direction), composing the WhatsApp leg (whatsapp-leg.ts), the PBX leg (pbx-leg.ts), the two
 * transcoding pipelines (transcode.ts), Opus pass-through (passthrough.ts), the RFC 4733 relays
 * (rtp.ts) and the keep-alive (keepalive.ts), which the engine's one 20 ms clock drives (tick).
 *
 *   WhatsApp --SRTP/Opus--> OpusToPbx (decode, 20 ms frames, G.722/G.711) --RTP--> PBX
 *   PBX --RTP--> PbxToOpus (decode, resample, 20 ms frames, Opus) --SRTP--> WhatsApp
 *   Opus on both sides: the payload passes, restamped on our own stream.
 * Every outgoing stream has our own SSRC, sequence numbers and timestamps.
 *
 * Keep-alive toward WhatsApp (it drops a call after ~20 s without business media at the start,
 * 30 s mid-call): once DTLS is up, whenever the PBX has sent no audio for 100 ms (ringing, hold,
 * a silent PBX) an Opus silence frame goes out every 20 ms on the same stream (FillSchedule),
 * and an RTCP SR with SDES CNAME every 2 s.
 */
import { randomBytes } from 'node:crypto';
import type { RtpPacket } from 'werift';
import type { Logger } from 'pino';
import { MediaError, type MediaFailure, type MediaMilestone, type MediaSession, type MediaStats } from '../types.js';
import { RtpReceiveStats } from '../rtp-stats.js';
import {
  WHATSAPP_OPUS_FMTP,
  WHATSAPP_OPUS_PT,
  WHATSAPP_TE_PT,
  checkWhatsAppAnswer,
  sameSdpIgnoringVersion,
} from '../whatsapp-profile.js';
import { FailureSignal, WhatsAppMediaTimer } from '../watchdog.js';
import type { EmbeddedEngine } from './engine.js';
import { FillSchedule, senderReport, serializeRtcp } from './keepalive.js';
import { OPUS_FRAME_TICKS, OpusRestamp } from './passthrough.js';
import { DEFAULT_SOURCE_RULES, PbxLeg } from './pbx-leg.js';
import { RtpOutStream, TelephoneEventRelay, type RtpView } from './rtp.js';
import {
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
import { OpusToPbx, PbxToOpus, pcmRateFor, type PbxPcmCodec } from './transcode.js';
import { WhatsAppLeg } from './whatsapp-leg.js';

const ENGINE = 'embedded';
/** A 20 ms Opus frame of silence (TOC 0xF8: CELT FB 20 ms mono, one frame). */
const OPUS_SILENCE = Buffer.from([0xf8, 0xff, 0xfe]);
/** PBX silence after which WhatsApp's stream is filled with Opus silence. */
const IDLE_MS = 100;
const RTCP_WA_MS = 2000;
const RTCP_PBX_MS = 5000;

export const DEFAULT_CODECS: PbxCodecName[] = ['opus', 'G722', 'PCMU', 'PCMA'];

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
  /** PBX-side RTP/RTCP packets dropped because they came from someone other than the PBX. */
  pbxDropped: number;
}

export class EmbeddedSession implements MediaSession {
  private wa: WhatsAppLeg | undefined;
  private readonly pbx: PbxLeg;
  private closing: Promise<void> | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  // negotiation
  /** click: business-initiated from the bridge itself (click to call), no PBX offer at the start. */
  private direction: 'inbound' | 'outbound' | 'click' | undefined;
  private waOpusPt = WHATSAPP_OPUS_PT;
  private waTePt: number | undefined = WHATSAPP_TE_PT;
  private whatsAppAnswer: string | undefined;
  /** Click to call: WhatsApp's answer to our offer, once applied, and our plain offer for the extension. */
  private waAnswerIn: string | undefined;
  private clickPlainOffer: string | undefined;
  private outboundOffer: string | undefined;
  private lastPbxSdp: string | undefined;
  private pbxPlain: PlainMedia | undefined;
  private pbxOffer: PlainMedia | undefined;
  private sendCodec: (SdpCodec & { kind: PbxCodecName }) | undefined;
  private pbxTePt: number | undefined;
  /** Codec name of the last PBX payload type seen, for the SDP it was looked up in. */
  private ptName: { pt: number; plain: PlainMedia | undefined; offer: PlainMedia | undefined; name: string } | undefined;

  // media
  private pbxOut: RtpOutStream | undefined;
  private readonly toPbx: OpusToPbx;
  private readonly toWa: PbxToOpus;
  private readonly passToPbx = new OpusRestamp();
  private readonly passToWa = new OpusRestamp();
  private readonly dtmfToPbx = new TelephoneEventRelay(8000, 8000);
  private readonly dtmfToWa = new TelephoneEventRelay(8000, 8000);
  /** The packet being handled, for the pipelines' callbacks. */
  private nowMs = 0;

  // keep-alive and RTCP
  private lastPbxAudioMs = 0;
  private readonly fill = new FillSchedule();
  private lastRtcpWa = 0;
  private lastRtcpPbx = 0;
  private waIn: { ssrc: number; highestSeq: number } | undefined;
  private readonly cname = randomBytes(8).toString('hex');
  private readonly failure: FailureSignal;
  private readonly waTimer: WhatsAppMediaTimer;
  private readonly counters = { waIn: 0, waOut: 0, pbxOut: 0, silenceOut: 0, dtmfToPbx: 0, dtmfToWa: 0 };
  /** Loss and jitter of what each side sends us (RFC 3550), for the call record. */
  private readonly rxWa = new RtpReceiveStats(48000);
  private rxPbx = new RtpReceiveStats(8000);

  constructor(
    readonly callId: string,
    private readonly engine: EmbeddedEngine,
    private readonly log: Logger,
  ) {
    this.failure = new FailureSignal(callId, log);
    this.waTimer = new WhatsAppMediaTimer(engine.opts.whatsappMediaTimeoutSec);
    const src = engine.opts.pbxSource;
    const rules = { mode: src?.mode ?? DEFAULT_SOURCE_RULES.mode, learnWindowMs: src?.learnWindowMs ?? DEFAULT_SOURCE_RULES.learnWindowMs };
    this.pbx = new PbxLeg(callId, log, (rtp) => this.onPbxRtp(rtp), rules);
    this.toPbx = new OpusToPbx((payload, ticks) => this.sendToPbx(this.sendCodec!.pt, this.pbxOut!.frame(ticks, this.nowMs), payload));
    this.toWa = new PbxToOpus(
      { bitrate: engine.opts.opusBitrate ?? 20000, complexity: engine.opts.opusComplexity ?? 5 },
      (packet, ticks) => this.sendOpusToWa(packet, ticks),
    );
  }

  get stats(): SessionStats {
    return {
      ...this.counters,
      pbxIn: this.pbx.packetsIn,
      decodeErrors: this.toPbx.decodeErrors,
      dtlsState: this.wa?.dtlsState ?? 'new',
      pbxCodec: this.sendCodec ? `${this.sendCodec.name}/${this.sendCodec.pt}` : undefined,
      latchedTo: this.pbx.latchedTo,
      pbxDropped: this.pbx.dropped,
    };
  }

  private milestoneListener: ((m: MediaMilestone) => void) | undefined;

  onMilestone(listener: (m: MediaMilestone) => void): void {
    this.milestoneListener = listener;
  }

  private milestone(label: string, from: MediaMilestone['from'], to: MediaMilestone['to']): void {
    try {
      this.milestoneListener?.({ label, from, to });
    } catch (err) {
      this.log.debug({ callId: this.callId, err }, 'milestone listener failed');
    }
  }

  mediaStats(): MediaStats {
    const c = this.counters;
    const leg = (r: RtpReceiveStats) => ({ lost: r.lost, lossRatio: r.lossRatio, jitterMs: Math.round(r.jitterMs * 10) / 10 });
    return {
      engine: 'embedded',
      whatsapp: { codec: 'opus', packetsIn: c.waIn, packetsOut: c.waOut, ...leg(this.rxWa) },
      pbx: { codec: this.sendCodec?.name, packetsIn: this.pbx.packetsIn, packetsOut: c.pbxOut, ...leg(this.rxPbx) },
      keepaliveFrames: c.silenceOut,
    };
  }

  /**
   * One operation at a time. One that was running when close() came rejects with reason
   * `closed` (whether it went on or werift failed under it): its SDP would describe ports and a
   * WebRTC leg close() has released.
   */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = async (): Promise<T> => {
      let v: T;
      try {
        v = await fn();
      } catch (err) {
        this.assertOpen();
        throw err;
      }
      this.assertOpen();
      return v;
    };
    const run = this.queue.then(guarded, guarded);
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

  // ---------------------------------------------------------------- legs

  private openWhatsAppLeg(codec: { opusPt: number; opusFmtp: string; tePt: number | undefined }): WhatsAppLeg {
    const o = this.engine.opts;
    this.waOpusPt = codec.opusPt;
    this.waTePt = codec.tePt;
    this.wa = new WhatsAppLeg({ iceAddresses: o.iceAddresses, ...(o.icePortRange ? { icePortRange: o.icePortRange } : {}) }, codec, {
      rtp: (rtp) => this.onWaRtp(rtp),
      state: (state) => this.onDtlsState(state),
    });
    return this.wa;
  }

  private onDtlsState(state: string): void {
    if (state === 'connected') {
      this.log.debug({ callId: this.callId, role: this.wa?.dtlsRole }, 'WhatsApp leg connected (ICE + DTLS)');
      this.milestone(`ICE + DTLS up (${this.wa?.dtlsRole ?? '?'})`, 'media', 'whatsapp');
      this.waTimer.activity(performance.now(), false); // the timeout counts from the connection
    } else if (state === 'failed' || state === 'closed') {
      this.milestone(`DTLS ${state}`, 'whatsapp', 'media');
      this.failure.fire('webrtc-failed', `WhatsApp DTLS ${state}`);
    }
  }

  private async openPbxPorts(): Promise<number> {
    try {
      return await this.pbx.open(this.engine.ports);
    } catch (err) {
      throw this.fail('no RTP port for the PBX leg', 'ports', err);
    }
  }

  private setPbxRemote(p: PlainMedia): void {
    this.pbx.setRemote(p);
    this.pbxPlain = p;
  }

  private selectSendCodec(codec: SdpCodec & { kind: PbxCodecName }, tePt: number | undefined): void {
    const prev = this.sendCodec?.kind;
    this.sendCodec = codec;
    this.pbxTePt = tePt;
    if (prev === codec.kind) return;
    const clockRate = codec.kind === 'opus' ? 48000 : 8000;
    this.pbxOut = new RtpOutStream(clockRate, this.pbxOut?.ssrc);
    // Jitter is in RTP timestamp units: the PBX's Opus runs on a 48 kHz clock, G.711/G.722 on 8 kHz.
    if (this.rxPbx.packets === 0) this.rxPbx = new RtpReceiveStats(clockRate);
    this.toPbx.setRate(pcmRateFor(codec.kind));
    this.toWa.setRate(pcmRateFor(codec.kind));
  }

  private sendToPbx(pt: number, f: { seq: number; ts: number; marker: boolean }, payload: Uint8Array): void {
    if (!this.pbxOut || this.closing) return;
    if (this.pbx.send(this.pbxOut, pt, f, payload) && ++this.counters.pbxOut === 1) this.milestone('first RTP to the PBX', 'media', 'pbx');
  }

  private sendToWa(pt: number, marker: boolean, seq: number, ts: number, payload: Buffer): void {
    if (this.wa?.send(pt, marker, seq, ts, payload) && ++this.counters.waOut === 1) this.milestone('first RTP to WhatsApp', 'media', 'whatsapp');
  }

  private sendOpusToWa(packet: Buffer, ticks: number): void {
    const out = this.wa?.out;
    if (!out) return;
    const f = out.frame(ticks, this.nowMs);
    this.sendToWa(this.waOpusPt, f.marker, f.seq, f.ts, packet);
  }

  // ---------------------------------------------------------------- media: WhatsApp -> PBX

  private onWaRtp(rtp: RtpPacket): void {
    if (this.closing) return;
    const now = (this.nowMs = performance.now());
    const h = rtp.header;
    if (++this.counters.waIn === 1) this.milestone('first RTP from WhatsApp', 'whatsapp', 'media');
    this.waTimer.activity(now);
    this.waIn = { ssrc: h.ssrc, highestSeq: h.sequenceNumber };
    this.rxWa.packet(h.ssrc, h.sequenceNumber, h.timestamp, now);
    const codec = this.sendCodec;
    if (!codec || !this.pbxOut || !this.pbx.hasRemote) return;
    if (h.payloadType === this.waTePt) {
      if (this.pbxTePt === undefined) return;
      const r = this.dtmfToPbx.relay(h.ssrc, h.timestamp, rtp.payload, this.pbxOut, now);
      if (r) {
        this.counters.dtmfToPbx++;
        this.sendToPbx(this.pbxTePt, r, r.payload);
      }
      return;
    }
    if (h.payloadType !== this.waOpusPt || rtp.payload.length === 0) return;
    if (codec.kind === 'opus') {
      this.sendToPbx(codec.pt, this.pbxOut.frame(this.passToPbx.ticks(h.ssrc, h.timestamp), now), rtp.payload);
      return;
    }
    this.toPbx.push(h.ssrc, rtp.payload, codec.kind);
  }

  // ---------------------------------------------------------------- media: PBX -> WhatsApp

  private onPbxRtp(rtp: RtpView): void {
    if (this.closing) return;
    const now = (this.nowMs = performance.now());
    if (rtp.pt !== this.pbxTePt) {
      this.rxPbx.packet(rtp.ssrc, rtp.seq, rtp.ts, now);
      if (this.rxPbx.packets === 1) this.milestone('first RTP from the PBX', 'pbx', 'media');
    }
    const out = this.wa?.out;
    if (!out) return;
    if (rtp.pt === this.pbxTePt) {
      if (this.waTePt === undefined) return;
      const r = this.dtmfToWa.relay(rtp.ssrc, rtp.ts, rtp.payload, out, now);
      if (r) {
        this.counters.dtmfToWa++;
        this.sendToWa(this.waTePt, r.marker, r.seq, r.ts, r.payload);
      }
      return;
    }
    const name = this.pbxPtName(rtp.pt);
    if (name === 'OPUS') {
      this.lastPbxAudioMs = now;
      const f = out.frame(this.passToWa.ticks(rtp.ssrc, rtp.ts), now);
      this.sendToWa(this.waOpusPt, f.marker, f.seq, f.ts, Buffer.from(rtp.payload));
      return;
    }
    if (name !== 'G722' && name !== 'PCMU' && name !== 'PCMA') return; // comfort noise, unknown payloads
    this.lastPbxAudioMs = now;
    this.toWa.push(rtp.ssrc, rtp.payload, name satisfies PbxPcmCodec);
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
    if (this.closing) return;
    const expired = this.waTimer.expired(now);
    if (expired) this.failure.fire('whatsapp-media-timeout', expired);
    const wa = this.wa;
    const out = wa?.out;
    if (!wa?.connected || !out) return;
    this.nowMs = now;
    if (now - this.lastPbxAudioMs >= IDLE_MS) {
      // The PBX is silent: fill the WhatsApp stream with 20 ms Opus silence frames (on a schedule).
      if (!this.fill.filling) this.milestone('keep-alive fill on', 'media', 'whatsapp');
      for (let n = this.fill.due(now); n > 0; n--) {
        this.counters.silenceOut++;
        this.sendOpusToWa(OPUS_SILENCE, OPUS_FRAME_TICKS);
      }
    } else if (this.fill.filling) {
      this.fill.stop();
      this.milestone('keep-alive fill off', 'media', 'whatsapp');
    }
    if (now - this.lastRtcpWa >= RTCP_WA_MS) {
      this.lastRtcpWa = now;
      wa.sendRtcp(senderReport(out, this.cname, this.waIn));
    }
    if (now - this.lastRtcpPbx >= RTCP_PBX_MS && this.pbxOut && this.pbxOut.packets > 0) {
      this.lastRtcpPbx = now;
      this.pbx.sendRtcp(serializeRtcp(senderReport(this.pbxOut, this.cname)));
    }
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
      const wa = this.openWhatsAppLeg(info);
      try {
        await wa.setRemote('offer', webrtcOffer);
      } catch (err) {
        throw this.fail('werift rejected the WhatsApp offer', 'sdp', err);
      }
      const port = await this.openPbxPorts();
      const o = this.engine.opts;
      return writePlainOffer(o.rtpAdvertiseHost, port, o.pbxCodecs ?? DEFAULT_CODECS, info.opusPt);
    });
  }

  answerFromPbx(plainAnswer: string): Promise<string> {
    return this.serial(async () => {
      this.assertOpen();
      const wa = this.wa;
      if (this.direction !== 'inbound' || !wa) throw new MediaError('answerFromPbx before offerFromWhatsApp', ENGINE, 'no offer');
      if (this.whatsAppAnswer && plainAnswer === this.lastPbxSdp) return this.whatsAppAnswer;
      this.takePbxAnswer(plainAnswer);
      if (this.whatsAppAnswer) return this.whatsAppAnswer; // accept SDP == pre_accept SDP

      let sdp: string;
      try {
        sdp = shapeWebRtcSdp(await wa.localDescription('answer'), 'active');
      } catch (err) {
        throw this.fail('WebRTC answer failed', 'webrtc', err);
      }
      const violations = checkWhatsAppAnswer(sdp);
      if (violations.length > 0) throw new MediaError(`embedded answer breaks WhatsApp rules: ${violations.join('; ')}`, ENGINE, 'sdp rules');
      this.whatsAppAnswer = sdp;
      this.waTimer.arm(performance.now());
      return sdp;
    });
  }

  /** The PBX's answer to our plain offer: where it is, and the codec we send it. */
  private takePbxAnswer(plainAnswer: string): void {
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
  }

  /** The WhatsApp leg with Meta's codec profile, and its WebRTC offer shaped for `connect`. */
  private async offerWhatsAppLeg(): Promise<string> {
    const wa = this.openWhatsAppLeg({ opusPt: WHATSAPP_OPUS_PT, opusFmtp: WHATSAPP_OPUS_FMTP, tePt: WHATSAPP_TE_PT });
    let sdp: string;
    try {
      sdp = shapeWebRtcSdp(await wa.localDescription('offer'), 'actpass');
    } catch (err) {
      throw this.fail('WebRTC offer failed', 'webrtc', err);
    }
    this.outboundOffer = sdp;
    return sdp;
  }

  // ---------------------------------------------------------------- MediaSession: click to call

  offerToWhatsApp(): Promise<string> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.outboundOffer && this.direction === 'click') return this.outboundOffer;
      if (this.direction) throw new MediaError(`offerToWhatsApp on a session already used (${this.direction})`, ENGINE, 'state');
      this.direction = 'click';
      await this.openPbxPorts();
      return this.offerWhatsAppLeg();
    });
  }

  answerFromPbxToOffer(plainAnswer: string): Promise<void> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.direction !== 'click' || !this.waAnswerIn) throw new MediaError('answerFromPbxToOffer before answerFromWhatsApp', ENGINE, 'no offer');
      if (plainAnswer === this.lastPbxSdp) return;
      this.takePbxAnswer(plainAnswer);
    });
  }

  // ---------------------------------------------------------------- MediaSession: outbound

  offerFromPbx(plainOffer: string): Promise<string> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.outboundOffer && this.direction === 'outbound') return this.outboundOffer;
      if (this.direction) throw new MediaError(`offerFromPbx on a session already used (${this.direction})`, ENGINE, 'state');
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
      return this.offerWhatsAppLeg();
    });
  }

  answerFromWhatsApp(webrtcAnswer: string): Promise<string> {
    return this.serial(async () => {
      this.assertOpen();
      const port = this.pbx.port;
      const click = this.direction === 'click';
      if (click && this.waAnswerIn) {
        if (webrtcAnswer !== this.waAnswerIn) throw new MediaError('a second, different WhatsApp answer', ENGINE, 'state');
        return this.plainOfferToPbx(port!);
      }
      if (!this.wa || port === undefined || (!click && (this.direction !== 'outbound' || !this.pbxOffer || !this.sendCodec))) {
        throw new MediaError('answerFromWhatsApp before an offer to WhatsApp', ENGINE, 'no offer');
      }
      try {
        const info = webRtcCodecs(webrtcAnswer);
        this.waTePt = info.tePt;
        // WhatsApp answers with its ICE-lite at session level; werift then takes the controlling
        // role itself, and the DTLS role follows the answer's a=setup (active or passive).
        await this.wa.setRemote('answer', webrtcAnswer);
      } catch (err) {
        throw this.fail('werift rejected the WhatsApp answer', 'sdp', err);
      }
      this.waTimer.arm(performance.now());
      if (click) {
        this.waAnswerIn = webrtcAnswer;
        return this.plainOfferToPbx(port);
      }
      const o = this.engine.opts;
      return writePlainAnswer(o.rtpAdvertiseHost, port, this.sendCodec!, this.pbxOffer!.tePt, this.pbxOffer!.direction);
    });
  }

  /** Click to call: our plain offer for the extension, as for an inbound call (Opus first on WhatsApp's PT); the same every time. */
  private plainOfferToPbx(port: number): string {
    const o = this.engine.opts;
    this.clickPlainOffer ??= writePlainOffer(o.rtpAdvertiseHost, port, o.pbxCodecs ?? DEFAULT_CODECS, this.waOpusPt);
    return this.clickPlainOffer;
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
      this.failure.close();
      this.engine.forget(this);
      await this.releaseLegs();
      // An offer or answer running when close() came may still open the port pair or a WebRTC
      // leg after the release above (its awaits were in flight): release again once it settled.
      await this.queue;
      await this.releaseLegs();
      this.toPbx.close();
      this.toWa.close();
    })().catch(() => undefined);
    return this.closing;
  }

  /** Close the WhatsApp leg and give the PBX port pair back; both idempotent. */
  private async releaseLegs(): Promise<void> {
    try {
      await this.wa?.close();
    } catch (err) {
      this.log.debug({ callId: this.callId, err: (err as Error).message }, 'werift close failed');
    }
    await this.pbx.close(this.engine.ports);
  }

  onFailure(listener: (failure: MediaFailure) => void): void {
    this.failure.onFailure(listener);
  }

  /** Whether the latest PBX SDP changed the answer (never: WhatsApp keeps the first). */
  sameAnswer(sdp: string): boolean {
    return this.whatsAppAnswer !== undefined && sameSdpIgnoringVersion(sdp, this.whatsAppAnswer);
  }
}
