import { describe, expect, it } from 'vitest';
import { parse } from 'sdp-transform';
import { checkWhatsAppOffer } from '../../src/media/sdp-rules.js';
import { finishWhatsAppOffer, WHATSAPP_OPUS_FMTP } from '../../src/media/rtpengine/index.js';

const FP256 = 'a=fingerprint:sha-256 21:6E:2A:E6:1D:27:E3:90:F6:44:E6:53:59:47:16:CC:BB:75:B8:8D:72:46:21:2A:84:68:E0:12:84:C5:8F:1B';
const FP384 =
  'a=fingerprint:sha-384 0B:5B:28:FF:73:7D:6F:B6:45:71:F3:38:3E:71:74:88:10:86:7C:F8:76:5D:F4:86:01:1C:04:55:B3:1C:C2:01:0B:5B:28:FF:73:7D:6F:B6:45:71:F3:38:3E:71:74:88';

interface OfferOver {
  fingerprint?: string[];
  setup?: string;
  iceLite?: boolean;
  candidates?: boolean;
  opusPt?: number;
  tePt?: string;
  bundle?: boolean;
  rtcpMux?: boolean;
  video?: boolean;
  protocol?: string;
}

/** A business offer shaped like what Meta expects (and what the rtpengine engine produces). */
function offer(o: OfferOver = {}): string {
  const pt = o.opusPt ?? 111;
  return [
    'v=0',
    'o=- 1 1 IN IP4 127.0.0.1',
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    ...(o.bundle === false ? [] : ['a=group:BUNDLE 1']),
    ...(o.iceLite ? ['a=ice-lite'] : []),
    `m=audio 31021 ${o.protocol ?? 'UDP/TLS/RTP/SAVPF'} ${pt} 126`,
    'a=mid:1',
    `a=rtpmap:${pt} opus/48000/2`,
    `a=fmtp:${pt} ${WHATSAPP_OPUS_FMTP}`,
    `a=rtpmap:126 ${o.tePt ?? 'telephone-event/8000'}`,
    'a=sendrecv',
    ...(o.rtcpMux === false ? [] : ['a=rtcp-mux']),
    `a=setup:${o.setup ?? 'actpass'}`,
    ...(o.fingerprint ?? [FP256]),
    'a=ice-ufrag:abcd',
    'a=ice-pwd:0123456789abcdef0123456789',
    ...(o.candidates === false ? [] : ['a=candidate:1 1 UDP 2130706431 127.0.0.1 31021 typ host']),
    ...(o.video ? ['m=video 9 UDP/TLS/RTP/SAVPF 96', 'a=rtpmap:96 VP8/90000', 'a=mid:2'] : []),
    '',
  ].join('\r\n');
}

describe('checkWhatsAppOffer (Meta rules for a business connect offer)', () => {
  it('accepts a WhatsApp-shaped offer', () => {
    expect(checkWhatsAppOffer(offer())).toEqual([]);
  });

  it.each<[string, OfferOver, RegExp]>([
    ['a sha-384 fingerprint', { fingerprint: [FP384] }, /Fingerprint algo is not SHA256/],
    ['two fingerprints', { fingerprint: [FP256, FP384] }, /only one sha-256 line/],
    ['no fingerprint', { fingerprint: [] }, /no a=fingerprint/],
    ['setup:active (the offer must leave the role to WhatsApp)', { setup: 'active' }, /must be a=setup:actpass/],
    ['setup:passive', { setup: 'passive' }, /must be a=setup:actpass/],
    ['ICE-lite (WhatsApp is lite: the business must be full ICE)', { iceLite: true }, /a=ice-lite present/],
    ['no candidates (trickle)', { candidates: false }, /no UDP a=candidate/],
    ['Opus on another PT', { opusPt: 96 }, /Opus on PT 96, expected 111/],
    ['telephone-event at 48000 Hz', { tePt: 'telephone-event/48000' }, /expected 126\/8000/],
    ['no BUNDLE group', { bundle: false }, /BUNDLE missing/],
    ['no rtcp-mux', { rtcpMux: false }, /rtcp-mux missing/],
    ['a video m-line', { video: true }, /non-audio m-lines/],
    ['plain RTP', { protocol: 'RTP/AVP' }, /expected UDP\/TLS\/RTP\/SAVPF/],
  ])('rejects %s', (_name, over, re) => {
    const v = checkWhatsAppOffer(offer(over));
    expect(v.join('; ')).toMatch(re);
  });

  it('rejects unparsable or empty SDP', () => {
    expect(checkWhatsAppOffer('')).not.toEqual([]);
    expect(checkWhatsAppOffer('v=0\r\n')).toEqual(['no m-line']);
  });
});

describe('finishWhatsAppOffer (rtpengine offer to WhatsApp shape)', () => {
  // What rtpengine 10.5 answers to PBX_OFFER_TO_WHATSAPP (captured on loopback).
  const rtpengineOffer = [
    'v=0',
    'o=- 1 1 IN IP4 127.0.0.1',
    's=pbx',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    'm=audio 27000 UDP/TLS/RTP/SAVPF 96 97',
    'a=mid:1',
    'a=rtpmap:96 opus/48000/2',
    `a=fmtp:96 ${WHATSAPP_OPUS_FMTP}`,
    'a=rtpmap:97 telephone-event/48000',
    'a=fmtp:97 0-15',
    'a=sendrecv',
    'a=rtcp:27000 IN IP4 127.0.0.1',
    'a=rtcp-mux',
    'a=setup:actpass',
    FP256,
    FP384,
    'a=ptime:20',
    'a=ice-ufrag:dKaSTGfk',
    'a=ice-pwd:j6KExRoR9GBWyA1zf4FkqH6O6D',
    'a=candidate:eyBzziEW8BBilCoH 1 UDP 2130706431 127.0.0.1 27000 typ host',
    'a=end-of-candidates',
    '',
  ].join('\r\n');

  it('adds BUNDLE, moves Opus to 111 and telephone-event to 126/8000, keeps one sha-256 fingerprint', () => {
    expect(checkWhatsAppOffer(rtpengineOffer)).not.toEqual([]);
    const out = finishWhatsAppOffer(rtpengineOffer);
    expect(checkWhatsAppOffer(out)).toEqual([]);
    const s = parse(out);
    const m = s.media[0]!;
    expect(s.groups).toEqual([{ type: 'BUNDLE', mids: 1 }]);
    expect(m.payloads).toBe('111 126');
    expect(m.rtp).toEqual([
      { payload: 111, codec: 'opus', rate: 48000, encoding: 2 },
      { payload: 126, codec: 'telephone-event', rate: 8000 },
    ]);
    expect(m.fmtp).toEqual([
      { payload: 111, config: WHATSAPP_OPUS_FMTP },
      { payload: 126, config: '0-15' },
    ]);
    expect(out.match(/^a=fingerprint:/gm)).toEqual(['a=fingerprint:']);
    expect(out).not.toContain('a=rtcp:');
    expect(out).not.toContain('end-of-candidates');
    expect(m.candidates).toHaveLength(1);
  });

  it('copes with rtpengine putting telephone-event on 111', () => {
    const swapped = rtpengineOffer
      .replace('96 97', '97 111')
      .replace(/a=rtpmap:96 opus/, 'a=rtpmap:97 opus')
      .replace(/a=fmtp:96 /, 'a=fmtp:97 ')
      .replace('a=rtpmap:97 telephone-event/48000', 'a=rtpmap:111 telephone-event/48000')
      .replace('a=fmtp:97 0-15', 'a=fmtp:111 0-15');
    const m = parse(finishWhatsAppOffer(swapped)).media[0]!;
    expect(m.rtp.find((r) => r.payload === 111)?.codec).toBe('opus');
    expect(m.rtp.find((r) => r.payload === 126)?.codec).toBe('telephone-event');
    expect(m.fmtp?.find((f) => f.payload === 111)?.config).toBe(WHATSAPP_OPUS_FMTP);
  });
});
