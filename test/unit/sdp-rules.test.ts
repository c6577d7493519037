import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'sdp-transform';
import { checkWhatsAppAnswer } from '../../src/media/sdp-rules.js';
import { cleanPlainOffer, finishWhatsAppAnswer, iceLiteIntoMedia, keepOnlySha256Fingerprint } from '../../src/media/rtpengine/index.js';

const FP256 = 'a=fingerprint:sha-256 21:6E:2A:E6:1D:27:E3:90:F6:44:E6:53:59:47:16:CC:BB:75:B8:8D:72:46:21:2A:84:68:E0:12:84:C5:8F:1B';
const FP384 =
  'a=fingerprint:sha-384 0B:5B:28:FF:73:7D:6F:B6:45:71:F3:38:3E:71:74:88:10:86:7C:F8:76:5D:F4:86:01:1C:04:55:B3:1C:C2:01:0B:5B:28:FF:73:7D:6F:B6:45:71:F3:38:3E:71:74:88';

function answer(over: { fingerprint?: string[]; setup?: string; iceLite?: boolean; candidates?: boolean; opusPt?: number } = {}): string {
  const pt = over.opusPt ?? 111;
  return [
    'v=0',
    'o=- 1 1 IN IP4 127.0.0.1',
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    'a=group:BUNDLE audio',
    ...(over.iceLite ? ['a=ice-lite'] : []),
    `m=audio 31021 UDP/TLS/RTP/SAVPF ${pt} 126`,
    'a=mid:audio',
    `a=rtpmap:${pt} opus/48000/2`,
    `a=fmtp:${pt} maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1`,
    'a=rtpmap:126 telephone-event/8000',
    'a=sendrecv',
    'a=rtcp:31021 IN IP4 127.0.0.1',
    'a=rtcp-mux',
    `a=setup:${over.setup ?? 'active'}`,
    ...(over.fingerprint ?? [FP256]),
    'a=ptime:20',
    'a=ice-ufrag:6rOqBjfu',
    'a=ice-pwd:PAFcll5cp0PKPGvre3L7R41c21',
    ...(over.candidates === false ? [] : ['a=candidate:TG1Nx5k78uJXjtYT 1 UDP 2130706431 127.0.0.1 31021 typ host']),
    '',
  ].join('\r\n');
}

describe('checkWhatsAppAnswer', () => {
  it('accepts a good answer', () => {
    expect(checkWhatsAppAnswer(answer())).toEqual([]);
  });
  it('rejects a sha-384 fingerprint, alone or next to sha-256', () => {
    expect(checkWhatsAppAnswer(answer({ fingerprint: [FP384] })).join()).toContain('Fingerprint algo is not SHA256');
    expect(checkWhatsAppAnswer(answer({ fingerprint: [FP256, FP384] })).join()).toMatch(/only one sha-256/);
    expect(checkWhatsAppAnswer(answer({ fingerprint: [FP384, FP256] })).join()).toMatch(/only one sha-256/);
  });
  it('rejects a=ice-lite', () => {
    expect(checkWhatsAppAnswer(answer({ iceLite: true })).join()).toContain('ice-lite');
  });
  it('rejects setup:passive and setup:actpass', () => {
    expect(checkWhatsAppAnswer(answer({ setup: 'passive' })).join()).toContain('a=setup:active');
    expect(checkWhatsAppAnswer(answer({ setup: 'actpass' })).join()).toContain('a=setup:active');
  });
  it('rejects an answer without candidates', () => {
    expect(checkWhatsAppAnswer(answer({ candidates: false })).join()).toContain('candidate');
  });
  it('rejects Opus on another PT and a missing fingerprint', () => {
    expect(checkWhatsAppAnswer(answer({ opusPt: 96 })).join()).toContain('expected 111');
    expect(checkWhatsAppAnswer(answer({ fingerprint: [] })).join()).toContain('no a=fingerprint');
  });
});

describe('rtpengine SDP post-processing', () => {
  const offer = readFileSync(new URL('../fixtures/whatsapp/offer-user-initiated.sdp', import.meta.url), 'utf8');

  it("copies WhatsApp's session-level a=ice-lite into the media section (rtpengine 10.5 reads it there)", () => {
    const s = parse(iceLiteIntoMedia(offer)) as unknown as { media: Array<Record<string, unknown>> };
    expect(s.media[0]!['icelite']).toBe('ice-lite');
  });

  it('strips WebRTC leftovers from the plain offer', () => {
    const plain = [
      'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0',
      'a=msid-semantic: WMS x', 'a=extmap-allow-mixed',
      'm=audio 31000 RTP/AVP 0 8 9 126', 'c=IN IP4 127.0.0.1',
      'a=msid:a b', 'a=ssrc:1 cname:x', 'a=mid:audio', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000',
      'a=rtpmap:9 G722/8000', 'a=rtpmap:126 telephone-event/8000', 'a=rtcp-fb:0 nack', 'a=end-of-candidates',
      'a=sendrecv', 'a=rtcp:31001', 'a=ptime:20', '',
    ].join('\r\n');
    const out = cleanPlainOffer(plain);
    for (const a of ['msid', 'ssrc', 'mid', 'extmap-allow-mixed', 'rtcp-fb', 'end-of-candidates']) {
      expect(out).not.toContain(`a=${a}`);
    }
    expect(out).toContain('a=rtpmap:126 telephone-event/8000');
    expect(out).toContain('a=rtcp:31001');
  });

  it('keeps only the sha-256 fingerprint', () => {
    const two = answer({ fingerprint: [FP384, FP256] });
    expect(checkWhatsAppAnswer(keepOnlySha256Fingerprint(two))).toEqual([]);
  });

  it('adds the offered telephone-event and BUNDLE back to the answer', () => {
    const rtpengineAnswer = answer()
      .replace('a=group:BUNDLE audio\r\n', '')
      .replace(' 111 126', ' 111')
      .replace('a=rtpmap:126 telephone-event/8000\r\n', '');
    const pbx = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 126\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n';
    const out = parse(finishWhatsAppAnswer(rtpengineAnswer, offer, pbx));
    expect(out.groups).toEqual([{ type: 'BUNDLE', mids: 'audio' }]);
    expect(out.media[0]!.rtp.find((r) => r.payload === 126)?.codec).toBe('telephone-event');
    expect(out.media[0]!.payloads).toBe('111 126');
  });
});
