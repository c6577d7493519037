import { describe, expect, it } from 'vitest';
import { parse } from 'sdp-transform';
import { WhatsAppMediaPeer, WhatsAppSdpError } from '../../src/simulator/webrtc-peer.js';

describe('WhatsAppMediaPeer', () => {
  it("offers like WhatsApp: ice-lite, actpass, BUNDLE, Opus 111 with Meta's fmtp, te 126, one sha-256, loopback host candidates", async () => {
    const peer = new WhatsAppMediaPeer();
    try {
      const sdp = await peer.createOffer();
      const s = parse(sdp) as ReturnType<typeof parse> & { icelite?: string };
      expect(s.icelite).toBe('ice-lite');
      expect(s.groups?.[0]?.type).toBe('BUNDLE');
      const m = s.media[0]!;
      expect(s.media).toHaveLength(1);
      expect(m.protocol).toBe('UDP/TLS/RTP/SAVPF');
      expect(m.setup).toBe('actpass');
      expect(m.rtcpMux).toBe('rtcp-mux');
      expect(m.rtp).toEqual([
        { payload: 111, codec: 'opus', rate: 48000, encoding: 2 },
        { payload: 126, codec: 'telephone-event', rate: 8000 },
      ]);
      expect(m.fmtp.find((f) => f.payload === 111)?.config).toBe(
        'maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1',
      );
      expect(sdp.split('\r\n').filter((l) => l.startsWith('a=fingerprint:'))).toHaveLength(1);
      expect(m.fingerprint?.type).toBe('sha-256');
      expect(m.candidates?.length).toBeGreaterThan(0);
      expect(m.candidates!.every((c) => c.ip === '127.0.0.1' && c.type === 'host' && c.transport === 'udp')).toBe(true);
      expect(m.port).toBe(m.candidates![0]!.port);
    } finally {
      await peer.close();
    }
  });

  it('rejects an answer with a sha-384 fingerprint like Meta (code 100, subcode 2494010)', async () => {
    const peer = new WhatsAppMediaPeer();
    try {
      const offer = await peer.createOffer();
      // A "business answer" that is the offer mirrored with the wrong fingerprint algorithm.
      const bad = offer
        .replace('a=ice-lite\r\n', '')
        .replace('a=setup:actpass', 'a=setup:active')
        .replace('a=fingerprint:sha-256', 'a=fingerprint:sha-384');
      const err = await peer.applyAnswer(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WhatsAppSdpError);
      expect((err as WhatsAppSdpError).code).toBe(100);
      expect((err as WhatsAppSdpError).error_subcode).toBe(2494010);
      expect((err as WhatsAppSdpError).message).toBe('Fingerprint algo is not SHA256');
    } finally {
      await peer.close();
    }
  });
});
