/**
 * WhatsApp's media profile, in one place: the payload types and fmtp it uses (Opus on PT 111
 * with Meta's fmtp, telephone-event/8000 on PT 126) and its rules for the SDP a business sends
 * (whatsapp-calling-api.md section 3): the answer of a user-initiated call
 * (`checkWhatsAppAnswer`) and the offer of a business-initiated call's `connect`
 * (`checkWhatsAppOffer`). Used by both media engines on their output and by the simulator, which
 * rejects a violating SDP the way Meta does (error 100, subcode 2494010).
 */
import { parse, write } from 'sdp-transform';
import { sdpSizeProblem } from './sdp-limits.js';

/** Opus's payload type in every WhatsApp SDP. */
export const WHATSAPP_OPUS_PT = 111;
/** Opus's RTP clock and signalled channels (WebRTC always says opus/48000/2). */
export const WHATSAPP_OPUS_RATE = 48000;
export const WHATSAPP_OPUS_CHANNELS = 2;
/** Meta's Opus fmtp in WhatsApp's own offers. */
export const WHATSAPP_OPUS_FMTP =
  'maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1';
/** RFC 4733 telephone-event: payload type, clock and events in WhatsApp's SDP. */
export const WHATSAPP_TE_PT = 126;
export const WHATSAPP_TE_RATE = 8000;
export const WHATSAPP_TE_FMTP = '0-15';

type Attrs = Record<string, unknown>;

/** Rule violations of a WhatsApp answer; empty means the SDP is acceptable. */
export function checkWhatsAppAnswer(sdp: string): string[] {
  return checkWhatsAppSdp(sdp, 'answer');
}

/**
 * Rule violations of a business's offer for Graph `connect` (business-initiated call); empty
 * means acceptable. WhatsApp answers it as an ICE-lite, always-controlled peer, so the offer must
 * be full ICE with every candidate (no trickle), leave the DTLS role to WhatsApp
 * (`a=setup:actpass`), carry a single sha-256 fingerprint, one BUNDLEd audio m-line with a=mid
 * and rtcp-mux, Opus on PT 111 and, if any, telephone-event/8000 on PT 126.
 */
export function checkWhatsAppOffer(sdp: string): string[] {
  return checkWhatsAppSdp(sdp, 'offer');
}

/** What differs between the two: our DTLS role, and BUNDLE/mid, which only the offer must state. */
const KIND = {
  answer: { setup: 'active', port0: 'audio m-line rejected (port 0)', bundle: false },
  offer: { setup: 'actpass', port0: 'audio m-line disabled (port 0)', bundle: true },
} as const;

function checkWhatsAppSdp(sdp: string, what: 'offer' | 'answer'): string[] {
  const rules = KIND[what];
  const v: string[] = [];
  const tooBig = sdpSizeProblem(sdp);
  if (tooBig) return [tooBig];
  let s: ReturnType<typeof parse>;
  try {
    s = parse(sdp);
  } catch (e) {
    return [`unparsable SDP: ${(e as Error).message}`];
  }
  if (!s.media || s.media.length === 0) return ['no m-line'];
  const session = s as unknown as Attrs;
  if (session['icelite'] !== undefined) v.push(`a=ice-lite present: the ${what} must be full ICE`);
  const audio = s.media.filter((m) => m.type === 'audio');
  if (audio.length !== 1) v.push(`expected exactly one audio m-line, found ${audio.length}`);
  if (s.media.length !== audio.length) v.push('non-audio m-lines present');
  const bundle = s.groups?.find((g) => g.type === 'BUNDLE');
  if (rules.bundle && !bundle) v.push('a=group:BUNDLE missing');

  for (const m of audio) {
    const ma = m as unknown as Attrs;
    if (ma['icelite'] !== undefined) v.push(`a=ice-lite present in media: the ${what} must be full ICE`);
    if (m.port === 0) v.push(rules.port0);
    if (m.protocol !== 'UDP/TLS/RTP/SAVPF') v.push(`transport is ${m.protocol}, expected UDP/TLS/RTP/SAVPF`);
    if (rules.bundle) {
      if (m.mid === undefined) v.push('a=mid missing');
      else if (bundle && !String(bundle.mids).split(' ').includes(String(m.mid))) {
        v.push(`a=group:BUNDLE ${bundle.mids} does not name the audio mid ${m.mid}`);
      }
    }
    v.push(...fingerprintViolations(sdp, s, m));
    const setup = m.setup ?? (session['setup'] as string | undefined);
    if (setup !== rules.setup) v.push(`a=setup:${setup ?? '(missing)'}: the ${what} must be a=setup:${rules.setup}`);
    v.push(...iceViolations(s, m, what));
    if (!m.rtcpMux) v.push('a=rtcp-mux missing');
    v.push(...codecViolations(m));
  }
  return v;
}

/**
 * Two SDPs equal but for the o= line's session version (an engine may bump it). WhatsApp wants
 * `accept` to carry the SDP of `pre_accept`: the engines use this to keep the first answer.
 */
export function sameSdpIgnoringVersion(a: string, b: string): boolean {
  const pa = parse(a);
  const pb = parse(b);
  pa.origin.sessionVersion = 0;
  pb.origin.sessionVersion = 0;
  return write(pa) === write(pb);
}

type Media = ReturnType<typeof parse>['media'][number];

function fingerprintViolations(sdp: string, s: ReturnType<typeof parse>, m: Media): string[] {
  const v: string[] = [];
  const fps = [...(s.fingerprint ? [s.fingerprint] : []), ...(m.fingerprint ? [m.fingerprint] : [])];
  // sdp-transform keeps only the last a=fingerprint of a section: count raw lines too.
  const fpLines = countAttr(sdp, 'fingerprint');
  if (fpLines === 0 || fps.length === 0) v.push('no a=fingerprint');
  else {
    for (const fp of fps) if (fp.type.toLowerCase() !== 'sha-256') v.push(`Fingerprint algo is not SHA256 (${fp.type})`);
    if (fpLines > 1) v.push(`${fpLines} a=fingerprint lines: only one sha-256 line is allowed`);
  }
  return v;
}

function iceViolations(s: ReturnType<typeof parse>, m: Media, what: 'offer' | 'answer'): string[] {
  const v: string[] = [];
  if (!(m.iceUfrag ?? s.iceUfrag) || !(m.icePwd ?? s.icePwd)) v.push('missing a=ice-ufrag/a=ice-pwd');
  const cands = (m.candidates ?? []).filter((c) => c.transport.toLowerCase() === 'udp');
  if (cands.length === 0) v.push(`no UDP a=candidate lines: all candidates must be in the ${what} (no trickle)`);
  return v;
}

function codecViolations(m: Media): string[] {
  const v: string[] = [];
  const opus = (m.rtp ?? []).filter((r) => r.codec.toLowerCase() === 'opus');
  if (opus.length === 0) v.push('no Opus codec');
  else if (!opus.some((r) => r.payload === WHATSAPP_OPUS_PT)) {
    v.push(`Opus on PT ${opus.map((r) => r.payload).join(',')}, expected ${WHATSAPP_OPUS_PT}`);
  }
  const te = (m.rtp ?? []).filter((r) => r.codec.toLowerCase() === 'telephone-event');
  if (te.length > 0 && !te.some((r) => r.payload === WHATSAPP_TE_PT && r.rate === WHATSAPP_TE_RATE)) {
    v.push(`telephone-event on PT ${te.map((r) => `${r.payload}/${r.rate}`).join(',')}, expected ${WHATSAPP_TE_PT}/${WHATSAPP_TE_RATE}`);
  }
  return v;
}

function countAttr(sdp: string, name: string): number {
  let n = 0;
  for (const line of sdp.split(/\r?\n/)) if (line.startsWith(`a=${name}:`)) n++;
  return n;
}
