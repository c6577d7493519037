/**
 * Test harness: a plain RTP endpoint (a PBX's media side) that speaks PCMU or G.722 (our own
 * G.722 codec), sends and records RFC 4733 telephone-events, and records the RTP header of every
 * packet it receives (for sequence/timestamp continuity checks).
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { parse, write, type SessionDescription } from 'sdp-transform';
import { ToneSource, toneWindows } from '../../src/media/audio/tone.js';
import { G722Decoder, G722Encoder } from '../../src/media/codecs/g722.js';
import { decodePcmu, encodePcmu } from '../../src/media/codecs/g711.js';

export type EndpointCodec = 'PCMU' | 'G722';

export interface ReceivedHeader {
  pt: number;
  seq: number;
  ts: number;
  ssrc: number;
  marker: boolean;
  at: number;
}

export class CodecRtpEndpoint {
  private remote: { host: string; port: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly tone: ToneSource;
  readonly ssrc = randomInt(1, 0xffffffff);
  private seq = randomInt(0, 0xffff);
  private ts = randomInt(0, 0xffffffff);
  private readonly chunks: Int16Array[] = [];
  private samples = 0;
  private closed = false;
  private pt = -1;
  /** Payload type we send (the answer's first codec unless sendCodec differs). */
  private sendPt = -1;
  tePt = -1;
  private enc = new G722Encoder();
  private dec = new G722Decoder();
  readonly headers: ReceivedHeader[] = [];
  readonly teEvents: Array<{ event: number; end: boolean; duration: number; ts: number; seq: number; marker: boolean }> = [];
  rtpIn = 0;
  rtpOut = 0;
  /** Where packets came from (symmetric RTP check). */
  sources = new Set<string>();

  private constructor(
    private readonly sock: dgram.Socket,
    readonly host: string,
    readonly port: number,
    readonly codec: EndpointCodec,
    toneHz: number,
    amplitude: number,
    /** What we send: another codec of the same answer is legal (RFC 3264 6.1), e.g. a phone that
     *  answers "G722 PCMU" and sends PCMU. Received audio is still expected in `codec`. */
    readonly sendCodec: EndpointCodec = codec,
  ) {
    this.tone = new ToneSource(toneHz, sendCodec === 'G722' ? 16000 : 8000, amplitude);
    sock.on('message', (msg, rinfo) => this.onPacket(msg, rinfo));
  }

  /** Audio sample rate of the codec (G.722: 16 kHz although its RTP clock is 8000). */
  get rate(): number {
    return this.codec === 'G722' ? 16000 : 8000;
  }

  static async create(
    opts: { codec?: EndpointCodec; sendCodec?: EndpointCodec; toneHz?: number; amplitude?: number; host?: string } = {},
  ): Promise<CodecRtpEndpoint> {
    const host = opts.host ?? '127.0.0.1';
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((res, rej) => {
      sock.once('error', rej);
      sock.bind(0, host, () => res());
    });
    const codec = opts.codec ?? 'PCMU';
    return new CodecRtpEndpoint(sock, host, sock.address().port, codec, opts.toneHz ?? 440, opts.amplitude ?? 0.3, opts.sendCodec ?? codec);
  }

  /** Answer a plain RTP/AVP offer with our codec (+ telephone-event/8000 when offered). */
  answer(offerSdp: string): string {
    const offer = parse(offerSdp);
    const m = offer.media.find((x) => x.type === 'audio');
    if (!m) throw new Error('offer has no audio');
    if (m.protocol !== 'RTP/AVP') throw new Error(`offer transport ${m.protocol}, expected RTP/AVP`);
    const c = m.rtp.find((r) => r.codec.toUpperCase() === this.codec && r.rate === 8000);
    if (!c) throw new Error(`offer has no ${this.codec}`);
    this.pt = c.payload;
    this.sendPt = c.payload;
    const te = m.rtp.find((r) => r.codec.toLowerCase() === 'telephone-event' && r.rate === 8000);
    const addr = m.connection?.ip ?? offer.connection?.ip;
    if (!addr) throw new Error('offer has no c= address');
    this.remote = { host: addr, port: m.port };
    const rtp: Array<{ payload: number; codec: string; rate: number }> = [{ payload: c.payload, codec: this.codec, rate: 8000 }];
    if (this.sendCodec !== this.codec) {
      const s = m.rtp.find((r) => r.codec.toUpperCase() === this.sendCodec && r.rate === 8000);
      if (!s) throw new Error(`offer has no ${this.sendCodec}`);
      this.sendPt = s.payload;
      rtp.push({ payload: s.payload, codec: this.sendCodec, rate: 8000 });
    }
    const fmtp: Array<{ payload: number; config: string }> = [];
    if (te) {
      this.tePt = te.payload;
      rtp.push({ payload: te.payload, codec: 'telephone-event', rate: 8000 });
      fmtp.push({ payload: te.payload, config: '0-16' });
    }
    const answer: SessionDescription = {
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
    return write(answer);
  }

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

  stopMedia(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
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

  private sendFrame(marker: boolean): void {
    const pcm = this.tone.next(20);
    const payload = this.sendCodec === 'G722' ? this.enc.encode(pcm) : encodePcmu(pcm);
    this.send(this.sendPt, marker, this.ts, payload);
    this.ts = (this.ts + 160) >>> 0;
  }

  /** Send one RFC 4733 event: updates every 20 ms, then the end packet three times. */
  async sendDtmf(event: number, durationMs = 200): Promise<void> {
    if (this.tePt < 0) throw new Error('telephone-event not negotiated');
    const startTs = this.ts;
    const steps = Math.round(durationMs / 20);
    for (let i = 1; i <= steps; i++) {
      const end = i === steps;
      const payload = Buffer.from([event, (end ? 0x80 : 0) | 10, 0, 0]);
      payload.writeUInt16BE(i * 160, 2);
      for (let r = 0; r < (end ? 3 : 1); r++) this.send(this.tePt, i === 1 && r === 0, startTs, payload);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  private onPacket(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
    const pt = msg[1]! & 0x7f;
    if (pt >= 72 && pt <= 79) return;
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
      const out = this.codec === 'G722' ? this.dec.decode(payload) : decodePcmu(payload);
      this.chunks.push(out);
      this.samples += out.length;
    } else if (pt === this.tePt && payload.length >= 4) {
      this.teEvents.push({
        event: payload[0]!,
        end: (payload[1]! & 0x80) !== 0,
        duration: payload.readUInt16BE(2),
        ts: h.ts,
        seq: h.seq,
        marker: h.marker,
      });
    }
  }

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
