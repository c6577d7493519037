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
