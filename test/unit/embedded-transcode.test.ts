import { afterEach, describe, expect, it } from 'vitest';
import { OpusCodec } from '../../src/media/codecs/opus.js';
import { decodePcmu, encodePcmu } from '../../src/media/codecs/g711.js';
import { sine, toneRatio } from '../../src/media/audio/tone.js';
import { RtpOutStream } from '../../src/media/embedded/rtp.js';
import { OpusToPbx, PbxToOpus, PBX_FRAME_TICKS } from '../../src/media/embedded/transcode.js';
import { OPUS_FRAME_TICKS } from '../../src/media/embedded/passthrough.js';

/** Opus packets of a 1 kHz tone as WhatsApp would send them (48 kHz encoder, `ms` per packet). */
function opusTone(packets: number, ms: 10 | 20 | 60): Buffer[] {
  const enc = new OpusCodec(48000, 1);
  const samples = 48 * ms;
  const pcm = sine(1000, 48000, packets * ms);
  const out: Buffer[] = [];
  for (let i = 0; i < packets; i++) out.push(enc.encode(pcm.subarray(i * samples, (i + 1) * samples), samples));
  enc.delete();
  return out;
}

const pipelines: Array<{ close(): void }> = [];
afterEach(() => {
  for (const p of pipelines.splice(0)) p.close();
});

/** WhatsApp -> PBX in PCMU, stamped on a real outgoing stream at a fake 20 ms clock. */
function toPcmu() {
  const out = new RtpOutStream(8000);
  const frames: Array<{ payload: Uint8Array; ts: number; seq: number }> = [];
  let now = 1000;
  const p = new OpusToPbx((payload, ticks) => {
    const f = out.frame(ticks, now);
    frames.push({ payload: Uint8Array.from(payload), ts: f.ts, seq: f.seq });
  });
  p.setRate(8000);
  pipelines.push(p);
  return {
    p,
    frames,
    push(ssrc: number, pkt: Uint8Array, advanceMs: number) {
      p.push(ssrc, pkt, 'PCMU');
      now += advanceMs;
    },
  };
}

describe('transcode: WhatsApp Opus -> PBX PCMU', () => {
  it('turns 20 ms Opus packets into 160-byte PCMU frames, timestamps +160, sequence +1', () => {
    const t = toPcmu();
    for (const pkt of opusTone(50, 20)) t.push(0x1234, pkt, 20);
    expect(t.frames).toHaveLength(50);
    for (let i = 1; i < t.frames.length; i++) {
      expect(t.frames[i]!.payload.length).toBe(160);
      expect((t.frames[i]!.ts - t.frames[i - 1]!.ts) >>> 0).toBe(PBX_FRAME_TICKS);
      expect((t.frames[i]!.seq - t.frames[i - 1]!.seq) & 0xffff).toBe(1);
    }
    // The audio is the tone (after the decoder's first frames).
    const pcm = decodePcmu(Buffer.concat(t.frames.slice(10).map((f) => f.payload)));
    expect(toneRatio(pcm, 1000, 8000)).toBeGreaterThan(0.8);
  });

  it('re-frames 60 ms packets into three 20 ms frames and 10 ms packets into one per two', () => {
    const t60 = toPcmu();
    for (const pkt of opusTone(5, 60)) t60.push(1, pkt, 60);
    expect(t60.frames).toHaveLength(15);
    expect(t60.frames.every((f) => f.payload.length === 160)).toBe(true);
    const t10 = toPcmu();
    for (const pkt of opusTone(10, 10)) t10.push(2, pkt, 10);
    expect(t10.frames).toHaveLength(5);
  });
});

describe('transcode: a new SSRC resets only its own direction', () => {
  it('a new WhatsApp SSRC drops the WhatsApp->PBX state and leaves PBX->WhatsApp alone', () => {
    const t = toPcmu();
    const toWaOut: Buffer[] = [];
    const up = new PbxToOpus({ bitrate: 20000, complexity: 5 }, (pkt, ticks) => {
      expect(ticks).toBe(OPUS_FRAME_TICKS);
      toWaOut.push(pkt);
    });
    up.setRate(8000);
    pipelines.push(up);
    const pbxHalf = encodePcmu(sine(1000, 8000, 10)); // 10 ms: half a frame, stays in the FIFO

    const ten = opusTone(4, 10);
    t.push(0xaaaa, ten[0]!, 10); // half a frame buffered
    up.push(0x5555, pbxHalf, 'PCMU'); // half a frame buffered toward WhatsApp
    expect(t.frames).toHaveLength(0);
    expect(toWaOut).toHaveLength(0);

    t.push(0xbbbb, ten[1]!, 10); // new WhatsApp SSRC: the buffered half of the old one is gone
    expect(t.frames).toHaveLength(0);
    expect(t.p.resets).toBe(1);
    expect(up.resets).toBe(0);

    up.push(0x5555, pbxHalf, 'PCMU'); // the PBX's buffered half was kept: one whole frame now
    expect(toWaOut).toHaveLength(1);
    t.push(0xbbbb, ten[2]!, 10);
    expect(t.frames).toHaveLength(1);
  });

  it('a new PBX SSRC drops the PBX->WhatsApp state and leaves WhatsApp->PBX alone', () => {
    const t = toPcmu();
    const toWaOut: Buffer[] = [];
    const up = new PbxToOpus({ bitrate: 20000, complexity: 5 }, (pkt) => toWaOut.push(pkt));
    up.setRate(8000);
    pipelines.push(up);
    const pbxHalf = encodePcmu(sine(1000, 8000, 10));
    const ten = opusTone(2, 10);
    t.push(7, ten[0]!, 10);
    up.push(1, pbxHalf, 'PCMU');
    up.push(2, pbxHalf, 'PCMU'); // new PBX SSRC: the old half is dropped
    expect(toWaOut).toHaveLength(0);
    expect(up.resets).toBe(1);
    expect(t.p.resets).toBe(0);
    t.push(7, ten[1]!, 10); // WhatsApp's buffered half was kept
    expect(t.frames).toHaveLength(1);
  });
});
