/**
 * The media seam. A MediaEngine turns WhatsApp's WebRTC (ICE-lite peer, DTLS-SRTP, Opus) into
 * plain RTP a PBX understands, and back. rtpengine (over its ng protocol) and an in-process
 * werift engine sit behind this same interface; the bridge depends only on it.
 *
 * A session is one call. Its methods follow the SDP offer/answer exchange of the call's
 * direction; `close()` is idempotent and releases everything the session holds.
 */
export interface MediaEngine {
  readonly name: string;
  /** Create the media session of one call. `callId` names it in the engine and in logs. */
  createSession(callId: string): MediaSession;
  /** Ids of sessions the engine itself still holds (for leak checks and health). */
  listSessions(): Promise<string[]>;
  /**
   * Whether the engine can take a new call now, cheaply (rtpengine: an ng `ping` per instance,
   * ready if any answers; embedded: free port pairs left). Never throws.
   */
  readiness(): Promise<EngineReadiness>;
  /**
   * Drop a session this process does not hold (a dead cluster instance's call), by its call id.
   * Only engines whose sessions outlive the process have it (rtpengine); embedded sessions die with it.
   */
  deleteForeign?(callId: string): Promise<void>;
  close(): Promise<void>;
}

export interface EngineReadiness {
  ready: boolean;
  /** Why not ready (or a warning while ready), e.g. "rtpengine 127.0.0.1:22222: no answer". */
  reason?: string;
  /** Engine-specific figures for the /readyz JSON (free ports, instances up, …). */
  detail?: Record<string, unknown>;
}

/**
 * Why a live session's media failed without anyone asking: the bridge ends both legs of the
 * call with this as the cause.
 * - `webrtc-failed`: WhatsApp's ICE or DTLS failed or closed;
 * - `whatsapp-media-timeout`: no RTP from WhatsApp for the configured time;
 * - `engine-dead`: the engine serving the session died or stopped answering (rtpengine ping or
 *   query failed), or lost the session.
 */
export type MediaFailureKind = 'webrtc-failed' | 'whatsapp-media-timeout' | 'engine-dead';

export interface MediaFailure {
  kind: MediaFailureKind;
  /** Human-readable detail for logs and the call record. */
  detail: string;
}

export interface MediaSession {
  readonly callId: string;
  /**
   * Inbound call: WhatsApp's WebRTC offer in, the plain RTP/AVP offer for the PBX out
   * (PCMU, PCMA, G.722 and telephone-event offered).
   */
  offerFromWhatsApp(webrtcOffer: string): Promise<string>;
  /**
   * Inbound call: the PBX's plain RTP answer in, the WebRTC answer for WhatsApp out. The
   * result obeys WhatsApp's rules (see `checkWhatsAppAnswer`): full ICE with every candidate,
   * `a=setup:active`, a single sha-256 fingerprint, no `a=ice-lite`. Calling it again with
   * a new PBX SDP (183 then 200) must return the same WhatsApp SDP.
   */
  answerFromPbx(plainAnswer: string): Promise<string>;
  /**
   * Outbound call (an agent dials a WhatsApp user): the PBX's plain RTP offer in, a WebRTC offer
   * for WhatsApp's `connect` out, shaped like WhatsApp's own offer: one BUNDLEd audio m-line,
   * rtcp-mux, Opus on PT 111 with Meta's fmtp, telephone-event/8000 on 126, full ICE with every
   * candidate, `a=setup:actpass`, a single sha-256 fingerprint.
   */
  offerFromPbx(plainOffer: string): Promise<string>;
  /**
   * Outbound call: WhatsApp's SDP answer (from the connect webhook) in, the plain RTP answer
   * for the PBX's 200 OK out. Works whichever DTLS role WhatsApp's answer takes.
   */
  answerFromWhatsApp(webrtcAnswer: string): Promise<string>;
  /**
   * Click to call (the bridge itself calls a WhatsApp user, then an extension on the PBX), step
   * 1: a WebRTC offer for WhatsApp's `connect`, shaped exactly like `offerFromPbx`'s, made before
   * the PBX is involved (its codecs are not known yet). Step 2 is `answerFromWhatsApp` with
   * WhatsApp's answer: on a click-to-call session it returns the plain RTP/AVP OFFER for the
   * INVITE to the extension (PCMU, PCMA, G.722, Opus and telephone-event, as `offerFromWhatsApp`
   * offers); WhatsApp's leg comes up and is kept alive with silence until the PBX answers.
   * An engine that cannot do this rejects with a MediaError whose reason is 'unsupported'.
   */
  offerToWhatsApp(): Promise<string>;
  /**
   * Click to call, step 3: the extension's plain RTP answer (its 200 OK) to the offer
   * `answerFromWhatsApp` returned; media then flows both ways. Calling it again with the same
   * SDP does nothing.
   */
  answerFromPbxToOffer(plainAnswer: string): Promise<void>;
  /**
   * The PBX will (not) send audio from now on, as its latest SDP says (a re-INVITE putting the
   * call on hold with `a=inactive`/`a=recvonly`, or resuming it). WhatsApp drops a call after
   * about 30 s without media, so while the PBX is silent the engine must keep WhatsApp's stream
   * alive (silence), and stop doing so when the PBX sends again. Never throws.
   */
  pbxSending(sending: boolean): Promise<void>;
  /**
   * Register the listener told (once) when the session's media fails on its own: see
   * MediaFailure. Engines watch for this from the moment WhatsApp's SDP is applied; the
   * WhatsApp media timeout counts from the moment the WhatsApp leg is connected (or from when
   * it was applied, for a leg that never connects). Never called after close().
   */
  onFailure(listener: (failure: MediaFailure) => void): void;
  /**
   * What the session carried, for the call record and metrics; readable after close(). An
   * engine that cannot tell leaves it out.
   */
  mediaStats?(): MediaStats;
  /**
   * Register the listener told of the session's milestones (the WhatsApp leg connected, the
   * first packet each way, keep-alive fill on and off), for the call view. Optional: an engine
   * that cannot see them leaves it out.
   */
  onMilestone?(listener: (m: MediaMilestone) => void): void;
  /** Release the session in the engine. Idempotent; never throws. */
  close(): Promise<void>;
}

/** A media milestone as an arrow between the legs and the engine. */
export interface MediaMilestone {
  label: string;
  from: 'whatsapp' | 'pbx' | 'media';
  to: 'whatsapp' | 'pbx' | 'media';
}

/** One leg's packet counts; loss and jitter of what came in, where the engine measures them. */
export interface MediaLegStats {
  codec: string | undefined;
  packetsIn: number;
  packetsOut: number;
  lost?: number;
  lossRatio?: number;
  jitterMs?: number;
}

export interface MediaStats {
  engine: string;
  whatsapp: MediaLegStats;
  pbx: MediaLegStats;
  /** Silence frames sent to WhatsApp while the PBX sent nothing. */
  keepaliveFrames?: number;
}

/** A media engine failure, with the engine's own reason (rtpengine's `error-reason`). */
export class MediaError extends Error {
  override readonly name = 'MediaError';
  constructor(
    message: string,
    readonly engine: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}
