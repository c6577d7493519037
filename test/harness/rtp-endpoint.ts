/**
 * Test harness: a plain RTP endpoint, like a PBX's media side (node:dgram). It answers a plain
 * RTP/AVP offer with PCMU (plus telephone-event when offered), sends a tone as 20 ms PCMU
 * packets and decodes what it receives into 8 kHz PCM for tone checks. G.722 is left out: no
 * pure-JS G.722 codec is installed.
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { parse, write, type SessionDescription } from 'sdp-transform';
import { ToneSource, hasTone, toneWindows } from '../../src/media/audio/tone.js';

export { ulawDecode, ulawEncode } from '../../src/media/codecs/g711.js';
import { ulawDecode, ulawEncode } from '../../src/media/codecs/g711.js';

const RATE = 8000;
const FRAME = 160; // 20 ms

export interface RtpEndpointOptions {
  toneHz?: number;
  amplitude?: number;
  host?: string;
}

export class PlainRtpEndpoint {
  private remote: { host: string; port: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly tone: ToneSource;
  private readonly ssrc = randomInt(1, 0xffffffff);
  private seq = randomInt(0, 0xffff);
  private ts = randomInt(0, 0xffffffff);
  private readonly chunks: Int16Array[] = [];
  private samples = 0;
  private closed = false;
  /** PCMU payload type from the offer (0) and telephone-event PT if offered. */
  private pt = 0;
  private tePt = -1;
  /** telephone-event PT the SDP negotiated for the PBX side (-1: none). */
  get telephoneEventPt(): number {
    return this.tePt;
  }
  teEvents: Array<{ pt: number; event: number; end: boolean; duration: number; ts: number; seq: number; marker: boolean }> = [];
  /** RTP packets received per payload type, with arrival time (ms, performance.now()). */
  readonly arrivals: Array<{ pt: number; at: number }> = [];
  rtpIn = 0;
  rtpOut = 0;
  otherPayloads = new Map<number, number>();

  private constructor(
    private readonly sock: dgram.Socket,
    readonly host: string,
    readonly port: number,
    toneHz: number,
    amplitude: number,
  ) {
    this.tone = new ToneSource(toneHz, RATE, amplitude);
    sock.on('message', (msg) => this.onPacket(msg));
  }

  static async create(opts: RtpEndpointOptions = {}): Promise<PlainRtpEndpoint> {
    const host = opts.host ?? '127.0.0.1';
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((res, rej) => {
      sock.once('error', rej);
      sock.bind(0, host, () => res());
    });
    return new PlainRtpEndpoint(sock, host, sock.address().port, opts.toneHz ?? 440, opts.amplitude ?? 0.3);
  }

  /** Answer a plain RTP/AVP offer with PCMU (and the offered telephone-event/8000). */
  answer(offerSdp: string): string {
    const offer = parse(offerSdp);
    const m = offer.media.find((x) => x.type === 'audio');
    if (!m) throw new Error('offer has no audio');
    if (m.protocol !== 'RTP/AVP') throw new Error(`offer transport ${m.protocol}, expected RTP/AVP`);
    const pcmu = m.rtp.find((r) => r.codec.toUpperCase() === 'PCMU');
    if (!pcmu) throw new Error('offer has no PCMU');
    this.pt = pcmu.payload;
    const te = m.rtp.find((r) => r.codec.toLowerCase() === 'telephone-event' && r.rate === 8000);
    const addr = m.connection?.ip ?? offer.connection?.ip;
    if (!addr) throw new Error('offer has no c= address');
    this.remote = { host: addr, port: m.port };
    const rtp = [{ payload: pcmu.payload, codec: 'PCMU', rate: 8000 }];
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

  /**
   * A plain RTP/AVP offer like a PBX's: PCMU, PCMA, G.722 and telephone-event/8000 (PT 101).
   * Only PCMU is spoken; `applyAnswer` takes the answered PCMU PT and the remote address.
   */
  createOffer(): string {
    const rtp = [
      { payload: 0, codec: 'PCMU', rate: 8000 },
      { payload: 8, codec: 'PCMA', rate: 8000 },
      { payload: 9, codec: 'G722', rate: 8000 },
      { payload: 101, codec: 'telephone-event', rate: 8000 },
    ];
    const offer: SessionDescription = {
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
          fmtp: [{ payload: 101, config: '0-16' }],
          ptime: 20,
          direction: 'sendrecv',
        } as SessionDescription['media'][number],
      ],
    };
    return write(offer);
  }

  /** Apply the plain answer to our `createOffer()`: it must answer PCMU. */
  applyAnswer(answerSdp: string): void {
    const answer = parse(answerSdp);
    const m = answer.media.find((x) => x.type === 'audio');
    if (!m) throw new Error('answer has no audio');
    if (m.protocol !== 'RTP/AVP') throw new Error(`answer transport ${m.protocol}, expected RTP/AVP`);
    if (m.port === 0) throw new Error('answer rejected the audio stream (port 0)');
    const pcmu = m.rtp.find((r) => r.codec.toUpperCase() === 'PCMU');
    if (!pcmu) throw new Error(`answer has no PCMU (${m.rtp.map((r) => r.codec).join(',')})`);
    this.pt = pcmu.payload;
    const te = m.rtp.find((r) => r.codec.toLowerCase() === 'telephone-event' && r.rate === 8000);
    if (te) this.tePt = te.payload;
    const addr = m.connection?.ip ?? answer.connection?.ip;
    if (!addr) throw new Error('answer has no c= address');
    this.remote = { host: addr, port: m.port };
  }

  /** Start sending the tone, 20 ms PCMU packets in real time. */
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
    const pcm = this.tone.next(20);
    const payload = Buffer.alloc(FRAME);
    for (let i = 0; i < FRAME; i++) payload[i] = ulawEncode(pcm[i]!);
    this.send(this.pt, marker, this.ts, payload);
    this.ts = (this.ts + FRAME) >>> 0;
  }

  private send(pt: number, marker: boolean, ts: number, payload: Buffer): void {
    if (!this.remote || this.closed) return;
    const pkt = Buffer.alloc(12 + payload.length);
    pkt[0] = 0x80;
    pkt[1] = (marker ? 0x80 : 0) | pt;
    pkt.writeUInt16BE(this.seq, 2);
    pkt.writeUInt32BE(ts >>> 0, 4);
    pkt.writeUInt32BE(this.ssrc >>> 0, 8);
    payload.copy(pkt, 12);
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
      payload.writeUInt16BE(i * FRAME, 2);
      for (let r = 0; r < (end ? 3 : 1); r++) this.send(this.tePt, i === 1 && r === 0, startTs, payload);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  private onPacket(msg: Buffer): void {
    if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
    const pt = msg[1]! & 0x7f;
    if (pt >= 72 && pt <= 79) return; // RTCP on the RTP port
    const cc = msg[0]! & 0x0f;
    let off = 12 + cc * 4;
    if (msg[0]! & 0x10) off += 4 + msg.readUInt16BE(off + 2) * 4;
    let end = msg.length;
    if (msg[0]! & 0x20) end -= msg[end - 1]!;
    const payload = msg.subarray(off, end);
    this.rtpIn++;
    this.arrivals.push({ pt, at: performance.now() });
    if (pt === this.pt) {
      const out = new Int16Array(payload.length);
      for (let i = 0; i < payload.length; i++) out[i] = ulawDecode(payload[i]!);
      this.chunks.push(out);
      this.samples += out.length;
    } else {
      if (pt === this.tePt && payload.length >= 4) {
        this.teEvents.push({
          pt,
          event: payload[0]!,
          end: (payload[1]! & 0x80) !== 0,
          duration: payload.readUInt16BE(2),
          ts: msg.readUInt32BE(4),
          seq: msg.readUInt16BE(2),
          marker: (msg[1]! & 0x80) !== 0,
        });
      }
      this.otherPayloads.set(pt, (this.otherPayloads.get(pt) ?? 0) + 1);
    }
  }

  /** Received audio, 8 kHz mono PCM. */
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
    return hasTone(this.receivedPcm(), freqHz, RATE, opts);
  }

  toneWindows(freqHz: number, opts?: Parameters<typeof toneWindows>[3]): ReturnType<typeof toneWindows> {
    return toneWindows(this.receivedPcm(), freqHz, RATE, opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await new Promise<void>((res) => this.sock.close(() => res()));
  }
}
