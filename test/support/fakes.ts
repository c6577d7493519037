import { EventEmitter } from 'node:events';
import type { MediaEngine, MediaFailure, MediaSession } from '../../src/media/types.js';
import { MediaError } from '../../src/media/types.js';
import type {
  InviteOptions,
  OutgoingCall,
  OutgoingInvite,
  ReinviteHandler,
  SipDialog,
  SipDialogEvents,
  SipStack,
} from '../../src/sip/types.js';
import { SipFailure } from '../../src/sip/types.js';
import type { CallPermissions, WhatsAppCallingApi } from '../../src/whatsapp/types.js';
import type { IncomingInvite, NameAddr } from '../../src/sip/types.js';

/** A minimal plain RTP offer; `tag` lands in the session name so tests can tell offers apart. */
export function plainSdp(tag: string): string {
  return ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', `s=${tag}`, 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 30000 RTP/AVP 0 101', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\r\n');
}

/** In-process stand-ins for scenario tests of the call logic. Real peers are in test/e2e. */

export class FakeDialog extends EventEmitter implements SipDialog {
  /** Every FakeDialog's BYE stays unanswered (a PBX that never answers BYE) while set. */
  static byeNeverAnswered = false;
  state: 'confirmed' | 'terminated' = 'confirmed';
  byes = 0;
  /** The Reason header of each BYE sent. */
  byeReasons: Array<string | undefined> = [];
  reinvite: ReinviteHandler | undefined;
  constructor(
    readonly callId: string,
    readonly remoteSdp: string | undefined,
  ) {
    super();
  }
  readonly localTag = 'l';
  readonly remoteTag = 'r';
  async bye(reason?: string): Promise<void> {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.byes++;
    this.byeReasons.push(reason);
    if (FakeDialog.byeNeverAnswered) await new Promise(() => undefined);
  }
  setReinviteHandler(h: ReinviteHandler): void {
    this.reinvite = h;
  }
  remoteBye(): void {
    this.state = 'terminated';
    this.emit('bye');
  }
  override on<E extends keyof SipDialogEvents>(e: E, l: SipDialogEvents[E]): this {
    return super.on(e, l);
  }
  override off<E extends keyof SipDialogEvents>(e: E, l: SipDialogEvents[E]): this {
    return super.off(e, l);
  }
}

export class FakeOutgoing implements OutgoingCall {
  readonly established: Promise<SipDialog>;
  cancelled = false;
  cancelReason: string | undefined;
  private resolve!: (d: SipDialog) => void;
  private reject!: (e: Error) => void;
  dialog: FakeDialog | undefined;
  constructor(
    readonly callId: string,
    readonly req: OutgoingInvite,
    readonly opts: InviteOptions,
  ) {
    this.established = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.established.catch(() => undefined);
  }
  cancel(reason?: string): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.cancelReason = reason;
    this.reject(new SipFailure(487, 'Request Terminated'));
  }
  progress(status: number, sdp?: string): void {
    this.opts.onProgress?.({ status, reason: 'x', ...(sdp ? { sdp } : {}) });
  }
  answer(sdp = 'pbx-answer'): FakeDialog {
    this.dialog = new FakeDialog(this.callId, sdp);
    this.resolve(this.dialog);
    return this.dialog;
  }
  fail(status: number): void {
    this.reject(new SipFailure(status, 'x'));
  }
}

export class FakeSip implements SipStack {
  invites: FakeOutgoing[] = [];
  private n = 0;
  readonly invited = new EventEmitter();
  invite(req: OutgoingInvite, opts: InviteOptions = {}): OutgoingCall {
    const o = new FakeOutgoing(`sip-call-${++this.n}`, req, opts);
    this.invites.push(o);
    this.invited.emit('invite', o);
    return o;
  }
  inviteHandler: ((inv: IncomingInvite) => void) | undefined;
  onInvite(h: (inv: IncomingInvite) => void): void {
    this.inviteHandler = h;
  }
  async close(): Promise<void> {}
  next(): Promise<FakeOutgoing> {
    return new Promise((r) => this.invited.once('invite', r));
  }
}

type FakeSessionOp = 'offerFromWhatsApp' | 'answerFromPbx' | 'offerFromPbx' | 'answerFromWhatsApp' | 'offerToWhatsApp' | 'answerFromPbxToOffer' | 'close';

export class FakeMedia implements MediaEngine {
  readonly name = 'fake';
  readonly sessions = new Map<string, { closed: boolean; answers: string[]; pbxSending: boolean[]; failureListeners: Array<(f: MediaFailure) => void> }>();
  failOffer = false;
  /** Operations that never settle (an engine that stopped answering), for sessions created from now on. */
  hang = new Set<FakeSessionOp>();
  createSession(callId: string): MediaSession {
    const rec = { closed: false, answers: [] as string[], pbxSending: [] as boolean[], failureListeners: [] as Array<(f: MediaFailure) => void> };
    this.sessions.set(callId, rec);
    const fail = this.failOffer;
    const hang = new Set(this.hang);
    let clicked = false;
    const op = <T>(name: FakeSessionOp, fn: () => T): Promise<T> => (hang.has(name) ? new Promise<T>(() => undefined) : Promise.resolve().then(fn));
    return {
      callId,
      offerFromWhatsApp: (sdp) =>
        op('offerFromWhatsApp', () => {
          if (fail) throw new MediaError('rtpengine did not answer', 'fake', 'timeout');
          return plainSdp(sdp);
        }),
      answerFromPbx: (sdp) =>
        op('answerFromPbx', () => {
          rec.answers.push(sdp);
          return `webrtc-answer`;
        }),
      offerFromPbx: (sdp) =>
        op('offerFromPbx', () => {
          if (fail) throw new MediaError('rtpengine did not answer', 'fake', 'timeout');
          return `webrtc-offer(${sdp.length})`;
        }),
      answerFromWhatsApp: (sdp) =>
        op('answerFromWhatsApp', () => {
          rec.answers.push(sdp);
          return plainSdp(clicked ? 'offer-for-pbx' : 'answer-for-pbx');
        }),
      offerToWhatsApp: () =>
        op('offerToWhatsApp', () => {
          if (fail) throw new MediaError('rtpengine did not answer', 'fake', 'timeout');
          clicked = true;
          return 'webrtc-offer(click)';
        }),
      answerFromPbxToOffer: (sdp) =>
        op('answerFromPbxToOffer', () => {
          rec.answers.push(sdp);
        }),
      pbxSending: async (sending) => {
        rec.pbxSending.push(sending);
      },
      onFailure: (l) => {
        rec.failureListeners.push(l);
      },
      close: () =>
        op('close', () => {
          rec.closed = true;
        }),
    };
  }
  /** The engine reports, on its own, that a session's media failed (as MediaSession.onFailure). */
  fail(callId: string, failure: MediaFailure): void {
    const rec = this.sessions.get(callId);
    if (!rec) throw new Error(`no fake media session ${callId}`);
    for (const l of rec.failureListeners) l(failure);
  }
  async listSessions(): Promise<string[]> {
    return [...this.sessions].filter(([, r]) => !r.closed).map(([k]) => k);
  }
  async readiness(): Promise<{ ready: boolean }> {
    return { ready: true };
  }
  async close(): Promise<void> {}
}

export class FakeWhatsApp implements WhatsAppCallingApi {
  actions: Array<{ action: string; callId: string; sdp?: string; to?: string; opaque?: string }> = [];
  permission: CallPermissions = { status: 'temporary', actions: [], canStartCall: true, canRequestPermission: true };
  permissionLookups = 0;
  private n = 0;
  failOn: Record<string, Error> = {};
  private readonly emitter = new EventEmitter();
  private async record(action: string, callId: string, sdp?: string): Promise<void> {
    this.actions.push({ action, callId, ...(sdp !== undefined ? { sdp } : {}) });
    this.emitter.emit('action', action);
    const f = this.failOn[action];
    if (f) throw f;
  }
  preAccept(_p: string, callId: string, sdp: string) {
    return this.record('pre_accept', callId, sdp);
  }
  accept(_p: string, callId: string, sdp: string) {
    return this.record('accept', callId, sdp);
  }
  reject(_p: string, callId: string) {
    return this.record('reject', callId);
  }
  terminate(_p: string, callId: string) {
    return this.record('terminate', callId);
  }
  async connect(_p: string, to: string, sdp: string, opaque?: string): Promise<{ callId: string }> {
    const callId = `wacid.out-${++this.n}`;
    this.actions.push({ action: 'connect', callId, sdp, to, ...(opaque ? { opaque } : {}) });
    this.emitter.emit('action', 'connect');
    const f = this.failOn.connect;
    if (f) throw f;
    return { callId };
  }
  async getCallPermissions(): Promise<CallPermissions> {
    this.permissionLookups++;
    const f = this.failOn.permissions;
    if (f) throw f;
    return this.permission;
  }
  async sendCallPermissionRequest(_p: string, to: string): Promise<{ messageId: string }> {
    this.actions.push({ action: 'permission_request', callId: '', to });
    return { messageId: 'wamid.1' };
  }
  waitFor(action: string): Promise<void> {
    return new Promise((r) => {
      const h = (a: string) => {
        if (a === action) {
          this.emitter.off('action', h);
          r();
        }
      };
      this.emitter.on('action', h);
    });
  }
  names(): string[] {
    return this.actions.map((a) => a.action);
  }
}

/** An INVITE from the PBX, as the bridge sees it; records what the bridge answered. */
export class FakeIncomingInvite implements IncomingInvite {
  responses: Array<{ status: number; reason: string; headers?: Record<string, string>; sdp?: string }> = [];
  dialog: FakeDialog | undefined;
  private cancelListeners: Array<() => void> = [];
  readonly to: NameAddr;
  constructor(
    readonly requestUri: string,
    readonly sdp: string | undefined = plainSdp('pbx-offer'),
    readonly source: { address: string; port: number; transport: 'udp' | 'tcp' } = { address: '127.0.0.2', port: 5060, transport: 'udp' },
    readonly from: NameAddr = { uri: 'sip:1001@pbx.test', displayName: 'Agent 1001' },
    private readonly headers: Record<string, string> = {},
    readonly callId = `pbx-${Math.random().toString(36).slice(2)}`,
  ) {
    this.to = { uri: requestUri };
  }
  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()];
  }
  progress(status: number, reason: string, sdp?: string): void {
    this.responses.push({ status, reason, ...(sdp ? { sdp } : {}) });
  }
  async accept(sdp: string): Promise<FakeDialog> {
    this.responses.push({ status: 200, reason: 'OK', sdp });
    this.dialog = new FakeDialog(this.callId, this.sdp);
    return this.dialog;
  }
  reject(status: number, reason: string, headers?: Record<string, string>): void {
    this.responses.push({ status, reason, ...(headers ? { headers } : {}) });
  }
  onCancel(l: () => void): void {
    this.cancelListeners.push(l);
  }
  cancel(): void {
    this.responses.push({ status: 487, reason: 'Request Terminated' });
    for (const l of this.cancelListeners) l();
  }
  statuses(): number[] {
    return this.responses.map((r) => r.status);
  }
}

/** Lets FakeSip hand an INVITE to the bridge's handler. */
export function deliverInvite(sip: FakeSip, inv: IncomingInvite): void {
  sip.inviteHandler?.(inv);
}
