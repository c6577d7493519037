/**
 * An outgoing INVITE (UAC, RFC 3261 section 13.2): provisional responses, the 2xx that creates
 * the dialog (12.1.2), digest challenges (22.2), CANCEL (9.1) and our own give-up timer.
 */
import sip from 'sip';
import type { Logger } from 'pino';
import { DigestClient } from './auth.js';
import { guarded, type SipCore } from './core.js';
import { Dialog, ALLOW } from './dialog.js';
import {
  contactUri,
  formatNameAddr,
  formatNameAddrObject,
  generateCallId,
  generateTag,
  headerText,
  reasonHeader,
  safeHeaders,
  safeUri,
  recordRouteUris,
  sdpBody,
  tagOf,
  toWire,
} from './headers.js';
import type { LibEndpoint } from './lib.js';
import { inviteHeaders, termsFromAnswer, type SessionTimerConfig } from './session-timer.js';
import { SipFailure, type InviteOptions, type OutgoingCall, type OutgoingInvite, type SipDialog, type StoredClientInvite } from './types.js';

export interface UacOptions {
  inviteTimeoutMs: number;
}

type Phase = 'calling' | 'proceeding' | 'done';

export class Uac implements OutgoingCall {
  readonly callId: string;
  readonly established: Promise<SipDialog>;
  private resolve!: (d: SipDialog) => void;
  private reject!: (e: SipFailure) => void;
  private settled = false;
  private phase: Phase = 'calling';
  private cancelReason: 'cancel' | 'timeout' | undefined;
  /** Reason header value given to cancel(), sent with the CANCEL. */
  private cancelReasonHeader: string | undefined;
  private cancelSent = false;
  private invite: sip.Message;
  private seq = 1;
  /** RFC 4028 section 7.4: after a 422, the interval the peer's Min-SE asks for. */
  private session: SessionTimerConfig;
  private retried422 = false;
  private readonly localTag = generateTag();
  private readonly fromHeader: string;
  private readonly endpoint: LibEndpoint;
  private readonly digest: DigestClient;
  private readonly dialogs = new Map<string, Dialog>();
  /** The last 1xx with the PBX's To tag: its early dialog, for a cluster survivor's ACK and BYE. */
  private tagged1xx: sip.Message | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly log: Logger;

  constructor(
    private readonly core: SipCore,
    private readonly req: OutgoingInvite,
    private readonly opts: InviteOptions & UacOptions,
    endpoint: LibEndpoint,
  ) {
    this.endpoint = endpoint;
    this.session = core.session;
    this.callId = generateCallId(`${endpoint.advertised.host}`);
    this.log = core.logger.child({ sipCallId: this.callId, sipRole: 'uac' });
    this.digest = new DigestClient(core.credentials);
    this.fromHeader = formatNameAddr(req.from, this.localTag);
    this.established = new Promise<SipDialog>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Nobody may be listening yet when we fail synchronously; avoid an unhandled rejection.
    this.established.catch(() => undefined);
    this.invite = this.buildInvite();
    this.timer = setTimeout(() => this.giveUp(), opts.inviteTimeoutMs);
    this.log.info({ uri: req.uri }, 'sip: sending INVITE');
    core.request(endpoint, this.invite, (rs) => this.onResponse(rs, this.invite));
  }

  private buildInvite(): sip.Message {
    const extra = safeHeaders(this.req.headers, (name) => this.log.warn({ header: name }, 'sip: extra header ignored (reserved or not a token)'));
    return {
      method: 'INVITE',
      uri: safeUri(this.req.uri),
      headers: {
        via: [], // first, so `sip` puts our Via at the top (RFC 3261 section 7.3.1)
        to: formatNameAddr(this.req.to ?? { uri: this.req.uri.replace(/[;?].*$/, '') }),
        from: this.fromHeader,
        'call-id': this.callId,
        cseq: { seq: this.seq, method: 'INVITE' },
        contact: this.core.contact(this.endpoint),
        'max-forwards': '70',
        'user-agent': this.core.userAgent,
        allow: ALLOW,
        ...inviteHeaders(this.session),
        'content-type': 'application/sdp',
        ...extra,
      },
      content: toWire(this.req.sdp),
    };
  }

  /** RFC 3261 section 9.1: CANCEL only after a provisional response; else when one arrives. */
  cancel(reason?: string): void {
    this.startCancel('cancel', reason);
  }

  private giveUp(): void {
    if (this.phase === 'done') return;
    this.log.warn({ timeoutMs: this.opts.inviteTimeoutMs }, 'sip: INVITE timed out');
    this.startCancel('timeout');
  }

  private startCancel(why: 'cancel' | 'timeout', reason?: string): void {
    if (this.settled || this.cancelReason) return;
    this.cancelReason = why;
    this.cancelReasonHeader = reason;
    clearTimeout(this.timer);
    this.fail(why === 'timeout' ? new SipFailure(408, 'Request Timeout') : new SipFailure(487, 'Request Terminated'));
    this.log.info({ why, reason }, 'sip: cancelling INVITE');
    if (this.phase === 'proceeding') this.sendCancel();
  }

  private sendCancel(): void {
    if (this.cancelSent || this.phase === 'done') return;
    this.cancelSent = true;
    const inv = this.invite;
    // CANCEL: same Request-URI, Call-ID, To, From, CSeq number and top Via (branch) as the INVITE.
    const cancel: sip.Message = {
      method: 'CANCEL',
      uri: inv.uri,
      headers: {
        via: [structuredClone(inv.headers.via![0]!)],
        to: inv.headers.to,
        from: inv.headers.from,
        'call-id': this.callId,
        cseq: { seq: inv.headers.cseq!.seq, method: 'CANCEL' },
        'max-forwards': '70',
        'user-agent': this.core.userAgent,
        ...(this.cancelReason === 'timeout' ? { reason: 'SIP;cause=408;text="Timeout"' } : this.cancelReasonHeader ? { reason: this.cancelReasonHeader } : {}),
      },
      content: '',
    };
    this.core.request(this.endpoint, cancel, (rs) => {
      if ((rs.status ?? 0) >= 200) this.log.debug({ status: rs.status }, 'sip: CANCEL answered');
    });
  }

  /**
   * The INVITE as data while it waits for a final response (cluster takeover: a survivor CANCELs
   * it). Undefined once answered, cancelled or failed, and before `sip` gave it its branch.
   */
  pendingSnapshot(): StoredClientInvite | undefined {
    if (this.phase === 'done' || this.settled || this.cancelReason) return undefined;
    const via = this.invite.headers.via?.[0];
    if (!via?.host || typeof via.params['branch'] !== 'string') return undefined;
    return {
      kind: 'client',
      callId: this.callId,
      uri: sip.stringifyUri(this.invite.uri!),
      via: { version: via.version, protocol: via.protocol, host: via.host, port: via.port, params: { ...via.params } },
      from: this.fromHeader,
      to: String(this.invite.headers.to),
      cseq: this.seq,
      transport: this.endpoint.transport,
      ...this.earlyDialog(),
    };
  }

  /** The early dialog of the last tagged 1xx, as data; nothing if that response cannot be written back. */
  private earlyDialog(): Pick<StoredClientInvite, 'early'> {
    const rs = this.tagged1xx;
    if (!rs || typeof rs.headers.to !== 'object') return {};
    try {
      return { early: { remoteHeader: formatNameAddrObject(rs.headers.to), remoteTarget: contactUri(rs) ?? sip.stringifyUri(this.invite.uri!), routeSet: recordRouteUris(rs).reverse() } };
    } catch (err) {
      this.log.warn({ err }, 'sip: the early dialog of a 1xx cannot be stored');
      return {};
    }
  }

  private onResponse(rs: sip.Message, sentInvite: sip.Message): void {
    if (sentInvite !== this.invite) return; // responses to an INVITE replaced after a challenge
    const status = rs.status ?? 0;
    if (status < 200) {
      if (this.phase === 'calling') this.phase = 'proceeding';
      if (this.cancelReason) this.sendCancel();
      if (status > 100 && tagOf(rs.headers.to) !== undefined) this.tagged1xx = rs;
      if (status > 100 && !this.settled && this.opts.onProgress) {
        const onProgress = this.opts.onProgress;
        const sdp = sdpBody(rs);
        guarded(this.log, 'onProgress', () => onProgress({ status, reason: rs.reason ?? '', ...(sdp !== undefined ? { sdp } : {}) }));
      }
      return;
    }
    if (status < 300) {
      this.onSuccess(rs);
      return;
    }
    if (this.phase === 'done') return;
    if ((status === 401 || status === 407) && !this.cancelReason && this.retryWithAuth(rs)) return;
    if (status === 422 && !this.cancelReason && this.retryWithMinSe(rs)) return;
    this.phase = 'done';
    clearTimeout(this.timer);
    this.log.info({ status, reason: rs.reason }, 'sip: INVITE failed');
    this.fail(new SipFailure(status, rs.reason ?? '', reasonHeader(rs)));
  }

  /** RFC 3261 section 22.2: re-send the INVITE with credentials and a higher CSeq. */
  private retryWithAuth(rs: sip.Message): boolean {
    this.seq += 1;
    const next = this.buildInvite();
    if (!this.digest.authorize(next, rs)) return false;
    this.log.info({ status: rs.status }, 'sip: answering digest challenge');
    this.invite = next;
    this.phase = 'calling';
    this.core.request(this.endpoint, next, (r) => this.onResponse(r, next));
    return true;
  }

  /** RFC 4028 section 7.4: 422 Session Interval Too Small: once, with the interval its Min-SE asks for. */
  private retryWithMinSe(rs: sip.Message): boolean {
    const minSe = Number(/^\s*(\d{1,9})/.exec(headerText(rs, 'min-se') ?? '')?.[1]);
    if (this.retried422 || this.session.expiresSec <= 0 || !(minSe > this.session.expiresSec)) return false;
    this.retried422 = true;
    this.session = { expiresSec: minSe, minSec: Math.min(this.session.minSec, minSe) };
    this.seq += 1;
    const next = this.buildInvite();
    Object.assign(next.headers, this.digest.current());
    this.log.info({ minSe }, 'sip: 422, retrying with the Min-SE interval');
    this.invite = next;
    this.phase = 'calling';
    this.core.request(this.endpoint, next, (r) => this.onResponse(r, next));
    return true;
  }

  /**
   * RFC 3261 section 13.2.2.4: every 2xx (and each retransmission) is ACKed; the first one
   * creates the dialog (12.1.2). A 2xx after cancel/timeout, or from another fork, is ACKed and
   * ended with BYE.
   */
  private onSuccess(rs: sip.Message): void {
    const remoteTag = tagOf(rs.headers.to) ?? '';
    let dialog = this.dialogs.get(remoteTag);
    if (!dialog) {
      dialog = new Dialog(this.core, {
        role: 'uac',
        callId: this.callId,
        localTag: this.localTag,
        remoteTag,
        localHeader: this.fromHeader,
        remoteHeader: typeof rs.headers.to === 'object' ? formatNameAddrObject(rs.headers.to) : String(rs.headers.to),
        localSeq: this.seq,
        remoteTarget: contactUri(rs) ?? sip.stringifyUri(this.invite.uri!),
        routeSet: recordRouteUris(rs).reverse(), // RFC 3261 section 12.1.2
        endpoint: this.endpoint,
        localSdp: this.req.sdp,
        remoteSdp: sdpBody(rs),
        digest: this.digest,
        session: termsFromAnswer(this.session, headerText(rs, 'session-expires')),
        announceSession: headerText(rs, 'session-expires') !== undefined, // the peer supports timers
        peerAllowsUpdate: /\bUPDATE\b/i.test(headerText(rs, 'allow') ?? ''),
        log: this.log,
      });
      this.dialogs.set(remoteTag, dialog);
      dialog.ackTwoXx(this.seq);
      const first = this.phase !== 'done' && !this.settled;
      this.phase = 'done';
      clearTimeout(this.timer);
      if (first) {
        this.settled = true;
        this.log.info({ status: rs.status }, 'sip: call established');
        this.resolve(dialog);
      } else {
        this.log.info({ remoteTag }, 'sip: 2xx after cancel or from another fork: ACK then BYE');
        void dialog.bye(this.cancelReasonHeader);
      }
      return;
    }
    dialog.ackTwoXx(this.seq);
  }

  private fail(err: SipFailure): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  /** Stack closing: stop the timer and fail if still pending. */
  dispose(): void {
    clearTimeout(this.timer);
    this.phase = 'done';
    this.fail(new SipFailure(503, 'SIP stack closed'));
  }
}
