/**
 * Opus via opusscript's WebAssembly libopus, with our own thin wrapper around its native
 * handler. opusscript's JS wrapper (0.1.x) is not safe for many concurrent instances:
 * - it builds its PCM views as `HEAPU16.subarray(ptr, ...)` with a *byte* pointer used as a
 *   16-bit index, and passes `view.byteOffset` (= 2 * ptr) to C: every encode/decode writes
 *   outside its own allocation, into other instances' state (seen as libopus assertion
 *   failures and "memory access out of bounds" with a few dozen instances);
 * - it keeps heap views made at construction, which go stale when the WebAssembly memory grows.
 * Here the buffers are addressed correctly and the heap views are re-read on every call.
 * One handler holds an encoder and a decoder, so one per call serves both directions.
 * The native handler's ABI (opusscript_encoder.cpp): `_encode(in, bytes, out, frameSize)`
 * takes the PCM as one byte per 16-bit slot; `_decode(in, bytes, out)` returns samples per
 * channel and writes one byte per 16-bit slot.
 */
import { createRequire } from 'node:module';
import { endianness } from 'node:os';

/** Typed-array element conversion (set()) moves whole frames; the byte order of an Int16Array
 *  as bytes is the host's, which must match WebAssembly's (little-endian) for that. */
const LE = endianness() === 'LE';

interface NativeHandler {
  _encode(input: number, bytes: number, output: number, frameSize: number): number;
  _decode(input: number, bytes: number, output: number): number;
  _encoder_ctl(ctl: number, arg: number): number;
  _decoder_ctl(ctl: number, arg: number): number;
}
interface NativeModule {
  HEAPU8: Uint8Array;
  HEAPU16: Uint16Array;
  _malloc(n: number): number;
  _free(p: number): void;
  OpusScriptHandler: { new (rate: number, channels: number, app: number): NativeHandler; destroy_handler(h: NativeHandler): void };
}

const require = createRequire(import.meta.url);
let native: NativeModule | undefined;
function mod(): NativeModule {
  native ??= (require('opusscript/build/opusscript_native_wasm.js') as () => NativeModule)();
  return native;
}

export const OPUS_APPLICATION_VOIP = 2048;
const OPUS_SET_BITRATE = 4002;
const OPUS_SET_COMPLEXITY = 4010;
const MAX_PACKET = 1276 * 3;
/** Most samples per channel one packet decodes to (120 ms at 48 kHz). */
export const OPUS_MAX_FRAME = 5760;
const MAX_FRAME = OPUS_MAX_FRAME;

export class OpusCodec {
  private readonly m = mod();
  private handler: NativeHandler | undefined;
  private readonly inPcm: number; // PCM bytes as 16-bit slots (encode input)
  private readonly inPkt: number; // packet bytes (decode input)
  private readonly outPkt: number;
  private readonly outPcm: number; // decoded PCM bytes as 16-bit slots

  constructor(
    readonly sampleRate: 8000 | 12000 | 16000 | 24000 | 48000,
    readonly channels: 1 | 2 = 1,
    application = OPUS_APPLICATION_VOIP,
  ) {
    this.handler = new this.m.OpusScriptHandler(sampleRate, channels, application);
    const pcmBytes = MAX_FRAME * channels * 2;
    this.inPcm = this.m._malloc(pcmBytes * 2);
    this.outPcm = this.m._malloc(pcmBytes * 2);
    this.inPkt = this.m._malloc(MAX_PACKET);
    this.outPkt = this.m._malloc(MAX_PACKET);
    if (!this.inPcm || !this.outPcm || !this.inPkt || !this.outPkt) throw new Error('opus: out of WebAssembly memory');
  }

  setBitrate(bps: number): void {
    this.handler?._encoder_ctl(OPUS_SET_BITRATE, bps);
  }

  /** Encoder complexity 0..10 (libopus default 10): the main CPU knob of the encoder. */
  setComplexity(c: number): void {
    this.handler?._encoder_ctl(OPUS_SET_COMPLEXITY, Math.max(0, Math.min(10, Math.round(c))));
  }

  /** Encode one frame of interleaved 16-bit PCM (frameSize samples per channel). */
  encode(pcm: Int16Array, frameSize = pcm.length / this.channels): Buffer {
    if (!this.handler) throw new Error('opus codec deleted');
    const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    const h16 = this.m.HEAPU16;
    const base = this.inPcm >> 1;
    if (LE) {
      // Uint8 -> Uint16 set() zero-extends every byte into its own 16-bit slot.
      h16.set(bytes, base);
    } else {
      for (let i = 0; i < pcm.length; i++) {
        h16[base + 2 * i] = pcm[i]! & 0xff;
        h16[base + 2 * i + 1] = (pcm[i]! >> 8) & 0xff;
      }
    }
    const len = this.handler._encode(this.inPcm, bytes.length, this.outPkt, frameSize);
    if (len < 0) throw new Error(`opus encode error ${len}`);
    return Buffer.from(this.m.HEAPU8.subarray(this.outPkt, this.outPkt + len));
  }

  /**
   * Decode one packet into interleaved 16-bit PCM. With `out` (long enough for the packet's
   * samples, e.g. MAX_FRAME * channels) the PCM is written there and a view of it returned.
   */
  decode(packet: Uint8Array, out?: Int16Array): Int16Array {
    if (!this.handler) throw new Error('opus codec deleted');
    if (packet.length > MAX_PACKET) throw new Error('opus packet too large');
    this.m.HEAPU8.set(packet, this.inPkt);
    const n = this.handler._decode(this.inPkt, packet.length, this.outPcm);
    if (n < 0) throw new Error(`opus decode error ${n}`);
    const samples = n * this.channels;
    let dst: Int16Array;
    if (out) {
      if (out.length < samples) throw new RangeError(`opus: output buffer of ${out.length} < ${samples} samples`);
      dst = out.length === samples ? out : out.subarray(0, samples);
    } else {
      dst = new Int16Array(samples);
    }
    const h16 = this.m.HEAPU16;
    const base = this.outPcm >> 1;
    if (LE) {
      // Uint16 -> Uint8 set() keeps the low byte of every slot: the slots hold the PCM's bytes.
      new Uint8Array(dst.buffer, dst.byteOffset, samples * 2).set(h16.subarray(base, base + samples * 2));
    } else {
      for (let i = 0; i < samples; i++) dst[i] = ((h16[base + 2 * i]! | (h16[base + 2 * i + 1]! << 8)) << 16) >> 16;
    }
    return dst;
  }

  delete(): void {
    if (!this.handler) return;
    this.m.OpusScriptHandler.destroy_handler(this.handler);
    this.handler = undefined;
    this.m._free(this.inPcm);
    this.m._free(this.outPcm);
    this.m._free(this.inPkt);
    this.m._free(this.outPkt);
  }
}
