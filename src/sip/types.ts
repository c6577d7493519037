/**
 * The SIP seam. The bridge talks to the PBX only through these types; the `sip` npm package
 * (an RFC 3261 transaction layer) and our own dialog layer implement them in `./stack.ts`, so
 * another stack could sit behind the same interface.
 */

export interface NameAddr {
  uri: string;
  /** Display name; quoted and escaped per RFC 3261 section 25.1 when sent. */
  displayName?: string;
}

export interface OutgoingInvite {
  /** Request-URI, e.g. `sip:1001@pbx.example.com:5060;transport=tcp`. */
  uri: string;
  from: NameAddr;
  /** Defaults to the Request-URI. */
  to?: NameAddr;
  sdp: string;
  /** Extra headers, e.g. `X-WA-Call-Id`. Names are sent as given. */
  headers?: Record<string, string>;
}

export interface InviteProgress {
  status: number;
  reason: string;
  /** SDP of a reliable-enough early dialog (183 Session Progress, or 180 with SDP). */
  sdp?: string;
}

export interface InviteOptions {
  /** Called for every 1xx above 100. Exceptions thrown here are caught and logged. */
  onProgress?: (p: InviteProgress) => void;
}

/** An INVITE in flight (UAC). */
export interface OutgoingCall {
  /** SIP Call-ID, known as soon as the INVITE is built: log it with the call. */
  readonly callId: string;
  /**
   * Resolves with the confirmed dialog once a 2xx arrived and was ACKed. Rejects with
   * `SipFailure`: the final status (486, 603, 404 ...), 408 on Timer B / no final response,
   * 487 after `cancel()`, 503 on a transport error.
   */
  readonly established: Promise<SipDialog>;
  /**
   * CANCEL the INVITE (RFC 3261 section 9). Safe to call at any time and more than once;
   * if a 2xx races the CANCEL, the dialog is ACKed and then ended with BYE. `reason`: the
   * value of a Reason header (RFC 3326) sent with the CANCEL (and that BYE).
   */
  cancel(reason?: string): void;
}

export interface SipDialogEvents {
  /** The remote side sent BYE (already answered 200). */
  bye: () => void;
  /** An in-dialog INFO (e.g. DTMF via application/dtmf-relay); already answered 200. */
  info: (contentType: string | undefined, body: string) => void;
  /** The peer's re-INVITE (hold, resume, refresh) was answered 2xx; `offer` is its SDP, if any. */
  reinvite: (offer: string | undefined) => void;
}

/**
 * Decides the SDP answer to a re-INVITE from the PBX (hold/resume). `offer` is undefined for
 * an offerless re-INVITE (then the result is our offer, which the ACK answers).
 */
export type ReinviteHandler = (offer: string | undefined) => Promise<string>;

/** A confirmed dialog (RFC 3261 section 12). */
export interface SipDialog {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  /** SDP the peer sent in the 2xx (UAC) or the INVITE (UAS). */
  readonly remoteSdp: string | undefined;
  readonly state: 'confirmed' | 'terminated';
  /**
   * Send BYE and resolve when answered (or timed out). Idempotent; never rejects. `reason`: the
   * value of a Reason header (RFC 3326) naming why the call ends, e.g. `Q.850;cause=16`.
   */
  bye(reason?: string): Promise<void>;
  setReinviteHandler(handler: ReinviteHandler): void;
  on<E extends keyof SipDialogEvents>(event: E, listener: SipDialogEvents[E]): this;
  off<E extends keyof SipDialogEvents>(event: E, listener: SipDialogEvents[E]): this;
}

/** An INVITE received from the PBX outside any dialog (UAS); used by outbound calls. */
export interface IncomingInvite {
  readonly callId: string;
  readonly requestUri: string;
  readonly from: NameAddr;
  readonly to: NameAddr;
  readonly sdp: string | undefined;
  readonly source: { address: string; port: number; transport: 'udp' | 'tcp' };
  header(name: string): string | undefined;
  /** Send a provisional response (180, 183 with SDP). */
  progress(status: number, reason: string, sdp?: string): void;
  /** Send 2xx with SDP; resolves with the dialog once the ACK arrived (2xx retransmitted until then). */
  accept(sdp: string): Promise<SipDialog>;
  /** Final non-2xx response; extra headers such as `Reason` or `Warning`. */
  reject(status: number, reason: string, headers?: Record<string, string>): void;
  /** The PBX sent CANCEL before we answered (we already answered 487). */
  onCancel(listener: () => void): void;
}

export type IncomingInviteHandler = (invite: IncomingInvite) => void;

export interface SipStack {
  invite(req: OutgoingInvite, opts?: InviteOptions): OutgoingCall;
  /** Out-of-dialog INVITEs; without a handler they are answered 403. */
  onInvite(handler: IncomingInviteHandler): void;
  /** Stop listening; ends no dialog. */
  close(): Promise<void>;
  /** What another process needs to end each confirmed dialog of this one (cluster takeover). */
  dialogSnapshots?(): StoredDialog[];
  /** Send BYE in a dialog this process did not set up (a dead instance's); resolves with the final status, undefined on timeout. */
  byeStored?(d: StoredDialog, reason?: string): Promise<number | undefined>;
  /** INVITEs of this process still without a final response, either way (cluster takeover of ringing calls). */
  inviteSnapshots?(): StoredInvite[];
  /**
   * End a dead instance's ringing INVITE from its stored state: CANCEL with the INVITE's own top
   * Via, then (when a 1xx named the PBX's tag) ACK for the 487 and BYE on that early dialog, which
   * ends the call if the PBX answered as the instance died. Never rejects.
   */
  cancelStored?(inv: StoredClientInvite, reason?: string): Promise<StoredCancelOutcome>;
  /** Give a dead instance's ringing incoming INVITE its final response (>= 300) from the stored server transaction. */
  rejectStored?(inv: StoredServerInvite, status: number, reason: string, headers?: Record<string, string>): void;
}

/** A Via header as the `sip` package parses it. */
export interface StoredVia {
  version?: string | undefined;
  protocol?: string | undefined;
  host: string;
  port?: number | undefined;
  params: Record<string, string | number | null>;
}

/**
 * An INVITE this process sent that has no final response yet, as data: what a CANCEL needs
 * (RFC 3261 section 9.1: the same Request-URI, top Via with its branch, From with tag, To,
 * Call-ID and CSeq number, sent to the same destination).
 */
export interface StoredClientInvite {
  kind: 'client';
  callId: string;
  uri: string;
  /** The INVITE's top Via as sent: sent-by and branch. */
  via: StoredVia;
  /** From as wire text, our tag included. */
  from: string;
  /** To as wire text (no tag). */
  to: string;
  cseq: number;
  transport: 'udp' | 'tcp';
  /** The early dialog of the last 1xx that carried the PBX's To tag. */
  early?: { remoteHeader: string; remoteTarget: string; routeSet: string[] } | undefined;
}

/** An INVITE this process received and has not answered finally: what a final response needs (RFC 3261 section 8.2.6). */
export interface StoredServerInvite {
  kind: 'server';
  callId: string;
  /** Every Via of the INVITE, in order, as received (`received`/`rport` filled in). */
  via: StoredVia[];
  /** From as wire text (the PBX's tag). */
  from: string;
  /** To as wire text with the tag this process used (or would have used) in its responses. */
  to: string;
  cseq: number;
  transport: 'udp' | 'tcp';
  /** Where the INVITE came from: responses go back there (RFC 3261 section 18.2.2, RFC 3581). */
  source: { address: string; port: number };
}

export type StoredInvite = StoredClientInvite | StoredServerInvite;

/** What the PBX answered a stored INVITE's end: the CANCEL's final status, and the early dialog's BYE if one was sent. */
export interface StoredCancelOutcome {
  cancel: number | undefined;
  ackSent: boolean;
  bye?: number | undefined;
}

/** A confirmed dialog as data: enough for any instance to send its BYE (RFC 3261 section 12.2.1.1). */
export interface StoredDialog {
  callId: string;
  /** From as wire text, our tag included. */
  localHeader: string;
  /** To as wire text, the peer's tag included. */
  remoteHeader: string;
  remoteTarget: string;
  routeSet: string[];
  /** The last CSeq number used; a BYE from elsewhere uses a higher one. */
  localSeq: number;
  transport: 'udp' | 'tcp';
}

/**
 * One SIP message on the wire, as seen by a tap (metrics, the call view's ladders). `text()`
 * serialises it only when asked, so a tap that counts costs nothing per message.
 */
export interface SipWireEvent {
  direction: 'in' | 'out';
  callId: string | undefined;
  /** The request's method, or for a response the method of its CSeq. */
  method: string;
  /** Status code of a response; undefined for requests. */
  status?: number | undefined;
  /** The peer, address:port. */
  peer: string;
  text(): string;
}

/** A SIP request that ended in failure, carrying the SIP status it ended with. */
export class SipFailure extends Error {
  override readonly name = 'SipFailure';
  constructor(
    readonly status: number,
    readonly reason: string,
    /** Value of a `Reason` header, if the peer sent one. */
    readonly reasonHeader?: string,
  ) {
    super(`SIP ${status} ${reason}`);
  }
}
