import { EventEmitter } from 'node:events';
import type { MediaEngine, MediaSession } from '../../src/media/types.js';
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
import type { WhatsAppCallsApi } from '../../src/whatsapp/types.js';

/** A minimal plain RTP offer; `tag` lands in the session name so tests can tell offers apart. */
export function plainSdp(tag: string): string {
  return ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', `s=${tag}`, 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 30000 RTP/AVP 0 101', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\r\n');
}

/** In-process stand-ins for scenario tests of the call logic. Real peers are in test/e2e. */

export class FakeDialog extends EventEmitter implements SipDialog {
  state: 'confirmed' | 'terminated' = 'confirmed';
  byes = 0;
  reinvite: ReinviteHandler | undefined;
  constructor(
    readonly callId: string,
    readonly remoteSdp: string | undefined,
  ) {
    super();
  }
  readonly localTag = 'l';
  readonly remoteTag = 'r';
  async bye(): Promise<void> {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.byes++;
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
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
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
  onInvite(): void {}
  async close(): Promise<void> {}
  next(): Promise<FakeOutgoing> {
    return new Promise((r) => this.invited.once('invite', r));
  }
}

export class FakeMedia implements MediaEngine {
  readonly name = 'fake';
  readonly sessions = new Map<string, { closed: boolean; answers: string[] }>();
  failOffer = false;
  createSession(callId: string): MediaSession {
    const rec = { closed: false, answers: [] as string[] };
    this.sessions.set(callId, rec);
    const fail = this.failOffer;
    return {
      callId,
      offerFromWhatsApp: async (sdp) => {
        if (fail) throw new MediaError('rtpengine did not answer', 'fake', 'timeout');
        return plainSdp(sdp);
      },
      answerFromPbx: async (sdp) => {
        rec.answers.push(sdp);
        return `webrtc-answer`;
      },
      close: async () => {
        rec.closed = true;
      },
    };
  }
  async listSessions(): Promise<string[]> {
    return [...this.sessions].filter(([, r]) => !r.closed).map(([k]) => k);
  }
  async close(): Promise<void> {}
}

export class FakeWhatsApp implements WhatsAppCallsApi {
  actions: Array<{ action: string; callId: string; sdp?: string }> = [];
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
  async connect(): Promise<{ callId: string }> {
    throw new Error('not used');
  }
  names(): string[] {
    return this.actions.map((a) => a.action);
  }
}
