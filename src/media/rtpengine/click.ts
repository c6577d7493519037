/**
 * Click to call on rtpengine (the bridge calls a WhatsApp user first, then an extension), as
 * verified on rtpengine 10.5 (test/e2e/media-click-to-call.test.ts):
 *
 * 1. ng `offer` from the PBX leg (from-tag) with a placeholder plain offer (PCMU, PCMA, G.722,
 *    telephone-event; the address 127.0.0.1:9, discard, as nobody is there yet) and the outbound
 *    flags: rtpengine's WebRTC offer for `connect`, finished as for an outbound call.
 * 2. ng `answer` with WhatsApp's answer: rtpengine answers the placeholder with one codec on its
 *    PBX-side port; the offer for the extension is that address and port with every codec of the
 *    placeholder (`offerForExtension`).
 * 3. The extension's answer goes back as a re-`offer` from the PBX leg (rtpengine keeps its ICE
 *    credentials and DTLS fingerprint toward WhatsApp; checked by `sameWhatsAppLeg`), then the
 *    same WhatsApp answer as ng `answer`: rtpengine transcodes Opus to the extension's codec.
 */
import { parse, write } from 'sdp-transform';
import { cleanPlainOffer } from './sdp-post.js';

const PLACEHOLDER = [
  'v=0',
  'o=- 1 1 IN IP4 127.0.0.1',
  's=wa-sip-bridge',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 9 RTP/AVP 0 8 9 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:9 G722/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=ptime:20',
  'a=sendrecv',
  '',
].join('\r\n');

/** The plain offer standing in for the extension until it answers. */
export function placeholderPbxOffer(): string {
  return PLACEHOLDER;
}

/** The plain offer for the extension: rtpengine's PBX-side address and port, the placeholder's codecs. */
export function offerForExtension(rtpengineAnswer: string): string {
  const s = parse(cleanPlainOffer(rtpengineAnswer));
  const m = s.media.find((x) => x.type === 'audio');
  const p = parse(PLACEHOLDER).media[0]!;
  if (!m) throw new Error('rtpengine answer has no audio m-line');
  m.rtp = p.rtp;
  m.fmtp = p.fmtp;
  m.payloads = p.payloads;
  return write(s);
}

/** Whether two WebRTC offers from rtpengine keep the same ICE credentials and DTLS fingerprint. */
export function sameWhatsAppLeg(a: string, b: string): boolean {
  const key = (sdp: string) => {
    const s = parse(sdp);
    const m = s.media[0];
    return JSON.stringify([m?.iceUfrag ?? s.iceUfrag, m?.icePwd ?? s.icePwd, (m?.fingerprint ?? s.fingerprint)?.hash]);
  };
  return key(a) === key(b);
}
