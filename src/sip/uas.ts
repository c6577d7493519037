/**
 * An INVITE received outside any dialog (UAS, RFC 3261 section 13.3): provisional and final
 * responses, the dialog created by our 2xx (12.1.1), and CANCEL from the peer (9.2).
 */
import type sip from 'sip';
import type { Logger } from 'pino';
import { guarded, type SipCore } from './core.js';
import { ALLOW, Dialog } from './dialog.js';
import {
  contactUri,
  formatNameAddrObject,
  generateTag,
  headerText,
  parseNameAddr,
  recordRouteUris,
  safeHeaders,
  sdpBody,
  toWire,
} from './headers.js';
import type { LibEndpoint } from './lib.js';
import { termsForOffer } from './session-timer.js';
import { SipFailure, type IncomingInvite, type NameAddr, type SipDialog, type StoredServerInvite } from './types.js';

type Phase = 'proceeding' | 'accepting' | 'done';

export class Uas implements IncomingInvite {
  readonly callId: string;
  readonly requestUri: string;
  readonly from: NameAddr;
  readonly to: NameAddr;
  readonly sdp: string | undefined;
  readonly source: { address: string; port: number; transport: 'udp' | 'tcp' };
  private phase: Phase = 'proceeding';
  private readonly localTag = generateTag();
  private readonly cancelListeners: Array<() => void> = [];
  private readonly log: Logger;

  constructor(
    private readonly core: SipCore,
    private readonly rq: sip.Message,
    remote: sip.Remote,
    private readonly ep: LibEndpoint,
    /** Called once a final response was sent (or the INVITE was cancelled). */
    private readonly onDone: () => void,
  ) {
    this.callId = rq.headers['call-id'] ?? '';
    this.requestUri = typeof rq.uri === 'string' ? rq.uri : '';
    this.from = parseNameAddr(rq.headers.from);
    this.to = parseNameAddr(rq.headers.to);
    this.sdp = sdpBody(rq);
    this.source = { address: remote.address, port: remote.port, transport: ep.transport };
    this.log = core.logger.child({ sipCallId: this.callId, sipRole: 'uas' });
    // RFC 3261 section 17.2.1: 100 Trying at once stops the peer's retransmissions.
    core.reply(ep, rq, 100, 'Trying');
  }

  /** The top Via branch: identifies the INVITE transaction a CANCEL refers to (RFC 3261 section 9.2). */
  get branch(): string {
    return String(this.rq.headers.via?.[0]?.params['branch'] ?? '');
  }

  /** The server transaction as data while it has no final response (cluster takeover: a survivor answers it). */
  pendingSnapshot(): StoredServerInvite | undefined {
    const { via, from, cseq } = this.rq.headers;
    if (this.phase !== 'proceeding' || !via?.length || !from || !cseq) return undefined;
    return {
      kind: 'server',
      callId: this.callId,
      via: via.map((v) => ({ version: v.version, protocol: v.protocol, host: v.host ?? '', port: v.port, params: { ...v.params } })),
      from: typeof from === 'object' ? formatNameAddrObject(from) : String(from),
      to: this.toHeader(),
      cseq: cseq.seq,
      transport: this.ep.transport,
      source: { address: this.source.address, port: this.source.port },
    };
  }

  header(name: string): string | undefined {
    return headerText(this.rq, name);
  }

  private toHeader(): string {
    const to = this.rq.headers.to;
    return typeof to === 'object' ? formatNameAddrObject(to, this.localTag) : `${String(to)};tag=${this.localTag}`;
  }

  progress(status: number, reason: string, sdp?: string): void {
    if (this.phase !== 'proceeding' || status <= 100 || status >= 200) return;
    this.core.reply(this.ep, this.rq, status, reason, {
      headers: {
        to: this.toHeader(),
        contact: this.core.contact(this.ep),
        ...(sdp !== undefined ? { 'content-type': 'application/sdp' } : {}),
      },
      ...(sdp !== undefined ? { content: toWire(sdp) } : {}),
    });
  }

  accept(sdp: string): Promise<SipDialog> {
    if (this.phase !== 'proceeding') return Promise.reject(new SipFailure(481, 'INVITE already answered or cancelled'));
    this.phase = 'accepting';
    const se = termsForOffer(this.core.session, this.header('session-expires'), this.header('supported'));
    const dialog = new Dialog(this.core, {
      role: 'uas',
      log: this.log,
      callId: this.callId,
      localTag: this.localTag,
      remoteTag: typeof this.rq.headers.from === 'object' ? String(this.rq.headers.from.params?.['tag'] ?? '') : '',
      localHeader: this.toHeader(),
      remoteHeader: typeof this.rq.headers.from === 'object' ? formatNameAddrObject(this.rq.headers.from) : String(this.rq.headers.from),
      localSeq: Math.floor(Math.random() * 10000) + 1,
      remoteSeq: this.rq.headers.cseq?.seq,
      remoteTarget: contactUri(this.rq) ?? this.from.uri,
      routeSet: recordRouteUris(this.rq), // RFC 3261 section 12.1.1: in order
      endpoint: this.ep,
      localSdp: sdp,
      remoteSdp: this.sdp,
      ...(se.kind === 'ok' ? { session: se.terms, announceSession: Object.keys(se.headers).length > 0 } : {}),
      peerAllowsUpdate: /\bUPDATE\b/i.test(this.header('allow') ?? ''),
    });
    this.log.info('sip: answering INVITE');
    const acked = dialog.sendTwoXx(this.ep, this.rq, sdp);
    this.phase = 'done';
    this.onDone();
    return acked.then(() => dialog);
  }

  reject(status: number, reason: string, headers?: Record<string, string>): void {
    if (this.phase !== 'proceeding' || status < 300) return;
    this.phase = 'done';
    const extra = safeHeaders(headers, (name) => this.log.warn({ header: name }, 'sip: extra header ignored (reserved or not a token)'));
    this.log.info({ status, reason }, 'sip: rejecting INVITE');
    this.core.reply(this.ep, this.rq, status, reason, { headers: { ...extra, to: this.toHeader() } });
    this.onDone();
  }

  onCancel(listener: () => void): void {
    this.cancelListeners.push(listener);
  }

  /** RFC 3261 section 9.2: 200 to the CANCEL, 487 to the INVITE if it had no final response. */
  handleCancel(cancel: sip.Message, ep: LibEndpoint): void {
    this.core.reply(ep, cancel, 200, 'OK');
    if (this.phase !== 'proceeding') return;
    this.phase = 'done';
    this.log.info('sip: INVITE cancelled by peer');
    this.core.reply(this.ep, this.rq, 487, 'Request Terminated', { headers: { to: this.toHeader(), allow: ALLOW } });
    this.onDone();
    for (const l of this.cancelListeners) guarded(this.log, 'onCancel listener', l);
  }
}
