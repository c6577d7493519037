/**
 * rtpengine ng flag sets, one named constant per step of the offer/answer exchange. Verified
 * against rtpengine 10.5 (Debian 12) in test/e2e/media-rtpengine.test.ts. What 10.5 cannot be
 * told is done on its output in ./sdp-post.ts. Why DTMF is relabelled (telephone-event /8000 <->
 * /48000) and why keep-alive is a hold-driven `play media`: the Media section of
 * docs/architecture.md.
 */
import { WHATSAPP_OPUS_CHANNELS, WHATSAPP_OPUS_FMTP, WHATSAPP_OPUS_RATE } from '../whatsapp-profile.js';

/** The subset of ng offer/answer options this project uses, typed. */
export interface NgMediaFlags {
  'transport-protocol'?: 'RTP/AVP' | 'RTP/AVPF' | 'RTP/SAVP' | 'RTP/SAVPF' | 'UDP/TLS/RTP/SAVP' | 'UDP/TLS/RTP/SAVPF';
  ICE?: 'remove' | 'force' | 'default' | 'force-relay' | 'optional';
  'ICE-lite'?: 'forward' | 'backward' | 'offer' | 'answer' | 'off';
  DTLS?: 'off' | 'passive' | 'active';
  'DTLS-fingerprint'?: 'sha-256' | 'sha-1' | 'sha-224' | 'sha-384' | 'sha-512';
  SDES?: string[];
  'rtcp-mux'?: Array<'offer' | 'require' | 'demux' | 'accept' | 'reject'>;
  codec?: { mask?: string[]; transcode?: string[]; strip?: string[]; offer?: string[]; accept?: string[] };
  replace?: Array<'origin' | 'origin-full' | 'sdp-version' | 'session-name' | 'username' | 'zero-address'>;
  flags?: string[];
  /** How rtpengine learns a peer's real address from its first packets (see SOURCE_RULES). */
  'endpoint-learning'?: 'off' | 'immediate' | 'delayed' | 'heuristic';
}

/**
 * Media that only listens to its peer (issue 8), on every offer and answer: `strict source`
 * keeps checking each packet's source after rtpengine's learning phase and drops (does not
 * forward) a mismatch; `endpoint-learning: heuristic` makes the learning phase prefer a source
 * that is exactly the SDP's address, then one on its IP, then any, so a third party sending
 * during the first seconds does not win over the PBX. `media handover` (re-latch to any new
 * source at any time) is never sent.
 */
export const SOURCE_RULES = {
  'endpoint-learning': 'heuristic',
  flags: ['strict-source'],
} as const satisfies NgMediaFlags;


/**
 * Inbound call, `offer`: WhatsApp's WebRTC offer (ICE-lite, DTLS-SRTP, Opus) becomes a plain
 * RTP/AVP offer for the PBX with PCMU, PCMA and G.722 (transcoded from/to Opus) and the
 * offered telephone-event kept for DTMF. ICE and DTLS end at rtpengine.
 */
export const WHATSAPP_OFFER_TO_PBX = {
  'transport-protocol': 'RTP/AVP',
  ICE: 'remove',
  DTLS: 'off',
  SDES: ['off'],
  'rtcp-mux': ['demux'],
  codec: { mask: ['opus'], transcode: ['PCMU', 'PCMA', 'G722'] },
  replace: ['origin'],
  'endpoint-learning': SOURCE_RULES['endpoint-learning'],
  flags: ['strip-extmap', ...SOURCE_RULES.flags],
} as const satisfies NgMediaFlags;

/**
 * Inbound call, `answer`: the PBX's plain answer becomes the WebRTC answer for WhatsApp.
 * rtpengine answers WhatsApp's `a=setup:actpass` with `a=setup:active` (it is the DTLS client),
 * full ICE (controlling toward the ICE-lite peer) with its candidates, rtcp-mux, Opus on the
 * offered PT 111 with the offered fmtp. `full-rtcp-attribute` writes `a=rtcp:PORT IN IP4 ADDR`
 * (werift and some WebRTC stacks reject a bare `a=rtcp:PORT`). A single sha-256 fingerprint is
 * asked for explicitly.
 */
export const PBX_ANSWER_TO_WHATSAPP = {
  'DTLS-fingerprint': 'sha-256',
  replace: ['origin'],
  'endpoint-learning': SOURCE_RULES['endpoint-learning'],
  flags: ['full-rtcp-attribute', ...SOURCE_RULES.flags],
} as const satisfies NgMediaFlags;

export { WHATSAPP_OPUS_FMTP } from '../whatsapp-profile.js';

/**
 * rtpengine's codec specification `name/clock/channels/bitrate/ptime/fmtp`: Opus stereo-signalled
 * as WhatsApp does, encoded at 20 kbit/s in 20 ms frames, with Meta's fmtp written by rtpengine
 * itself into the offer (verified on 10.5: `a=fmtp:<pt> maxaveragebitrate=20000;...`).
 */
export const WHATSAPP_OPUS_CODEC_SPEC = `opus/${WHATSAPP_OPUS_RATE}/${WHATSAPP_OPUS_CHANNELS}/20000/20/${WHATSAPP_OPUS_FMTP}`;

/**
 * Outbound call, `offer`: a PBX's plain RTP offer becomes a WebRTC offer for WhatsApp's
 * `connect`: DTLS-SRTP (`a=setup:actpass`, one sha-256 fingerprint), full ICE with rtpengine's
 * candidates, rtcp-mux, a=mid, Opus transcoded from the PBX's codecs (which are masked: accepted
 * toward the PBX, not offered to WhatsApp).
 *
 * What 10.5 cannot be told and ./sdp-post.ts (`finishWhatsAppOffer`) does afterwards: it has no
 * `sdp-attr` (and writes no `a=group:BUNDLE` for one m-line); its codec specs carry no PT, so
 * Opus lands on the first free dynamic PT (96), renamed to 111 in the offer only (rtpengine then
 * adopts WhatsApp's 111 from the answer, for both directions); it pairs Opus with
 * telephone-event/48000 (a transcode of `telephone-event/8000` is ignored), announced as 126/8000,
 * and WhatsApp's answer is relabelled 126/48000 before rtpengine reads it (see the top comment).
 * `DTLS: passive` is not sent: rtpengine offers actpass either way and the answerer picks the
 * role (both roles are tested in test/e2e/media-outbound-rtpengine.test.ts).
 */
export const PBX_OFFER_TO_WHATSAPP = {
  'transport-protocol': 'UDP/TLS/RTP/SAVPF',
  ICE: 'force',
  'DTLS-fingerprint': 'sha-256',
  SDES: ['off'],
  'rtcp-mux': ['require'],
  codec: { transcode: [WHATSAPP_OPUS_CODEC_SPEC], mask: ['PCMU', 'PCMA', 'G722'] },
  replace: ['origin'],
  'endpoint-learning': SOURCE_RULES['endpoint-learning'],
  flags: ['generate-mid', 'full-rtcp-attribute', ...SOURCE_RULES.flags],
} as const satisfies NgMediaFlags;

/** Outbound call, `answer`: WhatsApp's answer in, the plain answer for the PBX's 200 OK out. */
export const WHATSAPP_ANSWER_TO_PBX = {
  replace: ['origin'],
  ...SOURCE_RULES,
} as const satisfies NgMediaFlags;

/** `delete`: drop the call at once instead of keeping it queryable (default delete-delay 30 s). */
export const DELETE_NOW = { 'delete-delay': 0 } as const;

/** Attributes removed from the plain SDP for the PBX (WebRTC leftovers rtpengine passes through). */
export const PBX_STRIP_SESSION_ATTRS = ['msid-semantic', 'extmap-allow-mixed', 'group', 'ice-lite', 'ice-options'] as const;
export const PBX_STRIP_MEDIA_ATTRS = [
  'end-of-candidates',
  'ssrc',
  'ssrc-group',
  'mid',
  'msid',
  'extmap-allow-mixed',
  'rtcp-fb',
  'rtcp-rsize',
  'ice-options',
] as const;
