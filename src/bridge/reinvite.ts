import * as sdpTransform from 'sdp-transform';

type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
const MIRROR: Record<Direction, Direction> = {
  sendrecv: 'sendrecv',
  sendonly: 'recvonly',
  recvonly: 'sendonly',
  inactive: 'inactive',
};

/**
 * The answer to a re-INVITE from the PBX (hold, resume, session refresh). WhatsApp has no
 * renegotiation ("Re-INVITES are not supported"), so the WhatsApp leg is left untouched: we
 * answer with the SDP we last sent the PBX (the media proxy's ports do not move), the direction
 * mirrored per RFC 3264 section 6.1, and the o= version incremented (RFC 3264 section 8).
 * An offerless re-INVITE gets our last SDP as a new offer, version incremented.
 */
export function answerReinvite(lastLocal: string, offer: string | undefined): string {
  const local = sdpTransform.parse(lastLocal);
  if (local.origin) local.origin.sessionVersion = Number(local.origin.sessionVersion) + 1;
  if (offer) {
    const remote = sdpTransform.parse(offer);
    const remoteDirection = (remote.media[0]?.direction ?? remote.direction ?? 'sendrecv') as Direction;
    for (const m of local.media) m.direction = MIRROR[remoteDirection] ?? 'sendrecv';
    delete local.direction;
  }
  return sdpTransform.write(local);
}
