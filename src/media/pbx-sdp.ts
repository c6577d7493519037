/**
 * The PBX's plain SDP, checked before either engine uses it: every byte from the network is
 * hostile, and an address or port that cannot carry RTP must give a clear MediaError at
 * offer/answer time, not a send that throws mid-call. Accepted: an IPv4 c= address (0.0.0.0
 * allowed, RFC 2543 hold: nothing is sent there), an RTP port in 1-65535, and, without
 * rtcp-mux, an RTCP port in 1-65535. Refused: `m=audio 0` (stream rejected), `a=rtcp:0`,
 * `m=audio 65535` without rtcp-mux (its implicit RTCP port would be 65536), host names, IPv6,
 * multicast and reserved addresses.
 */
import { parse, type SessionDescription } from 'sdp-transform';
import { isIPv4 } from 'node:net';
import { assertSdpSize } from './sdp-limits.js';

type Media = SessionDescription['media'][number];

const validPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
const show = (v: unknown): string => JSON.stringify(String(v).slice(0, 64));

/** Why a c= address cannot carry our RTP, or undefined when it can. */
function badAddress(host: string): string | undefined {
  if (!isIPv4(host)) return `c= address ${show(host)} is not an IPv4 address`;
  if (Number(host.split('.')[0]) >= 224) return `c= address ${host} is multicast or reserved`;
  return undefined;
}

/** The audio m-line of a parsed plain SDP and where its RTP/RTCP go; throws Error on bad input. */
export function checkPbxAudio(s: SessionDescription): { m: Media; host: string; rtcpMux: boolean; rtcpPort: number } {
  const m = (s.media ?? []).find((x) => x.type === 'audio');
  if (!m) throw new Error('plain SDP has no audio m-line');
  const host = m.connection?.ip ?? s.connection?.ip;
  if (!host) throw new Error('plain SDP has no c= address');
  const bad = badAddress(host);
  if (bad) throw new Error(bad);
  if (m.port === 0) throw new Error('audio m-line rejected (port 0)');
  if (!validPort(m.port)) throw new Error(`audio port ${show(m.port)} out of range 1-65535`);
  const rtcpMux = m.rtcpMux !== undefined;
  const rtcpPort = rtcpMux ? m.port : (m.rtcp?.port ?? m.port + 1);
  if (!validPort(rtcpPort)) {
    throw new Error(m.rtcp ? `a=rtcp port ${show(m.rtcp.port)} out of range 1-65535` : `RTCP port ${rtcpPort} out of range (m=audio ${m.port} without rtcp-mux)`);
  }
  return { m, host, rtcpMux, rtcpPort };
}

/** Why a PBX SDP is unusable, or undefined when it is fine (parse and check). */
export function pbxSdpProblem(sdp: string): string | undefined {
  try {
    assertSdpSize(sdp);
    checkPbxAudio(parse(sdp));
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
