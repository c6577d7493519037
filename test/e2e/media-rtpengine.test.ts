/**
 * End to end through a real rtpengine: WhatsAppMediaPeer (werift, ICE-lite, DTLS server) <->
 * rtpengine (ICE controlling, DTLS client, Opus<->PCMU) <-> a plain RTP endpoint (PCMU).
 */
import { afterAll, expect, it } from 'vitest';
import { parse } from 'sdp-transform';
import { createRtpengineEngine } from '../../src/media/rtpengine/index.js';
import { checkWhatsAppAnswer } from '../../src/media/sdp-rules.js';
import { MediaError, type MediaSession } from '../../src/media/types.js';
import { WhatsAppMediaPeer } from '../../src/simulator/webrtc-peer.js';
import { silentLogger } from '../../src/util/log.js';
import { rtpengineForBlock } from '../support/engines.js';
import { describeWithPeers } from '../support/peers.js';
import { RtpEndpoint } from '../harness/rtp-endpoint.js';
import { expectTwoWayAudio, waitForTone } from '../support/audio.js';
import { sleep, waitFor } from '../support/wait.js';
import { randomMediaRange, rtpengineSkipReason, startRtpengine } from '../harness/rtpengine.js';

const skip = rtpengineSkipReason();
/** Distinct digits in arrival order, one per event (an event is one RTP timestamp). */
function digitsOf(ev: ReadonlyArray<{ event: number; ts: number }>): number[] {
  const seen = new Set<string>();
  const out: number[] = [];
  for (const e of ev) {
    const k = `${e.event}@${e.ts}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(e.event);
    }
  }
  return out;
}
const RUNS = 5;
/** Share of 100 ms windows that must carry the tone. */
const MIN_SHARE = 0.8;

describeWithPeers('media through rtpengine', ['rtpengine'], () => {
  const rtp = rtpengineForBlock();
  const connectTimes: Array<{ iceMs: number; dtlsMs: number }> = [];
  const ngTimes: { offer: number[]; answer: number[] } = { offer: [], answer: [] };

  afterAll(() => {
    if (connectTimes.length) {
      const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
      console.info(
        `[media-rtpengine] ICE+DTLS connect ms: ${connectTimes.map((t) => `${t.iceMs.toFixed(0)}/${t.dtlsMs.toFixed(0)}`).join(' ')}` +
          ` (ice/dtls); ng offer ms median ${med(ngTimes.offer).toFixed(2)}, answer ms median ${med(ngTimes.answer).toFixed(2)}`,
      );
    }
  });

  for (let run = 1; run <= RUNS; run++) {
    it(`run ${run}: tones cross both ways, answer obeys WhatsApp's rules, session is released`, async () => {
      const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
      const pbx = await RtpEndpoint.create({ toneHz: 440 });
      const session = rtp.engine.createSession(`e2e-${run}-${Date.now()}`);
      try {
        const offer = await peer.createOffer();
        let t0 = performance.now();
        const plainOffer = await session.offerFromWhatsApp(offer);
        ngTimes.offer.push(performance.now() - t0);

        // The PBX side: plain RTP/AVP, PCMU/PCMA/G722 + telephone-event, no WebRTC leftovers.
        const po = parse(plainOffer);
        const pm = po.media[0]!;
        expect(pm.protocol).toBe('RTP/AVP');
        expect(pm.rtp.map((r) => r.codec)).toEqual(expect.arrayContaining(['PCMU', 'PCMA', 'G722', 'telephone-event']));
        expect(pm.rtp.some((r) => r.codec.toLowerCase() === 'opus')).toBe(false);
        for (const attr of ['a=ssrc', 'a=mid', 'a=msid', 'a=end-of-candidates', 'a=extmap', 'a=rtcp-fb', 'a=candidate', 'a=fingerprint', 'a=ice-', 'a=group']) {
          expect(plainOffer, attr).not.toContain(attr);
        }

        const pbxAnswer = pbx.answer(plainOffer);
        t0 = performance.now();
        const waAnswer = await session.answerFromPbx(pbxAnswer);
        ngTimes.answer.push(performance.now() - t0);
        expect(checkWhatsAppAnswer(waAnswer)).toEqual([]);
        const am = parse(waAnswer).media[0]!;
        expect(am.rtp.find((r) => r.payload === 111)?.codec).toBe('opus');
        expect(am.rtp.find((r) => r.payload === 126)?.codec).toBe('telephone-event');
        // 183 then 200 with the same or a new SDP: WhatsApp gets the same answer.
        expect(await session.answerFromPbx(pbxAnswer)).toBe(waAnswer);

        await peer.applyAnswer(waAnswer);
        const times = await peer.waitConnected(10_000);
        connectTimes.push(times);
        expect(peer.dtlsRole).toBe('server');
        expect(peer.iceRole).toBe('controlled');

        // The business accepted: both sides speak, and each hears the other (not itself).
        await expectTwoWayAudio(pbx, peer, { pbxHears: 1000, peerHears: 440, minShare: MIN_SHARE });
      } finally {
        await peer.close();
        await pbx.close();
        await session.close();
        await session.close(); // idempotent
      }
      expect(await rtp.engine.listSessions()).toEqual([]);
    });
  }

  /** Connected call: WhatsApp offer, PBX answer, ICE + DTLS up. */
  async function connectedCall(name: string): Promise<{ peer: WhatsAppMediaPeer; pbx: RtpEndpoint; session: MediaSession; waAnswer: string }> {
    const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
    const pbx = await RtpEndpoint.create({ toneHz: 440 });
    const session = rtp.engine.createSession(`${name}-${Date.now()}`);
    const plainOffer = await session.offerFromWhatsApp(await peer.createOffer());
    const waAnswer = await session.answerFromPbx(pbx.answer(plainOffer));
    await peer.applyAnswer(waAnswer);
    await peer.waitConnected(10_000);
    return { peer, pbx, session, waAnswer };
  }

  it('DTMF: WhatsApp events reach the PBX as RFC 4733 events with their durations; the PBX\'s reach WhatsApp in-band', async () => {
    const { peer, pbx, session, waAnswer } = await connectedCall('dtmf');
    try {
      expect(parse(waAnswer).media[0]!.rtp.find((r) => r.payload === 126)).toMatchObject({ codec: 'telephone-event', rate: 8000 });
      const tePt = pbx.telephoneEventPt;
      expect(tePt).toBeGreaterThanOrEqual(96);
      pbx.startMedia();
      peer.startMedia();
      await Promise.all([waitForTone(pbx, 1000, 'the PBX'), waitForTone(peer, 440, 'the WhatsApp peer')]);

      // WhatsApp -> PBX: digits 1 and 9, 200 ms each (duration 1600 in 8 kHz units).
      await peer.sendDtmf(1);
      await sleep(100); // the gap between two key presses
      await peer.sendDtmf(9);
      const ev = pbx.teEvents;
      await waitFor(() => ev.some((e) => e.end && e.event === 9), { what: "the end of digit 9 at the PBX" });
      expect(ev.length, 'events reach the PBX').toBeGreaterThan(0);
      expect(ev.every((e) => e.pt === tePt), 'on the PT of the PBX-side SDP').toBe(true);
      expect(digitsOf(ev)).toEqual([1, 9]);
      expect(ev.filter((e) => e.end && e.event === 1).length).toBeGreaterThanOrEqual(1);
      expect(ev.filter((e) => e.end && e.event === 9).length).toBeGreaterThanOrEqual(1);
      // The IVR sees the real press length: 200 ms = 1600 units at 8 kHz (not rescaled).
      const maxIn = Math.max(...ev.map((e) => e.duration));
      expect(maxIn).toBeGreaterThanOrEqual(1200);
      expect(maxIn).toBeLessThanOrEqual(2000);

      // PBX -> WhatsApp: rtpengine 10.5 renders the PBX's digit 5 (770 + 1336 Hz) in-band.
      pbx.stopMedia();
      await sleep(100); // audio already in flight lands before the listening starts
      peer.clearReceived();
      await pbx.sendDtmf(5, 400);
      // The digit's in-band rendering is the event; rtpengine handled the RFC 4733 packets by
      // then, so any it were to forward as events have arrived too.
      const inband = await waitFor(
        () => {
          const w = peer.toneWindows(1336, { minRatio: 0.2 });
          return w.matching > 0 && w;
        },
        { what: 'the PBX digit in-band at WhatsApp' },
      ).catch(() => peer.toneWindows(1336, { minRatio: 0.2 }));
      expect(inband.matching, 'the caller hears the PBX digit in-band').toBeGreaterThan(0);
      expect(peer.dtmfEvents().length, 'no RFC 4733 events toward WhatsApp on inbound calls (rtpengine 10.5)').toBe(0);
      pbx.startMedia();
      // Audio still flows after the digits: 1 s of it (ten 100 ms windows) carries the tone.
      peer.clearReceived();
      await waitFor(() => peer.toneWindows(440).windows >= 10, { what: '1 s of audio at WhatsApp after the digits' });
      expect(peer.toneWindows(440).share).toBeGreaterThanOrEqual(MIN_SHARE);
    } finally {
      await peer.close();
      await pbx.close();
      await session.close();
    }
  });

  // rtpengine 10.5 has no ng flag or daemon option that sends media toward WhatsApp while the
  // PBX is silent (see the comment at the top of src/media/rtpengine/flags.ts): a silent PBX
  // gives WhatsApp nothing, pinned here so an upgrade that changes it is noticed. A hold the
  // bridge sees (pbxSending(false)) makes rtpengine play looped silence; resume stops it.
  it('keep-alive: a silent PBX gives WhatsApp nothing; on hold rtpengine plays silence, stopped on resume', async () => {
    const { peer, pbx, session } = await connectedCall('keepalive');
    try {
      peer.startMedia(); // the WhatsApp user talks, the PBX rings/holds silently
      expect(await peer.rtpInRate(1500), 'RTP packets/s toward WhatsApp with a silent PBX').toBe(0);

      await session.pbxSending(false);
      await session.pbxSending(false); // idempotent: one stream, not two
      const before = peer.stats.rtpIn;
      await waitFor(() => peer.stats.rtpIn > before, { what: 'the hold silence to reach WhatsApp' });
      const held = await peer.rtpInRate(1500);
      expect(held, `packets/s while held: ${held}`).toBeGreaterThanOrEqual(40);
      expect(held).toBeLessThanOrEqual(60);

      // Resume: the silence stops before the PBX's audio starts, so WhatsApp gets one clean
      // stream (both at once interleave two streams and destroy the PBX's audio).
      await session.pbxSending(true);
      await sleep(200); // silence packets already in flight when the resume took effect land first
      expect(await peer.rtpInRate(500), 'packets/s after resume, PBX not yet sending').toBeLessThan(5);
      pbx.startMedia();
      await waitForTone(peer, 440, 'WhatsApp after resume');
      peer.clearReceived();
      const talking = await peer.rtpInRate(1500);
      expect(talking).toBeGreaterThanOrEqual(40);
      expect(talking).toBeLessThanOrEqual(60);
      const heard = peer.toneWindows(440);
      expect(heard.share, `WhatsApp hears the PBX's 440 Hz after resume ${JSON.stringify(heard)}`).toBeGreaterThanOrEqual(MIN_SHARE);
    } finally {
      await peer.close();
      await pbx.close();
      await session.close();
    }
  });

  it('an rtpengine that stops answering gives a MediaError, not a hang', async () => {
    const d2 = await startRtpengine({ ...randomMediaRange() });
    const e2 = await createRtpengineEngine({ ng: [d2.ng], timeoutMs: 300, logger: silentLogger() });
    await d2.stop();
    const peer = new WhatsAppMediaPeer();
    try {
      const s = e2.createSession('dead-later');
      const t0 = performance.now();
      const err = await s.offerFromWhatsApp(await peer.createOffer()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MediaError);
      expect((err as MediaError).reason).toBe('timeout');
      expect(performance.now() - t0).toBeLessThan(1500);
      await s.close(); // never throws
    } finally {
      await peer.close();
      await e2.close();
    }
  });
}, skip);
