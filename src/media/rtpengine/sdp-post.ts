/**
 * What rtpengine 10.5's options cannot do, done on its output with sdp-transform.
 */
import { parse, write, type MediaAttributes, type SessionDescription } from 'sdp-transform';
import { PBX_STRIP_MEDIA_ATTRS, PBX_STRIP_SESSION_ATTRS } from './flags.js';
import { checkWhatsAppOffer, WHATSAPP_OPUS_PT, WHATSAPP_TE_FMTP, WHATSAPP_TE_PT, WHATSAPP_TE_RATE } from '../whatsapp-profile.js';
import { MediaError } from '../types.js';

/** sdp-transform's property for an attribute name (undefined: it lands in `invalid`). */
const ATTR_KEY: Record<string, string> = {
  'msid-semantic': 'msidSemantic',
  'extmap-allow-mixed': 'extmapAllowMixed',
  group: 'groups',
  'ice-lite': 'icelite',
  'ice-options': 'iceOptions',
  'end-of-candidates': 'endOfCandidates',
  ssrc: 'ssrcs',
  'ssrc-group': 'ssrcGroups',
  mid: 'mid',
  msid: 'msid',
  'rtcp-fb': 'rtcpFb',
  'rtcp-rsize': 'rtcpRsize',
  extmap: 'ext',
};

function strip(target: object, attrs: readonly string[]): void {
  const rec = target as Record<string, unknown>;
  for (const a of attrs) {
    const key = ATTR_KEY[a];
    if (key) delete rec[key];
  }
  const invalid = rec['invalid'] as Array<{ value: string }> | undefined;
  if (invalid) {
    const kept = invalid.filter((i) => !attrs.some((a) => i.value === a || i.value.startsWith(`${a}:`)));
    if (kept.length) rec['invalid'] = kept;
    else delete rec['invalid'];
  }
}

/**
 * WhatsApp puts `a=ice-lite` at session level (RFC 8839's place for it). rtpengine 10.5 only
 * looks for it in the media section: with the session-level line alone it takes the ICE
 * controlled role on `answer` ("ICE role change, now controlled" in its log), so both sides are
 * controlled and nobody nominates; ICE then only succeeds when an early check of the offer
 * phase happened to carry USE-CANDIDATE (seen failing in 2 of 6 runs). Copying the attribute
 * into each media section keeps rtpengine controlling, as it must be toward an ICE-lite peer.
 */
export function iceLiteIntoMedia(webrtcOffer: string): string {
  const s = parse(webrtcOffer) as SessionDescription & Record<string, unknown>;
  if (s['icelite'] === undefined) return webrtcOffer;
  for (const m of s.media) (m as unknown as Record<string, unknown>)['icelite'] = 'ice-lite';
  return write(s);
}

/**
 * WhatsApp's telephone-event/8000 relabelled telephone-event/48000 (same PT) in the SDP given to
 * rtpengine. rtpengine 10.5 only emits RFC 4733 events toward a leg on a telephone-event whose
 * clock equals that leg's audio codec (Opus, 48000): with WhatsApp's /8000 it answers without
 * telephone-event and turns the PBX's events into in-band tones in the Opus stream ("DTMF
 * output -1" in its log). With /48000 it pairs 126 with Opus and translates events between
 * 126 and the PBX's telephone-event/8000 both ways. Its translation rescales durations and
 * timestamps by the clock ratio, so what WhatsApp sends (8000 Hz units) reaches the PBX
 * divided by 6 and what the PBX sends reaches WhatsApp multiplied by 6; digit, end bit and
 * event boundaries are kept (see test/e2e/media-rtpengine.test.ts). WhatsApp is told 8000 in
 * the answer (finishWhatsAppAnswer) or the offer (finishWhatsAppOffer), as it requires.
 */
export function relabelTelephoneEvent(sdp: string, fromRate: number, toRate: number): string {
  const s = parse(sdp);
  let changed = false;
  for (const m of s.media) {
    for (const r of m.rtp) {
      if (r.codec.toLowerCase() === 'telephone-event' && (r.rate ?? 8000) === fromRate) {
        r.rate = toRate;
        changed = true;
      }
    }
  }
  return changed ? write(s) : sdp;
}

/** The plain offer for a PBX: no WebRTC leftovers (msid, ssrc, mid, rtcp-fb, ...). */
export function cleanPlainOffer(sdp: string): string {
  const s = parse(sdp);
  strip(s, PBX_STRIP_SESSION_ATTRS);
  for (const m of s.media) strip(m, PBX_STRIP_MEDIA_ATTRS);
  return write(s);
}

/**
 * sdp-transform keeps only the last of repeated `a=fingerprint` lines, so extra hash
 * algorithms are dropped line by line before parsing: only `a=fingerprint:sha-256` stays.
 */
export function keepOnlySha256Fingerprint(sdp: string): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  return sdp
    .split(eol)
    .filter((line) => !line.startsWith('a=fingerprint:') || line.toLowerCase().startsWith('a=fingerprint:sha-256 '))
    .join(eol);
}

interface TelephoneEvent {
  payload: number;
  rate: number;
  fmtp?: string;
}

function telephoneEvents(m: MediaAttributes): TelephoneEvent[] {
  return (m.rtp ?? [])
    .filter((r) => r.codec.toLowerCase() === 'telephone-event')
    .map((r) => {
      const fmtp = (m.fmtp ?? []).find((f) => f.payload === r.payload)?.config;
      return { payload: r.payload, rate: r.rate ?? 8000, ...(fmtp ? { fmtp } : {}) };
    });
}

/**
 * The WebRTC answer for WhatsApp, from rtpengine's answer and WhatsApp's offer:
 * - a single sha-256 fingerprint, no a=ice-lite (we are full ICE);
 * - `a=group:BUNDLE` as offered (rtpengine drops the group line for a single m-line);
 * - telephone-event/8000 as offered (PT 126): rtpengine answers the relabelled 126/48000 it
 *   was given (relabelTelephoneEvent), written back as /8000; should it leave telephone-event
 *   out while the PBX accepted it, WhatsApp's 126/8000 is added back.
 */
export function finishWhatsAppAnswer(answer: string, webrtcOffer: string, pbxAnswer: string): string {
  const s = parse(keepOnlySha256Fingerprint(answer)) as SessionDescription & Record<string, unknown>;
  const offer = parse(webrtcOffer);
  const pbx = parse(pbxAnswer);
  delete s['icelite'];
  for (const m of s.media) delete (m as unknown as Record<string, unknown>)['icelite'];

  const offerAudio = offer.media.find((m) => m.type === 'audio');
  const audio = s.media.find((m) => m.type === 'audio');
  if (offerAudio && audio) {
    const offerBundle = offer.groups?.find((g) => g.type === 'BUNDLE');
    if (offerBundle && audio.mid !== undefined && !s.groups?.some((g) => g.type === 'BUNDLE')) {
      s.groups = [...(s.groups ?? []), { type: 'BUNDLE', mids: String(audio.mid) }];
    }
    const pbxAudio = pbx.media.find((m) => m.type === 'audio');
    const pbxTe = pbxAudio ? telephoneEvents(pbxAudio).some((t) => t.rate === 8000) : false;
    const offeredTe = telephoneEvents(offerAudio).find((t) => t.rate === 8000);
    const answeredTe = telephoneEvents(audio);
    // The offer rtpengine saw said 126 was telephone-event/48000 (see relabelTelephoneEvent):
    // tell WhatsApp what it offered, 8000.
    if (offeredTe) for (const r of audio.rtp) if (r.payload === offeredTe.payload && r.codec.toLowerCase() === 'telephone-event') r.rate = 8000;
    if (pbxTe && offeredTe && answeredTe.length === 0) {
      audio.rtp = [...audio.rtp, { payload: offeredTe.payload, codec: 'telephone-event', rate: 8000 }];
      if (offeredTe.fmtp) audio.fmtp = [...(audio.fmtp ?? []), { payload: offeredTe.payload, config: offeredTe.fmtp }];
      audio.payloads = [...String(audio.payloads ?? '').split(' ').filter(Boolean), String(offeredTe.payload)].join(' ');
    }
  }
  return write(s);
}

// ---- outbound calls (business-initiated) ---------------------------------------------------

/** WhatsApp's payload types, which the offer for `connect` must use (see checkWhatsAppOffer). */
export const WHATSAPP_PT = { opus: WHATSAPP_OPUS_PT, telephoneEvent: WHATSAPP_TE_PT } as const;

type Media = SessionDescription['media'][number];

/** Rename payload type `from` to `to` in one m-line (m= list, rtpmap, fmtp, rtcp-fb). */
function renamePayload(m: Media, from: number, to: number, rate?: number): void {
  for (const r of m.rtp) {
    if (r.payload !== from) continue;
    r.payload = to;
    if (rate !== undefined) r.rate = rate;
  }
  for (const f of m.fmtp ?? []) if (f.payload === from) f.payload = to;
  for (const fb of m.rtcpFb ?? []) if (String(fb.payload) === String(from)) fb.payload = to;
  m.payloads = String(m.payloads ?? '')
    .split(' ')
    .filter(Boolean)
    .map((p) => (p === String(from) ? String(to) : p))
    .join(' ');
}

/**
 * rtpengine's WebRTC offer made to look like what WhatsApp sends itself:
 * - a single sha-256 fingerprint, `a=setup:actpass`, no a=ice-lite (rtpengine is full ICE);
 * - `a=group:BUNDLE <mid>` for the one audio m-line (rtpengine writes no group for one m-line);
 * - Opus on PT 111 with the fmtp rtpengine wrote from WHATSAPP_OPUS_CODEC_SPEC;
 * - telephone-event on PT 126 at 8000 Hz, as WhatsApp offers it;
 * - no `a=rtcp:` line (rtcp-mux only), no end-of-candidates.
 *
 * Renumbering PTs in the offer alone is safe with rtpengine 10.5 because it takes the PTs of
 * the answer as the answerer's numbering: with WhatsApp answering Opus on 111, rtpengine
 * receives and sends Opus on 111 (measured; feeding it the answer renumbered back to its own
 * PT 96 instead broke audio both ways, since WhatsApp sends on 111 whatever the offer's PT).
 * rtpengine 10.5 cannot be told the PT itself (codec specs have no PT field; it takes the first
 * free dynamic PT). Its telephone-event is at 48000 Hz, paired with Opus; it is announced here
 * at 8000 Hz as Meta requires, and WhatsApp's answer (126/8000) is relabelled 126/48000 before
 * rtpengine reads it (engine.ts, relabelTelephoneEvent), so it matches and the PBX's answer
 * carries telephone-event: DTMF crosses both ways, durations rescaled by 6.
 */
export function finishWhatsAppOffer(rtpengineOffer: string): string {
  const s = parse(keepOnlySha256Fingerprint(rtpengineOffer)) as SessionDescription & Record<string, unknown>;
  delete s['icelite'];
  const audio = s.media.find((m) => m.type === 'audio');
  if (!audio) throw new Error('rtpengine offer has no audio m-line');
  const am = audio as unknown as Record<string, unknown>;
  delete am['icelite'];
  delete am['endOfCandidates'];
  delete am['iceOptions'];
  delete am['rtcp'];

  const opus = audio.rtp.find((r) => r.codec.toLowerCase() === 'opus');
  if (!opus) throw new Error('rtpengine offer has no Opus');
  const te = audio.rtp.find((r) => r.codec.toLowerCase() === 'telephone-event');
  // Park telephone-event on a PT outside 0-127 first, in case rtpengine put it on 111.
  const parked = 1000;
  if (te) renamePayload(audio, te.payload, parked);
  renamePayload(audio, opus.payload, WHATSAPP_PT.opus);
  if (te) {
    renamePayload(audio, parked, WHATSAPP_PT.telephoneEvent, WHATSAPP_TE_RATE);
    for (const f of audio.fmtp ?? []) if (f.payload === WHATSAPP_PT.telephoneEvent) f.config = WHATSAPP_TE_FMTP;
  }
  audio.setup = 'actpass';
  if (audio.mid === undefined) audio.mid = '0';
  s.groups = [{ type: 'BUNDLE', mids: String(audio.mid) }];
  return write(s);
}

/** rtpengine's WebRTC offer (outbound call, click to call) finished and checked: a MediaError if WhatsApp would refuse it. */
export function checkedWhatsAppOffer(rtpengineOffer: string): string {
  let sdp: string;
  try {
    sdp = finishWhatsAppOffer(rtpengineOffer);
  } catch (err) {
    throw new MediaError(`rtpengine offer unusable for WhatsApp: ${(err as Error).message}`, 'rtpengine', 'sdp rules');
  }
  const violations = checkWhatsAppOffer(sdp);
  if (violations.length > 0) throw new MediaError(`rtpengine offer breaks WhatsApp rules: ${violations.join('; ')}`, 'rtpengine', 'sdp rules');
  return sdp;
}

/**
 * WhatsApp's answer as rtpengine reads it: PTs 111 and 126 unchanged (rtpengine adopts the
 * answer's numbering); telephone-event/8000 relabelled /48000 to match the telephone-event/48000
 * rtpengine offered with Opus (see relabelTelephoneEvent).
 */
export function whatsAppAnswerForNg(webrtcAnswer: string): string {
  return relabelTelephoneEvent(iceLiteIntoMedia(webrtcAnswer), 8000, 48000);
}
