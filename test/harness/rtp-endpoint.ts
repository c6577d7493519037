/**
 * Test and bench harness: the one PBX-side RTP endpoint (node:dgram), like a PBX's media leg.
 * It speaks PCMU, PCMA or G.722 (our codecs), both as answerer (`answer`) and as offerer
 * (`createOffer` + `applyAnswer`); sends a tone in real-time 20 ms packets (or pre-encoded
 * frames with `sendPayload`, for the benches); sends and records RFC 4733 telephone-events;
 * decodes what it receives for tone checks; and records the RTP header and source of every
 * packet (sequence/timestamp continuity and symmetric RTP checks).
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { parse, write, type SessionDescription } from 'sdp-transform';
import { ToneSource, hasTone, toneWindows } from '../../src/media/audio/tone.js';
import { G722Decoder, G722Encoder } from '../../src/media/codecs/g722.js';
import { decodePcma, decodePcmu, encodePcma, encodePcmu } from '../../src/media/codecs/g711.js';

export { ulawDecode, ulawEncode } from '../../src/media/codecs/g711.js';

export type EndpointCodec = 'PCMU' | 'PCMA' | 'G722';

/** Static payload types (RFC 3551); every one has an 8000 RTP clock and 160 ticks per 20 ms. */
const STATIC_PT: Record<EndpointCodec, number> = { PCMU: 0, PCMA: 8, G722: 9 };
const ALL_CODECS: EndpointCodec[] = ['PCMU', 'PCMA', 'G722'];
const TICKS = 160;
/** Telephone-event PT this endpoint offers. */
const OFFER_TE_PT = 101;

export interface RtpEndpointOptions {
  /** The codec this endpoint answers/requires and expects to receive (default PCMU). */
  codec?: EndpointCodec;
  /** What it sends: another codec of the same answer is legal (RFC 3264 6.1), e.g. a phone that
   *  answers "G722 PCMU" and sends PCMU. Default: `codec`. */
  sendCodec?: EndpointCodec;
  toneHz?: number;
  amplitude?: number;
  host?: string;
  /** Keep decoded audio for `receivedPcm`/`toneWindows` (default true; benches turn it off). */
  record?: boolean;
}

export interface ReceivedHeader {
  pt: number;
  seq: number;
  ts: number;
  ssrc: number;
  marker: boolean;
  /** performance.now() at arrival. */
  at: number;
}

export interface TelephoneEvent {
  pt: number;
  event: number;
  end: boolean;
  duration: number;
  ts: number;
  seq: number;
  marker: boolean;
}

interface Codec {
  encode(pcm: Int16Array): Uint8Array;
  decode(payload: Uint8Array): Int16Array;
  /** Audio sample rate (G.722: 16 kHz although its RTP clock is 8000). */
  rate: number;
}

function makeCodec(name: EndpointCodec): Codec {
  if (name === 'G722') {
    const enc = new G722Encoder();
    const dec = new G722Decoder();
    return { encode: (p) => enc.encode(p), decode: (d) => dec.decode(d), rate: 16000 };
  }
  if (name === 'PCMA') return { encode: (p) => encodePcma(p), decode: (d) => decodePcma(d), rate: 8000 };
  return { encode: (p) => encodePcmu(p), decode: (d) => decodePcmu(d), rate: 8000 };
}

type RtpMap = { payload: number; codec: string; rate: number };

export class RtpEndpoint {
  private remote: { host: string; port: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly tone: ToneSource;
  readonly ssrc = randomInt(1, 0xffffffff);
  private seq = randomInt(0, 0xffff);
  private ts = randomInt(0, 0xffffffff);
  private readonly chunks: Int16Array[] = [];
  private samples = 0;
  private closed = false;
  /** Payload type we receive audio on (`codec`), and the one we send (`sendCodec`). */
  private pt = -1;
  private sendPt = -1;
  private readonly rx: Codec;
  private readonly tx: Codec;
  private readonly record: boolean;
  /** telephone-event PT the SDP negotiated (-1: none). */
  tePt = -1;
  /** Every RTP packet received (RTCP excluded), in arrival order. */
  readonly headers: ReceivedHeader[] = [];
  readonly teEvents: TelephoneEvent[] = [];
  /** Packets on PTs that are neither our audio nor telephone-event. */
  readonly otherPayloads = new Map<number, number>();
  /** Where packets came from (symmetric RTP check). */
  readonly sources = new Set<string>();
  rtpIn = 0;
  /** Packets received on the audio PT. */
  audioIn = 0;
  rtpOut = 0;
  /** Called with each decoded audio frame and its arrival time (benches: onset probes). */
  onAudio: ((pcm: Int16Array, at: number) => void) | undefined;

  private constructor(
    private readonly sock: dgram.Socket,
    readonly host: string,
    readonly port: number,
    readonly codec: EndpointCodec,
    readonly sendCodec: EndpointCodec,
    opts: RtpEndpointOptions,
  ) {
    this.rx = makeCodec(codec);
    this.tx = makeCodec(sendCodec);
    this.record = opts.record ?? true;
    this.tone = new ToneSource(opts.toneHz ?? 440, this.tx.rate, opts.amplitude ?? 0.3);
    sock.on('message', (msg, rinfo) => this.onPacket(msg, rinfo));
  }

  static async create(opts: RtpEndpointOptions = {}): Promise<RtpEndpoint> {
    const host = opts.host ?? '127.0.0.1';
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((res, rej) => {
      sock.once('error', rej);
      sock.bind(0, host, () => res());
    });
    const codec = opts.codec ?? 'PCMU';
    return new RtpEndpoint(sock, host, sock.address().port, codec, opts.sendCodec ?? codec, opts);
  }

  /** Sample rate of received audio (`receivedPcm`): 16 kHz for G.722, else 8 kHz. */
  get rate(): number {
    return this.rx.rate;
  }

  /** telephone-event PT the SDP negotiated (-1: none). */
  get telephoneEventPt(): number {
    return this.tePt;
  }

  /** Packets received, with arrival time (ms, performance.now()). */
  get arrivals(): ReadonlyArray<{ pt: number; at: number }> {
    return this.headers;
  }

  /** Answer a plain RTP/AVP offer with our codec (+ sendCodec, + telephone-event/8000 when offered). */
  answer(offerSdp: string): string {
    const offer = parse(offerSdp);
    const m = audioOf(offer, 'offer');
    const find = (name: EndpointCodec): { payload: number } => {
      const c = m.rtp.find((r) => r.codec.toUpperCase() === name && r.rate === 8000);
      if (!c) throw new Error(`offer has no ${name}`);
      return c;
    };
    this.pt = find(this.codec).payload;
    this.sendPt = this.sendCodec === this.codec ? this.pt : find(this.sendCodec).payload;
    this.remote = remoteOf(offer, m, 'offer');
    const rtp: RtpMap[] = [{ payload: this.pt, codec: this.codec, rate: 8000 }];
    if (this.sendPt !== this.pt) rtp.push({ payload: this.sendPt, codec: this.sendCodec, rate: 8000 });
    const te = m.rtp.find((r) => r.codec.toLowerCase() === 'telephone-event' && r.rate === 8000);
    if (te) {
      this.tePt = te.payload;
      rtp.push({ payload: te.payload, codec: 'telephone-event', rate: 8000 });
    }
    return this.sdp(rtp);
  }

  /**
   * A plain RTP/AVP offer like a PBX's: our codec first, then the others of PCMU, PCMA and
   * G.722, and telephone-event/8000 (PT 101). `applyAnswer` takes the answered PTs and address.
   */
  createOffer(): string {
    const order = [this.codec, ...ALL_CODECS.filter((c) => c !== this.codec)];
    const rtp: RtpMap[] = order.map((c) => ({ payload: STATIC_PT[c], codec: c, rate: 8000 }));
    rtp.push({ payload: OFFER_TE_PT, codec: 'telephone-event', rate: 8000 });
    return this.sdp(rtp);
  }

  /** Apply the plain answer to our `createOffer()`: it must answer our codec (and sendCodec). */
  applyAnswer(answerSdp: string): void {
    const answer = parse(answerSdp);
    const m = audioOf(answer, 'answer');
    if (m.port === 0) throw new Error('answer rejected the audio stream (port 0)');
    const find = (name: EndpointCodec): { payload: number } => {
      const c = m.rtp.find((r) => r.codec.toUpperCase() === name);
      if (!c) throw new Error(`answer has no ${name} (${m.rtp.map((r) => r.codec).join(',')})`);
      return c;
    };
    this.pt = find(this.codec).payload;
    this.sendPt = this.sendCodec === this.codec ? this.pt : find(this.sendCodec).payload;
    const te = m.rtp.find((r) => r.codec.toLowerCase() === 'telephone-event' && r.rate === 8000);
    if (te) this.tePt = te.payload;
    this.remote = remoteOf(answer, m, 'answer');
  }

  private sdp(rtp: RtpMap[]): string {
    const fmtp = rtp.filter((r) => r.codec === 'telephone-event').map((r) => ({ payload: r.payload, config: '0-16' }));
    const desc: SessionDescription = {
      version: 0,
      origin: { username: '-', sessionId: randomInt(1, 2 ** 31), sessionVersion: 1, netType: 'IN', ipVer: 4, address: this.host },
      name: 'pbx',
      timing: { start: 0, stop: 0 },
      connection: { version: 4, ip: this.host },
      media: [
        {
          type: 'audio',
          port: this.port,
          protocol: 'RTP/AVP',
          payloads: rtp.map((r) => r.payload).join(' '),
          rtp,
          fmtp,
          ptime: 20,
          direction: 'sendrecv',
        } as SessionDescription['media'][number],
      ],
    };
    return write(desc);
  }

  /** Start sending the tone: 20 ms packets due on a schedule (a late timer sends what fell due). */
  startMedia(): void {
    if (this.timer || !this.remote) return;
    const started = performance.now();
    let sent = 0;
    const tick = (): void => {
      const due = Math.floor((performance.now() - started) / 20) + 1;
      for (let n = 0; sent < due && n < 5; n++, sent++) this.sendFrame(sent === 0);
      if (sent < due) sent = due;
    };
    tick();
    this.timer = setInterval(tick, 10);
  }

  /** Stop sending the tone (events from sendDtmf still go out). */
  stopMedia(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private sendFrame(marker: boolean): void {
    this.sendPayload(this.tx.encode(this.tone.next(20)), marker);
  }

  /** Send one 20 ms frame already encoded in `sendCodec` (the timestamp advances by 160). */
  sendPayload(payload: Uint8Array, marker = false): void {
    this.send(this.sendPt, marker, this.ts, payload);
    this.ts = (this.ts + TICKS) >>> 0;
  }

  private send(pt: number, marker: boolean, ts: number, payload: Uint8Array): void {
    if (!this.remote || this.closed) return;
    const pkt = Buffer.alloc(12 + payload.length);
    pkt[0] = 0x80;
    pkt[1] = (marker ? 0x80 : 0) | pt;
    pkt.writeUInt16BE(this.seq, 2);
    pkt.writeUInt32BE(ts >>> 0, 4);
    pkt.writeUInt32BE(this.ssrc >>> 0, 8);
    pkt.set(payload, 12);
    this.seq = (this.seq + 1) & 0xffff;
    this.rtpOut++;
    this.sock.send(pkt, this.remote.port, this.remote.host);
  }

  /**
   * Send one RFC 4733 event on the negotiated telephone-event PT, in the audio stream (same
   * SSRC, sequence numbers continue): an update every 20 ms with the duration growing by 160,
   * the last one with the end bit, sent three times. Audio keeps its timestamps meanwhile.
   */
  async sendDtmf(event: number, durationMs = 200): Promise<void> {
    if (this.tePt < 0) throw new Error('telephone-event not negotiated');
    const startTs = this.ts;
    const steps = Math.round(durationMs / 20);
    for (let i = 1; i <= steps; i++) {
      const end = i === steps;
      const payload = Buffer.from([event, (end ? 0x80 : 0) | 10, 0, 0]);
      payload.writeUInt16BE(i * TICKS, 2);
      for (let r = 0; r < (end ? 3 : 1); r++) this.send(this.tePt, i === 1 && r === 0, startTs, payload);
      await new Promise((res) => setTimeout(res, 20)); // RFC 4733 pacing: one update per 20 ms
    }
  }

  private onPacket(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
    const pt = msg[1]! & 0x7f;
    if (pt >= 72 && pt <= 79) return; // RTCP on the RTP port
    this.sources.add(`${rinfo.address}:${rinfo.port}`);
    const cc = msg[0]! & 0x0f;
    let off = 12 + cc * 4;
    if (msg[0]! & 0x10) off += 4 + msg.readUInt16BE(off + 2) * 4;
    let end = msg.length;
    if (msg[0]! & 0x20) end -= msg[end - 1]!;
    const payload = msg.subarray(off, end);
    this.rtpIn++;
    const h: ReceivedHeader = {
      pt,
      seq: msg.readUInt16BE(2),
      ts: msg.readUInt32BE(4),
      ssrc: msg.readUInt32BE(8),
      marker: (msg[1]! & 0x80) !== 0,
      at: performance.now(),
    };
    this.headers.push(h);
    if (pt === this.pt) {
      this.audioIn++;
      if (!this.record && !this.onAudio) return;
      const pcm = this.rx.decode(payload);
      if (this.record) {
        this.chunks.push(pcm);
        this.samples += pcm.length;
      }
      this.onAudio?.(pcm, h.at);
      return;
    }
    if (pt === this.tePt && payload.length >= 4) {
      this.teEvents.push({ pt, event: payload[0]!, end: (payload[1]! & 0x80) !== 0, duration: payload.readUInt16BE(2), ts: h.ts, seq: h.seq, marker: h.marker });
    }
    this.otherPayloads.set(pt, (this.otherPayloads.get(pt) ?? 0) + 1);
  }

  /** Received audio, mono PCM at `rate`. */
  receivedPcm(): Int16Array {
    const out = new Int16Array(this.samples);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  clearReceived(): void {
    this.chunks.length = 0;
    this.samples = 0;
  }

  hasTone(freqHz: number, opts?: Parameters<typeof hasTone>[3]): boolean {
    return hasTone(this.receivedPcm(), freqHz, this.rate, opts);
  }

  toneWindows(freqHz: number, opts?: Parameters<typeof toneWindows>[3]): ReturnType<typeof toneWindows> {
    return toneWindows(this.receivedPcm(), freqHz, this.rate, opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopMedia();
    await new Promise<void>((res) => this.sock.close(() => res()));
  }
}

function audioOf(sdp: SessionDescription, what: string): SessionDescription['media'][number] {
  const m = sdp.media.find((x) => x.type === 'audio');
  if (!m) throw new Error(`${what} has no audio`);
  if (m.protocol !== 'RTP/AVP') throw new Error(`${what} transport ${m.protocol}, expected RTP/AVP`);
  return m;
}

function remoteOf(sdp: SessionDescription, m: SessionDescription['media'][number], what: string): { host: string; port: number } {
  const addr = m.connection?.ip ?? sdp.connection?.ip;
  if (!addr) throw new Error(`${what} has no c= address`);
  return { host: addr, port: m.port };
}

