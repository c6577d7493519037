/**
 * Over 400 lines on purpose: one dialog's state (CSeq, target, route set, pending 2xx, session
 * timer) is shared by every in-dialog method here; splitting it would expose that state.
 *
 * A confirmed INVITE dialog (RFC 3261 section 12), for both roles. `sip` has no dialog layer:
 * this builds in-dialog requests (12.2.1.1), checks and answers the peer's (12.2.2), sends and
 * re-sends the ACK of a 2xx as UAC (13.2.2.4), and re-sends our 2xx as UAS until the ACK
 * arrives (13.3.1.4).
 */
import sip from 'sip';
import type { Logger } from 'pino';
import { DigestClient } from './auth.js';
import { dialogKey, guarded, type DialogHandle, type SipCore } from './core.js';
import { contactUri, fromWire, headerText, sdpBody, toWire } from './headers.js';
import type { LibEndpoint } from './lib.js';
import { defaultReinviteAnswer } from './sdp-answer.js';
import { SessionTimer, termsForOffer, type SessionTerms } from './session-timer.js';
import { SipFailure, type ReinviteHandler, type SipDialog, type SipDialogEvents, type StoredDialog } from './types.js';

export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE';

export interface DialogInit {
  role: 'uac' | 'uas';
  callId: string;
  localTag: string;
  remoteTag: string;
  /** From (UAC) / To (UAS) as wire text, tag included. */
  localHeader: string;
  /** To (UAC) / From (UAS) as wire text, tag included. */
  remoteHeader: string;
  /** CSeq of the INVITE (UAC) or a fresh start (UAS). */
  localSeq: number;
  /** CSeq of the peer's INVITE (UAS). */
  remoteSeq?: number;
  remoteTarget: string;
  /** Route set, already in the order Route headers are sent (12.1.1 / 12.1.2). */
  routeSet: string[];
  endpoint: LibEndpoint;
  localSdp: string;
  remoteSdp: string | undefined;
  digest?: DigestClient;
  /** RFC 4028 terms agreed when the dialog was set up; undefined: no session timer. */
  session?: SessionTerms | undefined;
  /** Whether our 2xx responses carry Session-Expires (the peer supports timers). */
  announceSession?: boolean;
  /** The peer's Allow lists UPDATE: refresh with UPDATE (RFC 4028 section 7.4), else re-INVITE. */
  peerAllowsUpdate?: boolean;
  /** The UAC's or UAS's logger, already bound to this Call-ID and role (saves a child per call). */
  log?: Logger;
}

interface PendingTwoXx {
  cseq: number;
  timer: NodeJS.Timeout | undefined;
  deadline: NodeJS.Timeout;
  resolve: () => void;
  reject: (e: SipFailure) => void;
}

type Listeners = { [E in keyof SipDialogEvents]: Set<SipDialogEvents[E]> };

export class Dialog implements SipDialog, DialogHandle {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly remoteSdp: string | undefined;
  private _state: 'confirmed' | 'terminated' = 'confirmed';
  private localSeq: number;
  private remoteSeq: number | undefined;
  private remoteTarget: string;
  private localSdp: string;
  private reinviteHandler: ReinviteHandler | undefined;
  private reinviteBusy = false;
  private pending: PendingTwoXx | undefined;
  private byePromise: Promise<void> | undefined;
  private ackBranch: string | undefined;
  private readonly listeners: Listeners = { bye: new Set(), info: new Set(), reinvite: new Set() };
  private readonly log: Logger;
  private readonly digest: DigestClient;
  private readonly sessionTimer: SessionTimer | undefined;
  private peerAllowsUpdate: boolean;

  constructor(
    private readonly core: SipCore,
    private readonly init: DialogInit,
  ) {
    this.callId = init.callId;
    this.localTag = init.localTag;
    this.remoteTag = init.remoteTag;
    this.remoteSdp = init.remoteSdp;
    this.localSeq = init.localSeq;
    this.remoteSeq = init.remoteSeq;
    this.remoteTarget = init.remoteTarget;
    this.localSdp = init.localSdp;
    this.digest = init.digest ?? new DigestClient(core.credentials);
    this.log = init.log ?? core.logger.child({ sipCallId: init.callId, sipRole: init.role });
    core.dialogs.add(this.key, this);
    this.peerAllowsUpdate = init.peerAllowsUpdate ?? false;
    this.sessionTimer = init.session
      ? new SessionTimer(init.session, { refresh: () => this.sendRefresh(), expire: (cause) => this.expire(cause) }, this.log)
      : undefined;
  }

  get state(): 'confirmed' | 'terminated' {
    return this._state;
  }

  private get key(): string {
    return dialogKey(this.callId, this.localTag);
  }

  on<E extends keyof SipDialogEvents>(event: E, listener: SipDialogEvents[E]): this {
    (this.listeners[event] as Set<SipDialogEvents[E]>).add(listener);
    return this;
  }

  off<E extends keyof SipDialogEvents>(event: E, listener: SipDialogEvents[E]): this {
    (this.listeners[event] as Set<SipDialogEvents[E]>).delete(listener);
    return this;
  }

  private emit<E extends keyof SipDialogEvents>(event: E, ...args: Parameters<SipDialogEvents[E]>): void {
    for (const l of [...(this.listeners[event] as Set<(...a: Parameters<SipDialogEvents[E]>) => void>)]) {
      guarded(this.log, `dialog ${event} listener`, () => l(...args));
    }
  }

  /** This dialog as data, for another instance to end it (cluster takeover). */
  snapshot(): StoredDialog | undefined {
    if (this._state !== 'confirmed') return undefined;
    const i = this.init;
    return { callId: this.callId, localHeader: i.localHeader, remoteHeader: i.remoteHeader, remoteTarget: this.remoteTarget, routeSet: [...i.routeSet], localSeq: this.localSeq, transport: i.endpoint.transport };
  }

  setReinviteHandler(handler: ReinviteHandler): void {
    this.reinviteHandler = handler;
  }

  /** RFC 3261 section 15.1.1: the session ends as soon as BYE is sent. */
  bye(reason?: string): Promise<void> {
    this.byePromise ??= new Promise<void>((resolve) => {
      this.terminate('local bye');
      const endpoint = this.core.endpointFor(this.remoteTarget, this.init.routeSet, this.init.endpoint);
      this.sendRequest(endpoint, 'BYE', (rs) => {
        this.log.info({ status: rs.status }, 'sip: BYE answered');
        this.core.dialogs.remove(this.key);
        resolve();
      }, reason ? { headers: { reason } } : {});
    });
    return this.byePromise;
  }

  /** RFC 3261 section 12.2.1.1: a request within the dialog; retried once per digest challenge. */
  private sendRequest(ep: LibEndpoint, method: string, onFinal: (rs: sip.Message) => void, ext: sip.Extension = {}): void {
    const rq = this.buildRequest(method, ++this.localSeq, ext);
    Object.assign(rq.headers, this.digest.current());
    const onResponse = (rs: sip.Message): void => {
      if ((rs.status ?? 0) < 200) return;
      if (rs.status === 401 || rs.status === 407) {
        const retry = this.buildRequest(method, ++this.localSeq, ext);
        if (this.digest.authorize(retry, rs)) {
          this.core.request(ep, retry, onResponse);
          return;
        }
      }
      onFinal(rs);
    };
    this.core.request(ep, rq, onResponse);
  }

  private buildRequest(method: string, seq: number, ext: sip.Extension): sip.Message {
    return {
      method,
      uri: this.remoteTarget,
      headers: {
        via: [],
        to: this.init.remoteHeader,
        from: this.init.localHeader,
        'call-id': this.callId,
        cseq: { seq, method },
        'max-forwards': '70',
        // A fresh copy each time: `sip` consumes the Route list while routing.
        route: this.init.routeSet.map((uri) => ({ uri })),
        'user-agent': this.core.userAgent,
        ...ext.headers,
      },
      content: ext.content ?? '',
    };
  }

  /**
   * UAC: ACK a 2xx (RFC 3261 section 13.2.2.4): a new transaction we send ourselves, with the
   * INVITE's CSeq number and credentials. Called again for each 2xx retransmission; the same
   * branch is reused, so it is the same ACK.
   */
  ackTwoXx(inviteSeq: number): void {
    this.ackBranch ??= sip.generateBranch();
    const ack = this.buildRequest('ACK', inviteSeq, {});
    ack.headers.via = [{ params: { branch: this.ackBranch } }];
    Object.assign(ack.headers, this.digest.current());
    this.core.endpointFor(this.remoteTarget, this.init.routeSet, this.init.endpoint).send(ack);
  }

  /**
   * UAS: send a 2xx to an INVITE and re-send it (T1 doubling up to T2) until its ACK arrives
   * (RFC 3261 section 13.3.1.4); after 64*T1 without ACK the promise rejects and we send BYE.
   */
  sendTwoXx(ep: LibEndpoint, invite: sip.Message, sdp: string, extraHeaders: Record<string, string> = {}): Promise<void> {
    const cseq = invite.headers.cseq?.seq ?? 0;
    const { t1, t2 } = this.core.timers;
    this.localSdp = sdp;
    const send = (): void =>
      this.core.reply(ep, invite, 200, 'OK', {
        headers: {
          to: this.init.localHeader,
          contact: this.core.contact(ep),
          'content-type': 'application/sdp',
          allow: ALLOW,
          ...this.sessionHeaders(),
          ...extraHeaders,
          ...(invite.headers['record-route'] ? { 'record-route': invite.headers['record-route'] } : {}),
        },
        content: toWire(sdp),
      });
    send();
    return new Promise<void>((resolve, reject) => {
      const retransmit = (interval: number): NodeJS.Timeout =>
        setTimeout(() => {
          send();
          if (this.pending) this.pending.timer = retransmit(Math.min(interval * 2, t2));
        }, interval);
      this.pending = {
        cseq,
        timer: retransmit(t1),
        deadline: setTimeout(() => {
          this.log.warn('sip: no ACK for our 2xx, ending the dialog');
          this.clearPending()?.reject(new SipFailure(408, 'No ACK'));
          void this.bye();
        }, 64 * t1),
        resolve,
        reject,
      };
    });
  }

  private clearPending(): PendingTwoXx | undefined {
    const p = this.pending;
    if (p) {
      clearTimeout(p.timer);
      clearTimeout(p.deadline);
      this.pending = undefined;
    }
    return p;
  }

  handleAck(ack: sip.Message): void {
    const p = this.pending;
    if (p && ack.headers.cseq?.seq === p.cseq) {
      this.clearPending();
      p.resolve();
    }
  }

  handleRequest(rq: sip.Message, ep: LibEndpoint): void {
    const method = rq.method ?? '';
    const seq = rq.headers.cseq?.seq ?? 0;
    // RFC 3261 section 12.2.2: requests out of order are rejected with 500.
    if (method !== 'CANCEL' && this.remoteSeq !== undefined && seq < this.remoteSeq) {
      this.core.reply(ep, rq, 500, 'Server Internal Error');
      return;
    }
    if (method !== 'CANCEL') this.remoteSeq = seq;
    switch (method) {
      case 'BYE': // RFC 3261 section 15.1.2
        this.core.reply(ep, rq, 200, 'OK');
        this.core.dialogs.remove(this.key);
        if (this._state !== 'terminated') {
          this.log.info('sip: BYE from peer');
          this.terminate('remote bye');
          this.emit('bye');
        }
        return;
      case 'INFO':
        this.core.reply(ep, rq, 200, 'OK');
        this.emit('info', typeof rq.headers['content-type'] === 'string' ? rq.headers['content-type'] : undefined, fromWire(rq.content ?? ''));
        return;
      case 'OPTIONS':
        this.core.reply(ep, rq, 200, 'OK', { headers: { allow: ALLOW, accept: 'application/sdp' } });
        return;
      case 'INVITE':
        this.handleReinvite(rq, ep);
        return;
      case 'UPDATE':
        this.handleUpdate(rq, ep);
        return;
      case 'CANCEL': // a re-INVITE we answer at once cannot be cancelled
        this.core.reply(ep, rq, 200, 'OK');
        return;
      default:
        this.core.reply(ep, rq, 501, 'Not Implemented', { headers: { allow: ALLOW } });
    }
  }

  /** RFC 3261 section 14.2: a re-INVITE from the peer (hold/resume, session refresh). */
  private handleReinvite(rq: sip.Message, ep: LibEndpoint): void {
    if (this._state === 'terminated') {
      this.core.reply(ep, rq, 481, 'Call/Transaction Does Not Exist');
      return;
    }
    if (this.reinviteBusy || this.pending) {
      this.core.reply(ep, rq, 500, 'Server Internal Error', { headers: { 'retry-after': String(Math.ceil(Math.random() * 10)) } });
      return;
    }
    if (!this.acceptRefresh(rq, ep)) return;
    this.reinviteBusy = true;
    this.core.reply(ep, rq, 100, 'Trying');
    const target = contactUri(rq);
    if (target) this.remoteTarget = target; // target refresh (RFC 3261 section 12.2.2)
    const offer = sdpBody(rq);
    this.answerOffer(offer).then(
      (sdp) => {
        if (this._state === 'terminated') {
          this.core.reply(ep, rq, 487, 'Request Terminated');
          this.reinviteBusy = false;
          return;
        }
        this.sendTwoXx(ep, rq, sdp).then(
          () => (this.reinviteBusy = false),
          () => (this.reinviteBusy = false),
        );
        this.emit('reinvite', offer);
      },
      (err: unknown) => {
        this.log.error({ err, header: headerText(rq, 'cseq') }, 'sip: re-INVITE handler failed');
        this.core.reply(ep, rq, 488, 'Not Acceptable Here');
        this.reinviteBusy = false;
      },
    );
  }

  /** The SDP answer to the peer's offer (re-INVITE or UPDATE), or our offer for an offerless re-INVITE. */
  private answerOffer(offer: string | undefined): Promise<string> {
    const handler = this.reinviteHandler;
    return handler ? Promise.resolve().then(() => handler(offer)) : Promise.resolve().then(() => defaultReinviteAnswer(this.localSdp, offer));
  }

  /**
   * RFC 3311: UPDATE in a confirmed dialog. Without a body it is a session refresh (RFC 4028):
   * 200 at once. With an SDP offer (hold/resume without re-INVITE) it is answered like a
   * re-INVITE's, in the 200.
   */
  private handleUpdate(rq: sip.Message, ep: LibEndpoint): void {
    if (this._state === 'terminated') {
      this.core.reply(ep, rq, 481, 'Call/Transaction Does Not Exist');
      return;
    }
    if (!this.acceptRefresh(rq, ep)) return;
    const target = contactUri(rq);
    if (target) this.remoteTarget = target;
    const headers = { contact: this.core.contact(ep), allow: ALLOW, ...this.sessionHeaders() };
    const offer = sdpBody(rq);
    if (offer === undefined) {
      this.core.reply(ep, rq, 200, 'OK', { headers });
      return;
    }
    if (this.reinviteBusy || this.pending) {
      // RFC 3311 section 5.2: an offer while one of ours is pending.
      this.core.reply(ep, rq, 500, 'Server Internal Error', { headers: { 'retry-after': String(Math.ceil(Math.random() * 10)) } });
      return;
    }
    this.answerOffer(offer).then(
      (sdp) => {
        if (this._state === 'terminated') return this.core.reply(ep, rq, 481, 'Call/Transaction Does Not Exist');
        this.localSdp = sdp;
        this.core.reply(ep, rq, 200, 'OK', { headers: { ...headers, 'content-type': 'application/sdp' }, content: toWire(sdp) });
        this.emit('reinvite', offer);
      },
      (err: unknown) => {
        this.log.error({ err }, 'sip: UPDATE offer could not be answered');
        this.core.reply(ep, rq, 488, 'Not Acceptable Here');
      },
    );
  }

  /**
   * A re-INVITE or UPDATE from the peer refreshes the session (RFC 4028 section 9): its
   * Session-Expires may change the terms. False (already answered 422) when its interval is
   * below our Min-SE.
   */
  private acceptRefresh(rq: sip.Message, ep: LibEndpoint): boolean {
    const d = termsForOffer(this.core.session, headerText(rq, 'session-expires'), headerText(rq, 'supported'));
    if (d.kind === 'too-small') {
      this.core.reply(ep, rq, 422, 'Session Interval Too Small', { headers: { 'min-se': String(d.minSec) } });
      return false;
    }
    this.sessionTimer?.refreshed(d.kind === 'ok' ? d.terms : undefined);
    return true;
  }

  /** Session-Expires for our 2xx (RFC 4028 section 9): `uac` when the peer refreshes. */
  private sessionHeaders(): Record<string, string> {
    const t = this.sessionTimer?.current;
    if (!t || !this.init.announceSession) return {};
    return { 'session-expires': `${t.intervalSec};refresher=${t.refresher === 'remote' ? 'uac' : 'uas'}`, ...(t.refresher === 'remote' ? { require: 'timer' } : {}) };
  }

  /** Our session refresh (RFC 4028 section 7.4 / 9): UPDATE without a body if the peer allows it, else a re-INVITE with our current SDP. */
  private sendRefresh(): Promise<{ status: number; sessionExpires?: string | undefined }> {
    if (this._state === 'terminated') return Promise.resolve({ status: 481 });
    const ep = this.core.endpointFor(this.remoteTarget, this.init.routeSet, this.init.endpoint);
    const t = this.sessionTimer!.current;
    const method = this.peerAllowsUpdate ? 'UPDATE' : 'INVITE';
    const headers: Record<string, string> = { supported: 'timer', 'session-expires': `${t.intervalSec};refresher=uac`, contact: this.core.contact(ep) };
    const ext: sip.Extension = method === 'INVITE' ? { headers: { ...headers, 'content-type': 'application/sdp' }, content: toWire(this.localSdp) } : { headers };
    this.log.debug({ method, intervalSec: t.intervalSec }, 'sip: refreshing the session');
    return new Promise((resolve) =>
      this.sendRequest(
        ep,
        method,
        (rs) => {
          const status = rs.status ?? 500;
          if (method === 'INVITE' && status >= 200 && status < 300) this.ackReinvite(ep, rs.headers.cseq?.seq ?? this.localSeq);
          if (method === 'UPDATE' && (status === 501 || status === 405)) {
            this.peerAllowsUpdate = false; // fall back to re-INVITE at once
            resolve(this.sendRefresh());
            return;
          }
          resolve({ status, sessionExpires: headerText(rs, 'session-expires') });
        },
        ext,
      ),
    );
  }

  /** ACK for the 2xx of our re-INVITE: its own transaction, the re-INVITE's CSeq (RFC 3261 section 13.2.2.4). */
  private ackReinvite(ep: LibEndpoint, seq: number): void {
    const ack = this.buildRequest('ACK', seq, {});
    ack.headers.via = [{ params: { branch: sip.generateBranch() } }];
    Object.assign(ack.headers, this.digest.current());
    ep.send(ack);
  }

  /** The session interval ran out (RFC 4028 section 10): BYE, then end the call as a remote BYE would. */
  private expire(cause: string): void {
    if (this._state === 'terminated') return;
    this.log.warn({ cause }, 'sip: session expired, ending the call');
    void this.bye();
    this.emit('bye');
  }

  private terminate(cause: string): void {
    if (this._state === 'terminated') return;
    this._state = 'terminated';
    this.sessionTimer?.stop();
    this.clearPending()?.reject(new SipFailure(481, `Dialog ended (${cause})`));
    this.log.debug({ cause }, 'sip: dialog terminated');
  }

  dispose(): void {
    this.sessionTimer?.stop();
    this.clearPending()?.reject(new SipFailure(503, 'SIP stack closed'));
  }
}
