/**
 * Both engines' click-to-call direction, media only: a WhatsApp-shaped offer made before
 * any PBX is involved, WhatsApp's answer (the simulator's werift peer) in and a plain offer for
 * the extension out, WhatsApp's leg kept alive with silence while the extension rings, then the
 * extension's answer (a plain RTP endpoint) and audio both ways. Misuse is a clear MediaError.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'sdp-transform';
import type { EmbeddedEngine } from '../../src/media/embedded/index.js';
import { MediaError, type MediaEngine, type MediaMilestone } from '../../src/media/types.js';
import { checkWhatsAppOffer } from '../../src/media/whatsapp-profile.js';
import { WHATSAPP_OPUS_FMTP, WhatsAppMediaPeer } from '../../src/simulator/webrtc-peer.js';
import { RtpEndpoint } from '../harness/rtp-endpoint.js';
import { exchangeTones } from '../support/audio.js';
import { loopbackEmbeddedEngine } from '../support/embedded.js';
import { rtpengineForBlock } from '../support/engines.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

/** Share of 100 ms windows with the expected tone, extension/WhatsApp user, per call; printed at the end. */
const shares: string[] = [];

afterAll(() => {
  if (shares.length) console.info(`[media-click-to-call] tone share extension/user: ${shares.join(' ')}`);
});

describe('embedded engine: click-to-call media (offer to WhatsApp first, then to the extension)', () => {
  let engine: EmbeddedEngine;
  beforeAll(async () => {
    engine = await loopbackEmbeddedEngine();
  });
  afterAll(async () => {
    await engine?.close();
  });
  clickMediaTests(() => engine);
});

describeWithPeers('rtpengine: click-to-call media (placeholder offer, then a re-offer with the extension answer)', ['rtpengine'], () => {
  const rtp = rtpengineForBlock();
  clickMediaTests(() => rtp.engine);
});

function clickMediaTests(engineOf: () => MediaEngine): void {
  for (const [codec, setup] of [['PCMU', 'active'], ['G722', 'passive'], ['PCMA', 'active']] as const) {
    it(`${codec}, WhatsApp DTLS ${setup}: WhatsApp-shaped offer, silence while ringing, tones both ways`, async () => {
      const engine = engineOf();
      const session = engine.createSession(`c2c-${codec}-${Date.now()}`);
      const milestones: string[] = [];
      session.onMilestone?.((m: MediaMilestone) => milestones.push(m.label));
      const peer = new WhatsAppMediaPeer({ toneHz: 1000 });
      const pbx = await RtpEndpoint.create({ toneHz: 440, codec });
      try {
        const waOffer = await session.offerToWhatsApp();
        expect(checkWhatsAppOffer(waOffer)).toEqual([]);
        const om = parse(waOffer).media[0]!;
        expect(om.setup).toBe('actpass');
        expect(om.rtp.find((r) => r.payload === 111)).toMatchObject({ codec: 'opus', rate: 48000 });
        expect(om.fmtp?.find((f) => f.payload === 111)?.config).toBe(WHATSAPP_OPUS_FMTP);
        expect(om.rtp.find((r) => r.payload === 126)).toMatchObject({ codec: 'telephone-event', rate: 8000 });

        const waAnswer = await peer.createAnswer(waOffer, { setup });
        const plainOffer = await session.answerFromWhatsApp(waAnswer);
        // A redelivered connect webhook gives the same offer.
        expect(await session.answerFromWhatsApp(waAnswer)).toBe(plainOffer);
        const pm = parse(plainOffer).media[0]!;
        expect(pm.protocol).toBe('RTP/AVP');
        expect(pm.rtp.map((r) => r.codec.toUpperCase())).toEqual(expect.arrayContaining(['PCMU', 'PCMA', 'G722', 'TELEPHONE-EVENT']));
        expect(plainOffer).not.toMatch(/a=(ice-ufrag|fingerprint|setup|candidate)/);

        // WhatsApp's leg is up and fed silence while the extension rings.
        await peer.waitConnected(10_000);
        peer.startMedia();
        await waitFor(() => peer.stats.rtpIn > 0, { what: 'silence toward WhatsApp while the extension rings' });
        if (engine.name === 'embedded') expect(milestones).toContain('keep-alive fill on');

        await session.answerFromPbxToOffer(pbx.answer(plainOffer));
        pbx.startMedia();
        const { atPbx, atPeer } = await exchangeTones(pbx, peer, { pbxHears: 1000, peerHears: 440 });
        shares.push(`${engine.name}/${codec}:${atPbx.share.toFixed(2)}/${atPeer.share.toFixed(2)}`);
        expect(atPbx.share, `the extension hears the WhatsApp user ${JSON.stringify(atPbx)}`).toBeGreaterThanOrEqual(0.8);
        expect(atPeer.share, `the WhatsApp user hears the extension ${JSON.stringify(atPeer)}`).toBeGreaterThanOrEqual(0.8);
        if (engine.name === 'embedded') expect(session.mediaStats?.().pbx.codec).toBe(codec);
      } finally {
        await peer.close();
        await pbx.close();
        await session.close();
      }
      await waitFor(async () => (await engine.listSessions()).length === 0, { what: 'the session released' });
    });
  }

  it('refuses the click-to-call steps out of order, or on a session of another direction', async () => {
    const engine = engineOf();
    const a = engine.createSession(`c2c-order-${Date.now()}`);
    await expect(a.answerFromPbxToOffer('v=0\r\n')).rejects.toBeInstanceOf(MediaError);
    await a.offerToWhatsApp();
    await expect(a.answerFromPbxToOffer('v=0\r\n')).rejects.toThrow(/before answerFromWhatsApp/);
    await expect(a.offerFromPbx('v=0\r\n')).rejects.toBeInstanceOf(MediaError);
    await a.close();
    const b = engine.createSession(`c2c-inbound-${Date.now()}`);
    const pbx = await RtpEndpoint.create();
    await expect(b.offerFromPbx(pbx.createOffer())).resolves.toContain('UDP/TLS/RTP/SAVPF');
    await expect(b.offerToWhatsApp()).rejects.toThrow(/already used \(outbound\)/);
    await b.close();
    await pbx.close();
  });
}
