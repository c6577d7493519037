/**
 * Transcoding between WhatsApp's Opus and the PBX's G.722/PCMU/PCMA, one pipeline object per
 * direction. Each owns its codec state, its 20 ms FIFO and its resamplers, and resets them
 * itself when its input SSRC changes; nothing here touches a socket, so it is unit tested on its
 * own (test/unit/embedded-transcode.test.ts). Each direction has its own libopus handler: a new
 * WhatsApp SSRC resets the decoder toward the PBX and leaves the encoder toward WhatsApp alone.
 *
 * PCM between the codecs runs at the PBX codec's own rate: 8 kHz for G.711 (libopus decodes to
 * and encodes from 8 kHz itself, so a G.711 call resamples nothing), 16 kHz for G.722 (and for
 * Opus pass-through, should the PBX send G.711 anyway). WhatsApp's fmtp says
 * maxplaybackrate=16000, so 48 kHz PCM would only cost CPU.
 */
import { G722Decoder, G722Encoder } from '../codecs/g722.js';
import { decodePcma, decodePcmu, encodePcma, encodePcmu } from '../codecs/g711.js';
import { Resampler } from '../codecs/resampler.js';
import { OPUS_MAX_FRAME, OpusCodec } from '../codecs/opus.js';
import { OPUS_FRAME_TICKS } from './passthrough.js';
import { PcmFifo } from './pcm-fifo.js';
import type { PbxCodecName } from './sdp.js';

export type PcmRate = 8000 | 16000;
/** The PBX codecs that are transcoded (Opus is passed through, see passthrough.ts). */
export type PbxPcmCodec = 'G722' | 'PCMU' | 'PCMA';

/** 20 ms at 16 kHz: the largest PCM frame. */
const FRAME_16K = 320;
/** 20 ms at the 8 kHz RTP clock G.711 and G.722 (RFC 3551) use. */
export const PBX_FRAME_TICKS = 160;

export function pcmRateFor(kind: PbxCodecName | undefined): PcmRate {
  return kind === 'PCMU' || kind === 'PCMA' ? 8000 : 16000;
}

export interface OpusEncoderOptions {
  /** Encoder bitrate toward WhatsApp in bit/s (Meta's maxaveragebitrate is 20000). */
  bitrate: number;
  /** Encoder complexity 0..10. */
  complexity: number;
}

/** WhatsApp -> PBX: Opus decode, 20 ms framing, G.722/G.711 encode. */
export class OpusToPbx {
  private opus: OpusCodec | undefined;
  private rate: PcmRate = 16000;
  private fifo = new PcmFifo(FRAME_16K);
  private g722: G722Encoder | undefined;
  private inSsrc: number | undefined;
  private readonly pcm = new Int16Array(OPUS_MAX_FRAME);
  private readonly payload = new Uint8Array(FRAME_16K);
  /** Times the decoder state was dropped for a new input SSRC. */
  resets = 0;
  decodeErrors = 0;

  constructor(
    /** One encoded 20 ms frame for the PBX (`ticks` at its 8 kHz RTP clock); the view is reused. */
    private readonly emit: (payload: Uint8Array, ticks: number) => void,
  ) {}

  /** The PCM rate the PBX codec wants; a change makes a new decoder and an empty FIFO. */
  setRate(rate: PcmRate): void {
    this.fifo.clear();
    if (rate === this.rate) return;
    this.rate = rate;
    this.fifo = new PcmFifo(rate / 50);
    this.opus?.delete();
    this.opus = undefined;
  }

  /** One Opus packet from WhatsApp, encoded as `codec` toward the PBX. */
  push(ssrc: number, packet: Uint8Array, codec: PbxPcmCodec): void {
    if (this.inSsrc !== ssrc) {
      // A new source: fresh decoder state, nothing of the old stream left in the FIFO.
      if (this.inSsrc !== undefined) {
        this.opus?.delete();
        this.opus = undefined;
        this.fifo.clear();
        this.resets++;
      }
      this.inSsrc = ssrc;
    }
    let pcm: Int16Array;
    try {
      this.opus ??= new OpusCodec(this.rate, 1);
      pcm = this.opus.decode(packet, this.pcm);
    } catch {
      this.decodeErrors++;
      return;
    }
    this.fifo.push(pcm);
    for (let frame = this.fifo.take(); frame; frame = this.fifo.take()) this.emit(this.encode(frame, codec), PBX_FRAME_TICKS);
  }

  private encode(frame: Int16Array, codec: PbxPcmCodec): Uint8Array {
    if (codec === 'G722') {
      this.g722 ??= new G722Encoder();
      return this.g722.encode(frame, this.payload.subarray(0, frame.length >> 1));
    }
    const out = this.payload.subarray(0, frame.length);
    return codec === 'PCMU' ? encodePcmu(frame, out) : encodePcma(frame, out);
  }

  close(): void {
    this.opus?.delete();
    this.opus = undefined;
  }
}

/** PBX -> WhatsApp: G.722/G.711 decode, resampling to the PCM rate, 20 ms framing, Opus encode. */
export class PbxToOpus {
  private opus: OpusCodec | undefined;
  private rate: PcmRate = 16000;
  private fifo = new PcmFifo(FRAME_16K);
  private g722: G722Decoder | undefined;
  /** Only when the PBX sends another band than we send it (e.g. G.722 sent, PCMU received). */
  private up8to16: Resampler | undefined;
  private down16to8: Resampler | undefined;
  private inSsrc: number | undefined;
  private pcm8 = new Int16Array(2 * FRAME_16K);
  private pcm16 = new Int16Array(2 * FRAME_16K);
  /** Times the decoder state was dropped for a new input SSRC. */
  resets = 0;

  constructor(
    private readonly opusOptions: OpusEncoderOptions,
    /** One Opus packet for WhatsApp (`ticks` at its 48 kHz RTP clock). */
    private readonly emit: (packet: Buffer, ticks: number) => void,
  ) {}

  /** The PCM rate of the PBX codec we send; a change makes a new encoder and an empty FIFO. */
  setRate(rate: PcmRate): void {
    if (rate === this.rate) return;
    this.rate = rate;
    this.fifo = new PcmFifo(rate / 50);
    this.opus?.delete();
    this.opus = undefined;
  }

  /** One RTP payload of the PBX in `codec`. */
  push(ssrc: number, payload: Uint8Array, codec: PbxPcmCodec): void {
    if (this.inSsrc !== ssrc) {
      if (this.inSsrc !== undefined) {
        this.g722 = undefined;
        this.up8to16?.reset();
        this.down16to8?.reset();
        this.fifo.clear();
        this.resets++;
      }
      this.inSsrc = ssrc;
    }
    const n = payload.length;
    let pcm: Int16Array;
    if (codec === 'G722') {
      this.g722 ??= new G722Decoder();
      if (this.pcm16.length < 2 * n) this.pcm16 = new Int16Array(4 * n);
      pcm = this.g722.decode(payload, this.pcm16.subarray(0, 2 * n));
      if (this.rate === 8000) pcm = resample((this.down16to8 ??= new Resampler(16000, 8000)), pcm, this.pcm8);
    } else {
      if (this.pcm8.length < n) this.pcm8 = new Int16Array(2 * n);
      const in8 = this.pcm8.subarray(0, n);
      pcm = codec === 'PCMU' ? decodePcmu(payload, in8) : decodePcma(payload, in8);
      if (this.rate === 16000) pcm = resample((this.up8to16 ??= new Resampler(8000, 16000)), pcm, this.pcm16);
    }
    this.fifo.push(pcm);
    const frameSamples = this.rate / 50;
    for (let frame = this.fifo.take(); frame; frame = this.fifo.take()) {
      this.emit(this.encoder().encode(frame, frameSamples), OPUS_FRAME_TICKS);
    }
  }

  private encoder(): OpusCodec {
    if (!this.opus) {
      this.opus = new OpusCodec(this.rate, 1);
      this.opus.setBitrate(this.opusOptions.bitrate);
      this.opus.setComplexity(this.opusOptions.complexity);
    }
    return this.opus;
  }

  close(): void {
    this.opus?.delete();
    this.opus = undefined;
  }
}

/** Audio in the other band than the PCM rate, into a scratch buffer (grown when too short). */
function resample(r: Resampler, pcm: Int16Array, scratch: Int16Array): Int16Array {
  const m = r.outputLength(pcm.length);
  const out = scratch.length >= m && scratch.buffer !== pcm.buffer ? scratch : new Int16Array(2 * m);
  return r.process(pcm, out);
}
