/**
 * (Over 400 lines on purpose: one peer with WhatsApp's whole media behaviour, both call
 *  directions, both DTLS roles, tone and DTMF measurement, mirroring one external system.)
 * A WebRTC media peer that behaves like WhatsApp's side of a call (werift): ICE-lite (always
 * controlled), BUNDLE + rtcp-mux, one audio m-line with Opus on PT 111 (Meta's fmtp) and
 * telephone-event/8000 on PT 126, one sha-256 fingerprint, host candidates only, all of them in
 * the SDP (no trickle).
 * - User-initiated call: it offers (`createOffer`, `a=setup:actpass`) and checks the business's
 *   answer with WhatsApp's rules (`applyAnswer`), rejecting it like Meta does.
 * - Business-initiated call: it answers the business's offer (`createAnswer`), after checking it
 *   with WhatsApp's offer rules, as DTLS client (`a=setup:active`) or server (`a=setup:passive`):
 *   WhatsApp's choice is undocumented, so both are simulated.
 * It sends a tone as Opus only after `startMedia()` (the call is accepted/answered) and decodes
 * what it receives for tone checks.
 *
 * werift 0.24.4 needs a few work-arounds here (loopback gathering, RTP before the router, DTLS
 * records before the transport exists, one datagram per handshake flight, the passive DTLS
 * role): see the Media section of docs/architecture.md.
 */
import { OpusCodec } from '../media/codecs/opus.js';
import { parse, write } from 'sdp-transform';
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  type RTCDtlsTransport,
  type RTCRtpTransceiver,
} from 'werift';
import {
  WHATSAPP_OPUS_FMTP,
  WHATSAPP_OPUS_PT,
  WHATSAPP_TE_PT,
  WHATSAPP_TE_RATE,
  checkWhatsAppAnswer,
  checkWhatsAppOffer,
} from '../media/whatsapp-profile.js';
import { SDP_VALIDATION_SUBCODE } from '../whatsapp/errors.js';
import { ToneSource, hasTone as pcmHasTone, toneWindows as pcmToneWindows } from '../media/audio/tone.js';

export { WHATSAPP_OPUS_FMTP, WHATSAPP_OPUS_PT } from '../media/whatsapp-profile.js';
/** telephone-event's PT (the profile's WHATSAPP_TE_PT, under the name tests use). */
export const WHATSAPP_TELEPHONE_EVENT_PT = WHATSAPP_TE_PT;

/** What Graph API returns when an accept/pre_accept SDP breaks its rules (error code 100). */
export class WhatsAppSdpError extends Error {
  override readonly name = 'WhatsAppSdpError';
  readonly code = 100;
  readonly error_subcode = SDP_VALIDATION_SUBCODE;
  readonly type = 'OAuthException';
  constructor(
    message: string,
    readonly violations: string[],
  ) {
    super(message);
  }
  /** The Graph error body Meta sends with it. */
  toGraphError(): { error: { message: string; type: string; code: number; error_subcode: number } } {
    return { error: { message: this.message, type: this.type, code: this.code, error_subcode: this.error_subcode } };
  }
}

export interface WhatsAppMediaPeerOptions {
  /** Tone the "user" speaks after startMedia(); default 1000 Hz. */
  toneHz?: number;
  /** Tone amplitude 0..1 of full scale; default 0.3. */
  amplitude?: number;
  /** Address of the host candidate; default 127.0.0.1. */
  hostAddress?: string;
  /** Opus encoder bitrate in bit/s; default 20000 (Meta's maxaveragebitrate). */
  bitrate?: number;
  /**
   * DTLS records that arrive before this peer's DTLS side exists (the business's ClientHello
   * before its answer is applied): `replay` them once it starts (default), or `drop` them, as a
   * WhatsApp that ignores a handshake it cannot place yet would; the business's retransmission
   * must then carry it.
   */
  earlyDtls?: 'replay' | 'drop';
}

export interface ConnectTimes {
  /** ms from applyAnswer() (offerer) or the return of createAnswer() (answerer) to ICE connected. */
  iceMs: number;
  /** ms from the same point to DTLS connected (SRTP keys ready). */
  dtlsMs: number;
}

export interface CreateAnswerOptions {
  /**
   * `active`: WhatsApp's side is the DTLS client (werift's default as answerer); `passive`: it
   * is the DTLS server and the business (rtpengine) the client.
   */
  setup: 'active' | 'passive';
}

/** The typed Graph error for SDP rule violations (Meta's "Fingerprint algo is not SHA256" first). */
function sdpError(violations: string[]): WhatsAppSdpError {
  const fp = violations.find((v) => v.startsWith('Fingerprint algo is not SHA256'));
  return new WhatsAppSdpError(fp ? 'Fingerprint algo is not SHA256' : `SDP Validation error: ${violations[0]}`, violations);
}

/** Largest datagram a coalesced DTLS flight may use (a safe path MTU for WebRTC). */
const DTLS_DATAGRAM_MAX = 1200;

/** Pack DTLS records, in order, into as few datagrams of at most `max` bytes as possible. */
export function packDtlsRecords(records: Buffer[], max = DTLS_DATAGRAM_MAX): Buffer[] {
  const out: Buffer[] = [];
  let cur: Buffer[] = [];
  let size = 0;
  for (const r of records) {
    if (cur.length > 0 && size + r.length > max) {
      out.push(Buffer.concat(cur));
      cur = [];
      size = 0;
    }
    cur.push(r);
    size += r.length;
  }
  if (cur.length > 0) out.push(Buffer.concat(cur));
  return out;
}

const SAMPLE_RATE = 48000 as const;
const FRAME_MS = 20;
const FRAME_SAMPLES = (SAMPLE_RATE * FRAME_MS) / 1000;

export class WhatsAppMediaPeer {
  readonly pc: RTCPeerConnection;
  private readonly transceiver: RTCRtpTransceiver;
  private readonly opts: Required<WhatsAppMediaPeerOptions>;
  private offerSdp: string | undefined;
  private answerSdp: string | undefined;
  private answerAppliedAt = 0;
  private iceConnectedAt = 0;
  private dtlsConnectedAt = 0;
  private sendChannels = 2;
  // opusscript's own JS wrapper writes outside its allocations with several instances alive;
  // OpusCodec drives the same WebAssembly libopus with correct addressing.
  private encoder: OpusCodec | undefined;
  private decoder: OpusCodec | undefined;
  private sendTimer: NodeJS.Timeout | undefined;
  private tone: ToneSource;
  private seq = Math.floor(Math.random() * 0xffff);
  private timestamp = Math.floor(Math.random() * 0xffffffff);
  private readonly received: Int16Array[] = [];
  private receivedSamples = 0;
  private readonly receivedEvents: Array<{ event: number; end: boolean; duration: number }> = [];
  private rtpIn = 0;
  private rtpOut = 0;
  private decodeErrors = 0;
  private closed = false;
  private readonly earlyDtls: Buffer[] = [];
  private dtlsReplayed = 0;
  private dtlsDropped = 0;
  private unsubscribers: Array<() => void> = [];

  constructor(opts: WhatsAppMediaPeerOptions = {}) {
    this.opts = {
      toneHz: opts.toneHz ?? 1000,
      amplitude: opts.amplitude ?? 0.3,
      hostAddress: opts.hostAddress ?? '127.0.0.1',
      bitrate: opts.bitrate ?? 20000,
      earlyDtls: opts.earlyDtls ?? 'replay',
    };
    this.tone = new ToneSource(this.opts.toneHz, SAMPLE_RATE, this.opts.amplitude);
    this.pc = new RTCPeerConnection({
      iceLite: true,
      iceServers: [],
      iceInterfaceAddresses: { udp4: this.opts.hostAddress },
      iceAdditionalHostAddresses: [this.opts.hostAddress],
      iceUseIpv4: false, // see the file comment: only iceAdditionalHostAddresses are used
      iceUseIpv6: false,
      iceUseTcp: false,
      bundlePolicy: 'max-bundle',
      codecs: {
        audio: [
          new RTCRtpCodecParameters({
            mimeType: 'audio/opus',
            clockRate: SAMPLE_RATE,
            channels: 2,
            payloadType: WHATSAPP_OPUS_PT,
            parameters: WHATSAPP_OPUS_FMTP,
            rtcpFeedback: [{ type: 'transport-cc' }],
          }),
          new RTCRtpCodecParameters({
            mimeType: 'audio/telephone-event',
            clockRate: WHATSAPP_TE_RATE,
            payloadType: WHATSAPP_TELEPHONE_EVENT_PT,
          }),
        ],
      },
      headerExtensions: { audio: [] },
    });
    this.transceiver = this.pc.addTransceiver('audio', { direction: 'sendrecv' });
  }

  /** The SDP offer, with every candidate (waits for gathering to complete). */
  async createOffer(): Promise<string> {
    if (this.offerSdp) return this.offerSdp;
    if (this.answerSdp) throw new Error('createOffer on a peer that answered');
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await this.waitGathered();
    const local = this.pc.localDescription;
    if (!local) throw new Error('no local description');
    this.hookTransport();
    this.offerSdp = this.shapeSdp(local.sdp);
    return this.offerSdp;
  }

  /**
   * Answer a business's offer (Graph `connect`) like WhatsApp: the offer is checked with
   * WhatsApp's rules first (a violation throws WhatsAppSdpError, code 100, subcode 2494010, as
   * Graph answers the connect); the answer has session-level `a=ice-lite`, Opus 111 with Meta's
   * fmtp, telephone-event 126, one sha-256 fingerprint, BUNDLE, rtcp-mux, loopback candidates
   * and `a=setup:<opts.setup>`. ICE and DTLS start as soon as the business's checks arrive.
   */
  async createAnswer(offer: string, opts: CreateAnswerOptions): Promise<string> {
    if (this.answerSdp) return this.answerSdp;
    if (this.offerSdp) throw new Error('createAnswer on a peer that offered');
    const violations = checkWhatsAppOffer(offer);
    if (violations.length > 0) throw sdpError(violations);
    const audio = parse(offer).media.find((m) => m.type === 'audio');
    const opus = audio?.rtp.find((r) => r.payload === WHATSAPP_OPUS_PT);
    this.sendChannels = opus?.encoding === 2 ? 2 : 1;
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
    const dtls = this.dtls;
    if (!dtls) throw new Error('werift created no DTLS transport for the offer');
    // werift's answer role: `auto` becomes `client` (setup:active); `server` gives setup:passive.
    dtls.role = opts.setup === 'passive' ? 'server' : 'client';
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    await this.waitGathered();
    const local = this.pc.localDescription;
    if (!local) throw new Error('no local description');
    this.hookTransport();
    const shaped = this.shapeSdp(local.sdp);
    const setup = parse(shaped).media[0]?.setup;
    const expected = opts.setup;
    if (setup !== expected) throw new Error(`werift answered a=setup:${setup ?? '(none)'}, wanted ${expected}`);
    this.answerSdp = shaped;
    this.answerAppliedAt = performance.now();
    return shaped;
  }

  private async waitGathered(): Promise<void> {
    if (this.pc.iceGatheringState !== 'complete') {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('ICE gathering did not complete in 5 s')), 5000);
        const { unSubscribe } = this.pc.iceGatheringStateChange.subscribe((s) => {
          if (s === 'complete') {
            clearTimeout(timer);
            unSubscribe();
            resolve();
          }
        });
      });
    }
  }

  /**
   * Make werift's SDP (offer or answer) look like Meta's on the wire: `a=ice-lite` at session
   * level, c= and the m= port on the host candidate, no trickle/extmap-allow-mixed (Meta sends
   * neither), one `a=ssrc` with a cname. werift's own state is untouched: these are
   * presentation details.
   */
  private shapeSdp(sdp: string): string {
    const s = parse(sdp) as ReturnType<typeof parse> & Record<string, unknown>;
    const m = s.media[0];
    if (!m) throw new Error('werift offer has no m-line');
    const mr = m as unknown as Record<string, unknown>;
    delete mr['icelite'];
    delete mr['iceOptions'];
    delete s['extmapAllowMixed'];
    s['icelite'] = 'ice-lite';
    const host = (m.candidates ?? []).find((c) => c.type === 'host' && c.ip === this.opts.hostAddress);
    if (!host) throw new Error(`no host candidate on ${this.opts.hostAddress}`);
    m.candidates = (m.candidates ?? []).filter((c) => c.ip === this.opts.hostAddress);
    s.origin.address = this.opts.hostAddress;
    m.connection = { version: 4, ip: this.opts.hostAddress };
    m.port = host.port;
    m.ptime = FRAME_MS;
    return write(s);
  }

  private get dtls(): RTCDtlsTransport | undefined {
    return this.pc.dtlsTransports[0];
  }

  /** Subscribe to the transport once it exists (after setLocalDescription). */
  private hookTransport(): void {
    const dtls = this.dtls;
    if (!dtls || this.unsubscribers.length > 0) return;
    const conn = dtls.iceTransport.connection;
    this.coalesceDtlsFlights(conn as unknown as { send: (data: Buffer) => Promise<void> });
    // Buffer DTLS records (first byte 20..63, RFC 7983) that arrive before werift's DTLS
    // server exists; replay them when it does.
    const early = conn.onData.subscribe((data: Buffer) => {
      const b = data[0];
      if (b === undefined || b < 20 || b > 63) return;
      const inner = (dtls as unknown as { dtls?: unknown }).dtls;
      if (inner) return;
      if (this.opts.earlyDtls === 'drop') this.dtlsDropped++;
      else if (this.earlyDtls.length < 32) this.earlyDtls.push(Buffer.from(data));
    });
    this.unsubscribers.push(early.unSubscribe);
    const onState = dtls.onStateChange.subscribe((state) => {
      if (state === 'connecting' && this.earlyDtls.length > 0) {
        const replay = this.earlyDtls.splice(0);
        this.dtlsReplayed += replay.length;
        // The DTLS endpoint subscribes synchronously inside start(): replay on the next tick.
        setImmediate(() => {
          for (const buf of replay) conn.onData.execute(buf);
        });
      }
      if (state === 'connected') this.dtlsConnectedAt = performance.now();
    });
    this.unsubscribers.push(onState.unSubscribe);
    const onIce = this.pc.iceConnectionStateChange.subscribe((s) => {
      if ((s === 'connected' || s === 'completed') && !this.iceConnectedAt) this.iceConnectedAt = performance.now();
    });
    this.unsubscribers.push(onIce.unSubscribe);
    const onRtp = dtls.onRtp.subscribe((rtp) => this.onRtp(rtp));
    this.unsubscribers.push(onRtp.unSubscribe);
  }

  /**
   * DTLS records handed to the ICE connection in the same tick (one flight) leave as one
   * datagram (see the file comment: werift's one-datagram-per-record flights stall against
   * multi-threaded rtpengine). SRTP/SRTCP and STUN pass through unchanged.
   */
  private coalesceDtlsFlights(conn: { send: (data: Buffer) => Promise<void> }): void {
    const send = conn.send.bind(conn);
    let pending: Buffer[] = [];
    const flush = (): void => {
      const records = pending;
      pending = [];
      if (this.closed) return;
      for (const datagram of packDtlsRecords(records)) void send(datagram).catch(() => undefined);
    };
    conn.send = (data: Buffer): Promise<void> => {
      const b = data[0];
      if (b === undefined || b < 20 || b > 63) return send(data);
      if (pending.length === 0) setImmediate(flush);
      pending.push(Buffer.from(data));
      return Promise.resolve();
    };
  }

  /**
   * Apply the business's answer. Violations of WhatsApp's rules reject it like Graph does
   * (WhatsAppSdpError, code 100, subcode 2494010); otherwise it becomes the remote description
   * and ICE/DTLS start (we are ICE controlled; `a=setup:active` makes us the DTLS server).
   */
  async applyAnswer(sdp: string): Promise<void> {
    if (!this.offerSdp) throw new Error('applyAnswer before createOffer');
    const violations = checkWhatsAppAnswer(sdp);
    if (violations.length > 0) throw sdpError(violations);
    const audio = parse(sdp).media.find((m) => m.type === 'audio');
    const opus = audio?.rtp.find((r) => r.payload === WHATSAPP_OPUS_PT);
    this.sendChannels = opus?.encoding === 2 ? 2 : 1;
    this.answerAppliedAt = performance.now();
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  /** Resolves when ICE and DTLS are connected; rejects after `timeoutMs`. */
  async waitConnected(timeoutMs = 10_000): Promise<ConnectTimes> {
    const deadline = Date.now() + timeoutMs;
    while (!(this.dtls?.state === 'connected')) {
      if (this.closed) throw new Error('peer closed');
      if (this.dtls?.state === 'failed') throw new Error('DTLS failed');
      if (Date.now() > deadline) {
        throw new Error(`not connected after ${timeoutMs} ms (ice=${this.iceState} dtls=${this.dtlsState})`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    if (!this.dtlsConnectedAt) this.dtlsConnectedAt = performance.now();
    return this.connectTimes() as ConnectTimes;
  }

  connectTimes(): ConnectTimes | undefined {
    if (!this.dtlsConnectedAt || !this.answerAppliedAt) return undefined;
    const ice = this.iceConnectedAt || this.dtlsConnectedAt;
    return { iceMs: ice - this.answerAppliedAt, dtlsMs: this.dtlsConnectedAt - this.answerAppliedAt };
  }

  get iceState(): string {
    return this.pc.iceConnectionState;
  }
  get dtlsState(): string {
    return this.dtls?.state ?? 'new';
  }
  get connectionState(): string {
    return this.pc.connectionState;
  }
  /** DTLS role werift took ('server' when the business's answer says a=setup:active, or when we answered a=setup:passive). */
  get dtlsRole(): string {
    return this.dtls?.role ?? 'auto';
  }
  get iceRole(): 'controlling' | 'controlled' {
    return this.dtls?.iceTransport.connection.iceControlling ? 'controlling' : 'controlled';
  }
  get stats(): { rtpIn: number; rtpOut: number; decodeErrors: number; receivedMs: number; dtlsReplayed: number; dtlsDropped: number } {
    return {
      dtlsReplayed: this.dtlsReplayed,
      dtlsDropped: this.dtlsDropped,
      rtpIn: this.rtpIn,
      rtpOut: this.rtpOut,
      decodeErrors: this.decodeErrors,
      receivedMs: (this.receivedSamples / SAMPLE_RATE) * 1000,
    };
  }

  /** RTP packets per second this peer receives over the next `ms` (50/s is one 20 ms stream). */
  async rtpInRate(ms: number): Promise<number> {
    // Against the clock: a timer that fires late on a busy machine lengthens the window, and
    // the packets that came in it are divided by the time that really passed.
    const before = this.rtpIn;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    return ((this.rtpIn - before) * 1000) / (performance.now() - t0);
  }

  /** The SDP this peer answered with (business-initiated calls), once createAnswer() returned. */
  get localAnswer(): string | undefined {
    return this.answerSdp;
  }

  /** Start sending the tone (20 ms Opus frames). Call when the business has accepted. */
  startMedia(): void {
    if (this.sendTimer || this.closed) return;
    this.encoder = new OpusCodec(SAMPLE_RATE, this.sendChannels === 2 ? 2 : 1);
    this.encoder.setBitrate(this.opts.bitrate);
    const startedAt = performance.now();
    let sent = 0;
    let first = true;
    const tick = (): void => {
      if (this.closed) return;
      // Catch up on timer drift so the sender keeps real time (at most 5 frames at once).
      const due = Math.floor((performance.now() - startedAt) / FRAME_MS) + 1;
      for (let n = 0; sent < due && n < 5; n++, sent++) {
        this.sendFrame(first);
        first = false;
      }
      if (sent < due) sent = due;
    };
    tick();
    this.sendTimer = setInterval(tick, FRAME_MS / 2);
  }

  stopMedia(): void {
    if (this.sendTimer) clearInterval(this.sendTimer);
    this.sendTimer = undefined;
  }

  private sendFrame(marker: boolean): void {
    const mono = this.tone.next(FRAME_MS);
    let pcm: Int16Array = mono;
    if (this.sendChannels === 2) {
      pcm = new Int16Array(mono.length * 2);
      for (let i = 0; i < mono.length; i++) pcm[2 * i] = pcm[2 * i + 1] = mono[i]!;
    }
    const payload = this.encoder!.encode(pcm, FRAME_SAMPLES);
    const header = new RtpHeader({
      payloadType: WHATSAPP_OPUS_PT,
      sequenceNumber: this.seq,
      timestamp: this.timestamp >>> 0,
      marker,
    });
    this.seq = (this.seq + 1) & 0xffff;
    this.timestamp = (this.timestamp + FRAME_SAMPLES) >>> 0;
    this.rtpOut++;
    void this.transceiver.sender.sendRtp(new RtpPacket(header, Buffer.from(payload))).catch(() => undefined);
  }

  /**
   * Send one RFC 4733 event like WhatsApp: PT 126, 8000 Hz clock, in the audio stream (the
   * sender's SSRC, sequence numbers shared with the Opus packets). An update every 20 ms with
   * the duration growing by 160 (8 kHz units), the last one with the end bit, sent three times.
   * The event's RTP timestamp is the current audio timestamp (48 kHz units, as WhatsApp does:
   * one SSRC, one timestamp line).
   */
  async sendDtmf(event: number, durationMs = 200): Promise<void> {
    const dtls = this.dtls;
    if (!dtls || dtls.state !== 'connected') throw new Error('sendDtmf before DTLS is connected');
    const ssrc = this.transceiver.sender.ssrc;
    const ts = this.timestamp >>> 0;
    const steps = Math.max(1, Math.round(durationMs / FRAME_MS));
    for (let i = 1; i <= steps; i++) {
      const end = i === steps;
      const payload = Buffer.from([event & 0xff, (end ? 0x80 : 0) | 10, 0, 0]);
      payload.writeUInt16BE(Math.min(0xffff, i * 160), 2);
      for (let r = 0; r < (end ? 3 : 1); r++) {
        const header = new RtpHeader({
          payloadType: WHATSAPP_TELEPHONE_EVENT_PT,
          sequenceNumber: this.seq,
          timestamp: ts,
          ssrc,
          marker: i === 1 && r === 0,
        });
        this.seq = (this.seq + 1) & 0xffff;
        this.rtpOut++;
        await dtls.sendRtp(payload, header).catch(() => undefined);
      }
      if (!end) await new Promise((res) => setTimeout(res, FRAME_MS));
    }
  }

  private onRtp(rtp: RtpPacket): void {
    this.rtpIn++;
    const pt = rtp.header.payloadType;
    if (pt === WHATSAPP_TELEPHONE_EVENT_PT && rtp.payload.length >= 4) {
      this.receivedEvents.push({
        event: rtp.payload[0]!,
        end: (rtp.payload[1]! & 0x80) !== 0,
        duration: rtp.payload.readUInt16BE(2),
      });
      return;
    }
    if (pt !== WHATSAPP_OPUS_PT || rtp.payload.length === 0) return;
    // Decode as stereo: an Opus decoder outputs the channel count it was created with,
    // whatever the packet carries; stereo is then mixed down to mono.
    this.decoder ??= new OpusCodec(SAMPLE_RATE, 2);
    try {
      const inter = this.decoder.decode(rtp.payload);
      const mono = new Int16Array(inter.length / 2);
      for (let i = 0; i < mono.length; i++) mono[i] = (inter[2 * i]! + inter[2 * i + 1]!) >> 1;
      this.received.push(mono);
      this.receivedSamples += mono.length;
    } catch {
      this.decodeErrors++;
    }
  }

  /** Everything received so far, decoded: 48 kHz mono PCM. */
  receivedPcm(): Int16Array {
    const out = new Int16Array(this.receivedSamples);
    let off = 0;
    for (const c of this.received) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  /** telephone-event packets received (RFC 4733 payloads), in arrival order. */
  dtmfEvents(): ReadonlyArray<{ event: number; end: boolean; duration: number }> {
    return this.receivedEvents;
  }

  /** Drop what was received so far (e.g. to measure only after connect). */
  clearReceived(): void {
    this.received.length = 0;
    this.receivedSamples = 0;
  }

  hasTone(freqHz: number, opts?: Parameters<typeof pcmHasTone>[3]): boolean {
    return pcmHasTone(this.receivedPcm(), freqHz, SAMPLE_RATE, opts);
  }

  toneWindows(freqHz: number, opts?: Parameters<typeof pcmToneWindows>[3]): ReturnType<typeof pcmToneWindows> {
    return pcmToneWindows(this.receivedPcm(), freqHz, SAMPLE_RATE, opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopMedia();
    for (const u of this.unsubscribers.splice(0)) u();
    try {
      await this.pc.close();
    } catch {
      /* closing anyway */
    }
    this.encoder?.delete();
    this.decoder?.delete();
  }
}
