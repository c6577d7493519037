/**
 * SDP of the embedded engine: the plain RTP/AVP side (offers and answers we write, the PBX's we
 * read) and the shaping of werift's WebRTC SDP into what WhatsApp accepts.
 */
import { randomInt } from 'node:crypto';
import { parse, write, type MediaAttributes, type SessionDescription } from 'sdp-transform';
import { checkPbxAudio } from '../pbx-sdp.js';
import { assertSdpSize } from '../sdp-limits.js';
import { WHATSAPP_OPUS_CHANNELS, WHATSAPP_OPUS_FMTP, WHATSAPP_OPUS_PT, WHATSAPP_OPUS_RATE } from '../whatsapp-profile.js';

/** telephone-event's PT in our plain offers to the PBX. */
export const PBX_TE_PT = 101;

export type PbxCodecName = 'opus' | 'G722' | 'PCMU' | 'PCMA';

/** A codec as it appears in a plain SDP. */
export interface SdpCodec {
  pt: number;
  name: string;
  rate: number;
  channels?: number;
  fmtp?: string;
}

/** What we use of a plain RTP SDP (the PBX's offer or answer). */
export interface PlainMedia {
  host: string;
  port: number;
  /** RTCP port (a=rtcp or port+1); equals `port` with a=rtcp-mux. */
  rtcpPort: number;
  rtcpMux: boolean;
  codecs: SdpCodec[];
  /** telephone-event/8000 PT, if any. */
  tePt: number | undefined;
  direction: string;
  ptime: number | undefined;
}

const STATIC: Record<number, SdpCodec> = {
  0: { pt: 0, name: 'PCMU', rate: 8000 },
  8: { pt: 8, name: 'PCMA', rate: 8000 },
  9: { pt: 9, name: 'G722', rate: 8000 },
};

/**
 * The PBX's plain SDP, checked (./../pbx-sdp.ts) so that nothing in it can make a send throw
 * later.
 */
export function parsePlain(sdp: string): PlainMedia {
  assertSdpSize(sdp);
  const s = parse(sdp);
  const { m, host, rtcpMux, rtcpPort } = checkPbxAudio(s);
  const payloads = String(m.payloads ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  const codecs: SdpCodec[] = [];
  for (const pt of payloads) {
    const r = m.rtp.find((x) => x.payload === pt);
    const fmtp = (m.fmtp ?? []).find((f) => f.payload === pt)?.config;
    if (r) codecs.push({ pt, name: r.codec, rate: r.rate ?? 8000, ...(r.encoding ? { channels: Number(r.encoding) } : {}), ...(fmtp ? { fmtp } : {}) });
    else if (STATIC[pt]) codecs.push(STATIC[pt]);
  }
  const te = codecs.find((c) => c.name.toLowerCase() === 'telephone-event' && c.rate === 8000);

  return {
    host,
    port: m.port,
    rtcpPort,
    rtcpMux,
    codecs,
    tePt: te?.pt,
    direction: m.direction ?? s.direction ?? 'sendrecv',
    ptime: m.ptime,
  };
}

/** The first codec of `codecs` (in that order) we can send, by our name. */
export function pickCodec(codecs: SdpCodec[], allowed: readonly PbxCodecName[]): (SdpCodec & { kind: PbxCodecName }) | undefined {
  for (const c of codecs) {
    const n = c.name.toLowerCase();
    const kind = allowed.find((a) => a.toLowerCase() === n);
    if (!kind) continue;
    if (kind === 'opus' && c.rate !== 48000) continue;
    if (kind !== 'opus' && c.rate !== 8000) continue;
    return { ...c, kind };
  }
  return undefined;
}

function codecLine(kind: PbxCodecName, opusPt: number): SdpCodec {
  switch (kind) {
    case 'opus':
      return { pt: opusPt, name: 'opus', rate: WHATSAPP_OPUS_RATE, channels: WHATSAPP_OPUS_CHANNELS, fmtp: WHATSAPP_OPUS_FMTP };
    case 'G722':
      return { pt: 9, name: 'G722', rate: 8000 };
    case 'PCMU':
      return { pt: 0, name: 'PCMU', rate: 8000 };
    case 'PCMA':
      return { pt: 8, name: 'PCMA', rate: 8000 };
  }
}

/** A plain RTP/AVP SDP (offer or answer) with the given codecs, 20 ms, telephone-event. */
export function writePlain(opts: {
  host: string;
  port: number;
  codecs: SdpCodec[];
  tePt: number | undefined;
  sessionId?: number;
  direction?: string;
}): string {
  const codecs = [...opts.codecs];
  if (opts.tePt !== undefined) codecs.push({ pt: opts.tePt, name: 'telephone-event', rate: 8000, fmtp: '0-16' });
  const media = {
    type: 'audio',
    port: opts.port,
    protocol: 'RTP/AVP',
    payloads: codecs.map((c) => c.pt).join(' '),
    rtp: codecs.map((c) => ({ payload: c.pt, codec: c.name, rate: c.rate, ...(c.channels ? { encoding: c.channels } : {}) })),
    fmtp: codecs.filter((c) => c.fmtp).map((c) => ({ payload: c.pt, config: c.fmtp! })),
    rtcp: { port: opts.port + 1, netType: 'IN', ipVer: 4, address: opts.host },
    ptime: 20,
    direction: (opts.direction ?? 'sendrecv') as MediaAttributes['direction'],
  } as SessionDescription['media'][number];
  const sdp: SessionDescription = {
    version: 0,
    origin: {
      username: '-',
      sessionId: opts.sessionId ?? randomInt(1, 2 ** 31),
      sessionVersion: 1,
      netType: 'IN',
      ipVer: 4,
      address: opts.host,
    },
    name: 'wa-sip-bridge',
    timing: { start: 0, stop: 0 },
    connection: { version: 4, ip: opts.host },
    media: [media],
  };
  return write(sdp);
}

/** Our plain offer to the PBX for an inbound call: Opus passthrough first, then G.722, PCMU, PCMA. */
export function writePlainOffer(host: string, port: number, kinds: readonly PbxCodecName[], opusPt = WHATSAPP_OPUS_PT): string {
  return writePlain({ host, port, codecs: kinds.map((k) => codecLine(k, opusPt)), tePt: PBX_TE_PT });
}

/** Our plain answer to the PBX's offer (outbound call): the chosen codec + telephone-event if offered. */
export function writePlainAnswer(host: string, port: number, chosen: SdpCodec, tePt: number | undefined, direction: string): string {
  const reverse: Record<string, string> = { sendonly: 'recvonly', recvonly: 'sendonly', inactive: 'inactive', sendrecv: 'sendrecv' };
  return writePlain({ host, port, codecs: [chosen], tePt, direction: reverse[direction] ?? 'sendrecv' });
}

/** Drop every a=fingerprint line but sha-256 (sdp-transform keeps only the last one). */
function keepOnlySha256(sdp: string): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  return sdp
    .split(eol)
    .filter((l) => !l.startsWith('a=fingerprint:') || l.toLowerCase().startsWith('a=fingerprint:sha-256 '))
    .join(eol);
}

/**
 * werift's SDP shaped for WhatsApp (answer or offer): one sha-256 fingerprint, no ice-lite, no
 * trickle option, BUNDLE group, rtcp-mux, no header extensions, c= and the m= port on the first
 * host candidate (werift writes 0.0.0.0 / 9 until told otherwise), only UDP candidates.
 */
export function shapeWebRtcSdp(sdp: string, setup: 'active' | 'actpass'): string {
  const s = parse(keepOnlySha256(sdp)) as SessionDescription & Record<string, unknown>;
  delete s['icelite'];
  delete s['extmapAllowMixed'];
  delete s['iceOptions'];
  delete s['msidSemantic'];
  for (const m of s.media) {
    const mr = m as unknown as Record<string, unknown>;
    delete mr['icelite'];
    delete mr['iceOptions'];
    delete mr['extmapAllowMixed'];
    delete mr['ext'];
    m.setup = setup;
    m.rtcpMux = 'rtcp-mux';
    m.candidates = (m.candidates ?? []).filter((c) => c.transport.toLowerCase() === 'udp');
    const first = m.candidates[0];
    if (first) {
      m.port = first.port;
      m.connection = { version: first.ip.includes(':') ? 6 : 4, ip: first.ip };
      s.origin.address = first.ip;
      s.origin.ipVer = first.ip.includes(':') ? 6 : 4;
    }
    m.ptime = 20;
    if (m.mid === undefined) m.mid = '0';
  }
  const mids = s.media.map((m) => String(m.mid)).join(' ');
  s.groups = [{ type: 'BUNDLE', mids }];
  return write(s);
}

export interface WebRtcOfferInfo {
  opusPt: number;
  opusFmtp: string;
  tePt: number | undefined;
}

/** The codecs WhatsApp's offer (or answer) carries on its audio m-line. */
export function webRtcCodecs(sdp: string): WebRtcOfferInfo {
  assertSdpSize(sdp);
  const s = parse(sdp);
  const m = s.media.find((x) => x.type === 'audio');
  if (!m) throw new Error('WebRTC SDP has no audio m-line');
  if (!/^UDP\/TLS\/RTP\/SAVPF?$/.test(m.protocol)) throw new Error(`WebRTC SDP transport ${m.protocol}, expected UDP/TLS/RTP/SAVPF`);
  const opus = m.rtp.find((r) => r.codec.toLowerCase() === 'opus' && r.rate === 48000);
  if (!opus) throw new Error('WebRTC SDP offers no Opus/48000');
  const te = m.rtp.find((r) => r.codec.toLowerCase() === 'telephone-event' && r.rate === 8000);
  return {
    opusPt: opus.payload,
    opusFmtp: (m.fmtp ?? []).find((f) => f.payload === opus.payload)?.config ?? WHATSAPP_OPUS_FMTP,
    tePt: te?.payload,
  };
}
