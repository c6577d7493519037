/**
 * Default answer to a re-INVITE when the bridge set no ReinviteHandler: our last SDP with the
 * origin version bumped (RFC 3264 section 8) and each stream's direction mirrored from the
 * offer (RFC 3264 section 6.1: sendonly is answered recvonly, recvonly sendonly, inactive inactive).
 */
import { parse, write } from 'sdp-transform';

type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

const MIRROR: Record<Direction, Direction> = {
  sendrecv: 'sendrecv',
  sendonly: 'recvonly',
  recvonly: 'sendonly',
  inactive: 'inactive',
};

/**
 * Whether the party that wrote `sdp` will send audio: its first audio stream's direction (or the
 * session's) is sendrecv or sendonly, and it is not the RFC 2543 hold address 0.0.0.0. A stream
 * refused with port 0 sends nothing; an SDP without an audio stream says nothing (undefined).
 */
export function sdpSendsAudio(sdp: string): boolean | undefined {
  const s = parse(sdp);
  const m = s.media.find((x) => x.type === 'audio');
  if (!m) return undefined;
  if (m.port === 0) return false;
  const dir = (m.direction as Direction | undefined) ?? (s.direction as Direction | undefined) ?? 'sendrecv';
  const ip = m.connection?.ip ?? s.connection?.ip;
  return (dir === 'sendrecv' || dir === 'sendonly') && ip !== '0.0.0.0';
}

export function defaultReinviteAnswer(lastLocalSdp: string, offer: string | undefined): string {
  const local = parse(lastLocalSdp);
  if (local.origin) local.origin.sessionVersion = Number(local.origin.sessionVersion) + 1;
  if (offer !== undefined) {
    const remote = parse(offer);
    const sessionDir = (remote.direction as Direction | undefined) ?? 'sendrecv';
    local.media.forEach((m, i) => {
      const offered = remote.media[i];
      if (!offered) return;
      m.direction = MIRROR[(offered.direction as Direction | undefined) ?? sessionDir];
    });
    delete local.direction;
  }
  return write(local);
}
