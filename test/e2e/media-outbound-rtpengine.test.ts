/**
 * Outbound (business-initiated) media end to end through a real rtpengine: a plain RTP endpoint
 * (the PBX, PCMU) offers; rtpengine turns that into a WebRTC offer shaped like WhatsApp's own;
 * WhatsAppMediaPeer (werift, ICE-lite) answers it like WhatsApp, as DTLS client
 * (`a=setup:active`) or as DTLS server (`a=setup:passive`), since WhatsApp's choice is not
 * documented; the answer goes back through rtpengine to the endpoint; tones cross both ways.
 * Each role runs RUNS_PER_ROLE times, interleaved, so a role-dependent stall shows up.
 */
import { afterAll, expect, it } from 'vitest';
import OpusScript from 'opusscript';
import { parse } from 'sdp-transform';
import { checkWhatsAppOffer } from '../../src/media/sdp-rules.js';
import { WHATSAPP_OPUS_FMTP, WhatsAppMediaPeer, WhatsAppSdpError } from '../../src/simulator/webrtc-peer.js';
import { rtpengineForBlock } from '../support/engines.js';
import { describeWithPeers } from '../support/peers.js';
import { RtpEndpoint } from '../harness/rtp-endpoint.js';
import { expectTwoWayAudio } from '../support/audio.js';
import { sleep, waitFor } from '../support/wait.js';

const RUNS_PER_ROLE = Number(process.env.OUTBOUND_RUNS_PER_ROLE ?? 8);
const MIN_SHARE = 0.8;
type Setup = 'active' | 'passive';

describeWithPeers('outbound media through rtpengine (PBX offers, WhatsApp answers)', ['rtpengine'], () => {
  // Compile opusscript's WebAssembly once up front, so the first run's tone is not cut by it.
  const rtp = rtpengineForBlock({
    before: () => {
      const warm = new OpusScript(48000, 2, OpusScript.Application.VOIP);
      warm.decode(warm.encode(Buffer.alloc(960 * 4), 960));
      warm.delete();
    },
  });
  const times: Record<Setup, Array<{ iceMs: number; dtlsMs: number }>> = { active: [], passive: [] };

  afterAll(() => {
    const fmt = (xs: Array<{ iceMs: number; dtlsMs: number }>): string => {
      if (!xs.length) return 'none';
      const d = xs.map((t) => t.dtlsMs).sort((a, b) => a - b);
      return `${xs.map((t) => `${t.iceMs.toFixed(0)}/${t.dtlsMs.toFixed(0)}`).join(' ')} (ice/dtls ms; dtls median ${d[Math.floor(d.length / 2)]!.toFixed(0)}, max ${d[d.length - 1]!.toFixed(0)})`;
    };
    console.info(`[media-outbound] setup:active (WhatsApp DTLS client) ${times.active.length} runs: ${fmt(times.active)}`);
    console.info(`[media-outbound] setup:passive (WhatsApp DTLS server) ${times.passive.length} runs: ${fmt(times.passive)}`);
  });

  const runs: Array<{ n: number; setup: Setup }> = [];
  for (let n = 1; n <= RUNS_PER_ROLE; n++) for (const setup of ['active', 'passive'] as const) runs.push({ n, setup });

  for (const { n, setup } of runs) {
    it(`setup:${setup} run ${n}: WhatsApp-shaped offer, tones both ways, session released`, async () => {
      const pbx = await RtpEndpoint.create({ toneHz: 440 });
      const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
      const session = rtp.engine.createSession(`out-${setup}-${n}-${Date.now()}`);
      try {
        const waOffer = await session.offerFromPbx(pbx.createOffer());
        // What Meta requires of a business offer, and what WhatsApp's own offer looks like.
        expect(checkWhatsAppOffer(waOffer)).toEqual([]);
        const o = parse(waOffer);
        const om = o.media[0]!;
        expect(o.media).toHaveLength(1);
        expect(o.groups?.map((g) => `${g.type} ${g.mids}`)).toEqual([`BUNDLE ${om.mid}`]);
        expect(om.rtcpMux).toBe('rtcp-mux');
        expect(om.setup).toBe('actpass');
        expect(om.rtp.find((r) => r.payload === 111)).toMatchObject({ codec: 'opus', rate: 48000, encoding: 2 });
        expect(om.fmtp?.find((f) => f.payload === 111)?.config).toBe(WHATSAPP_OPUS_FMTP);
        expect(om.rtp.find((r) => r.payload === 126)).toMatchObject({ codec: 'telephone-event', rate: 8000 });
        expect(om.rtp.map((r) => r.codec)).not.toEqual(expect.arrayContaining(['PCMU']));
        expect(waOffer.match(/^a=fingerprint:/gm)).toHaveLength(1);
        expect(waOffer).toMatch(/^a=fingerprint:sha-256 /m);
        expect((om.candidates ?? []).length).toBeGreaterThan(0);
        expect(waOffer).not.toMatch(/^a=ice-lite/m);

        const waAnswer = await peer.createAnswer(waOffer, { setup });
        expect(waAnswer).toMatch(/^a=ice-lite\r?$/m);
        expect(parse(waAnswer).media[0]!.setup).toBe(setup);

        const plainAnswer = await session.answerFromWhatsApp(waAnswer);
        // A redelivered connect webhook gives the same PBX answer.
        expect(await session.answerFromWhatsApp(waAnswer)).toBe(plainAnswer);
        const pm = parse(plainAnswer).media[0]!;
        expect(pm.protocol).toBe('RTP/AVP');
        expect(pm.rtp.map((r) => r.codec)).toContain('PCMU');
        for (const attr of ['a=ssrc', 'a=mid', 'a=msid', 'a=candidate', 'a=fingerprint', 'a=ice-', 'a=group', 'a=setup', 'a=rtcp-fb']) {
          expect(plainAnswer, attr).not.toContain(attr);
        }
        pbx.applyAnswer(plainAnswer);

        const t = await peer.waitConnected(10_000);
        times[setup].push(t);
        expect(peer.iceRole).toBe('controlled');
        expect(peer.dtlsRole).toBe(setup === 'active' ? 'client' : 'server');

        await expectTwoWayAudio(pbx, peer, { pbxHears: 1000, peerHears: 440, minShare: MIN_SHARE });
      } finally {
        await peer.close();
        await pbx.close();
        await session.close();
      }
      expect(await rtp.engine.listSessions()).toEqual([]);
    });
  }

  for (const setup of ['active', 'passive'] as const) {
    it(`setup:${setup}: DTMF crosses both ways as RFC 4733 events (PBX 101/8000 <-> WhatsApp 126/8000)`, async () => {
      const pbx = await RtpEndpoint.create({ toneHz: 440 });
      const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
      const session = rtp.engine.createSession(`out-dtmf-${setup}-${Date.now()}`);
      try {
        const waOffer = await session.offerFromPbx(pbx.createOffer());
        expect(parse(waOffer).media[0]!.rtp.find((r) => r.payload === 126)).toMatchObject({ codec: 'telephone-event', rate: 8000 });
        const waAnswer = await peer.createAnswer(waOffer, { setup });
        const plainAnswer = await session.answerFromWhatsApp(waAnswer);
        // The PBX's answer now carries telephone-event (it did not before the relabelling).
        const te = parse(plainAnswer).media[0]!.rtp.find((r) => r.codec.toLowerCase() === 'telephone-event');
        expect(te, `plain answer: ${plainAnswer}`).toMatchObject({ payload: 101, rate: 8000 });
        pbx.applyAnswer(plainAnswer);
        await peer.waitConnected(10_000);
        pbx.startMedia();
        peer.startMedia();
        await waitFor(() => pbx.audioIn > 0 && peer.stats.rtpIn > 0, { what: 'media both ways' });

        await peer.sendDtmf(3);
        await sleep(100); // the gap between two key presses
        await peer.sendDtmf(7);
        const ev = pbx.teEvents;
        await waitFor(() => ev.some((e) => e.end && e.event === 7), { what: 'the end of digit 7 at the PBX' });
        expect(ev.length, 'events reach the PBX').toBeGreaterThan(0);
        expect(ev.every((e) => e.pt === 101)).toBe(true);
        expect([...new Set(ev.map((e) => e.event))]).toEqual([3, 7]);
        expect(ev.filter((e) => e.end).map((e) => e.event)).toEqual(expect.arrayContaining([3, 7]));

        await pbx.sendDtmf(4);
        await sleep(100); // the gap between two key presses
        await pbx.sendDtmf(2);
        const back = peer.dtmfEvents();
        await waitFor(() => back.some((e) => e.end && e.event === 2), { what: 'the end of digit 2 at WhatsApp' });
        expect(back.length, 'events reach WhatsApp on PT 126').toBeGreaterThan(0);
        expect([...new Set(back.map((e) => e.event))]).toEqual([4, 2]);
        expect(back.filter((e) => e.end).map((e) => e.event)).toEqual(expect.arrayContaining([4, 2]));
      } finally {
        await peer.close();
        await pbx.close();
        await session.close();
      }
      expect(await rtp.engine.listSessions()).toEqual([]);
    });
  }

  it('hold: pbxSending(false) plays silence to WhatsApp (the answerer\'s leg), resume stops it', async () => {
    const pbx = await RtpEndpoint.create({ toneHz: 440 });
    const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
    const session = rtp.engine.createSession(`out-hold-${Date.now()}`);
    try {
      const waAnswer = await peer.createAnswer(await session.offerFromPbx(pbx.createOffer()), { setup: 'active' });
      pbx.applyAnswer(await session.answerFromWhatsApp(waAnswer));
      await peer.waitConnected(10_000);
      peer.startMedia();
      expect(await peer.rtpInRate(800), 'silent PBX').toBe(0);
      await session.pbxSending(false);
      const before = peer.stats.rtpIn;
      await waitFor(() => peer.stats.rtpIn > before, { what: 'the hold silence to reach WhatsApp' });
      const held = await peer.rtpInRate(1500);
      expect(held, `packets/s to WhatsApp while held: ${held}`).toBeGreaterThanOrEqual(40);
      expect(held).toBeLessThanOrEqual(60);
      await session.pbxSending(true);
      await sleep(200); // silence packets already in flight when the resume took effect land first
      expect(await peer.rtpInRate(600), 'after resume').toBeLessThan(5);
    } finally {
      await peer.close();
      await pbx.close();
      await session.close();
    }
    expect(await rtp.engine.listSessions()).toEqual([]);
  });

  it('the peer rejects an offer that breaks Meta rules like Graph does (100 / 2494010)', async () => {
    const pbx = await RtpEndpoint.create();
    const peer = new WhatsAppMediaPeer();
    const session = rtp.engine.createSession(`out-bad-${Date.now()}`);
    try {
      const good = await session.offerFromPbx(pbx.createOffer());
      const bad = good.replace(/^a=setup:actpass/m, 'a=setup:active');
      const err = await peer.createAnswer(bad, { setup: 'active' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WhatsAppSdpError);
      expect(err).toMatchObject({ code: 100, error_subcode: 2494010 });
    } finally {
      await peer.close();
      await pbx.close();
      await session.close();
    }
  });
});
