/**
 * Hold without audio. WhatsApp drops a call after about 30 s without media from the business,
 * and a PBX that puts the call on hold with `a=inactive` (or `a=recvonly`, or the old
 * c=0.0.0.0) sends nothing. The dialog layer answers the PBX's re-INVITE itself (WhatsApp has
 * no renegotiation); this follows the PBX's direction and tells the media engine, which keeps
 * WhatsApp's stream alive while the PBX is silent.
 */
import type { Logger } from 'pino';
import type { MediaSession } from '../media/types.js';
import { sdpSendsAudio } from '../sip/sdp-answer.js';
import type { SipDialog } from '../sip/types.js';

export function followPbxHold(dialog: SipDialog, session: MediaSession, log: Logger, pbxSdp: string | undefined): void {
  let sending = true;
  const apply = (sdp: string | undefined, why: string): void => {
    // An offerless re-INVITE carries the PBX's SDP in the ACK: keep the last known direction.
    if (sdp === undefined) return;
    let now: boolean | undefined;
    try {
      now = sdpSendsAudio(sdp);
    } catch (err) {
      log.warn({ err: (err as Error).message }, `unreadable PBX SDP in ${why}; direction unchanged`);
      return;
    }
    if (now === undefined || now === sending) return;
    sending = now;
    log.info({ pbxSending: now }, now ? `PBX sends audio again (${why})` : `PBX stopped sending audio (${why}): media engine keeps WhatsApp's stream alive`);
    void session.pbxSending(now);
  };
  apply(pbxSdp, 'answer');
  dialog.on('reinvite', (offer) => apply(offer, 're-INVITE'));
}
