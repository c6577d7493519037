/**
 * One call's media session as the main thread sees it when the embedded engine runs in worker
 * threads (worker-pool.ts): each MediaSession method is one request to the session's worker.
 * The worker's failures and milestones arrive as events; `mediaStats()` stays synchronous and
 * readable after close() from the last snapshot (each second while the call is up, and the
 * final one the close reply carries).
 */
import type { Logger } from 'pino';
import { MediaError, type MediaFailure, type MediaMilestone, type MediaSession, type MediaStats } from '../types.js';
import type { ReplyOf, RpcClient, SessionRequest } from './worker-rpc.js';

const ENGINE = 'embedded';
const NO_STATS: MediaStats = { engine: ENGINE, whatsapp: { codec: 'opus', packetsIn: 0, packetsOut: 0 }, pbx: { codec: undefined, packetsIn: 0, packetsOut: 0 } };

export class WorkerSession implements MediaSession {
  private created: Promise<null> | undefined;
  private closing: Promise<void> | undefined;
  private dead: MediaError | undefined;
  private stats: MediaStats | undefined;
  private failure: MediaFailure | undefined;
  private failureListener: ((f: MediaFailure) => void) | undefined;
  private milestoneListener: ((m: MediaMilestone) => void) | undefined;

  constructor(
    readonly callId: string,
    private readonly rpc: RpcClient | undefined,
    private readonly log: Logger,
    private readonly forget: () => void,
  ) {}

  /** Send one request (the session is created in its worker first, once). */
  private async call<R extends SessionRequest>(req: R): Promise<ReplyOf<R>> {
    if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
    if (this.dead || !this.rpc) throw this.dead ?? new MediaError('no embedded media worker', ENGINE, 'engine-dead');
    this.created ??= this.rpc.request({ op: 'create', callId: this.callId });
    await this.created;
    const value = await this.rpc.request(req);
    // Closed while the worker was answering: the SDP describes what close() released.
    if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
    return value;
  }

  offerFromWhatsApp(sdp: string): Promise<string> {
    return this.call({ op: 'offerFromWhatsApp', callId: this.callId, sdp });
  }

  answerFromPbx(sdp: string): Promise<string> {
    return this.call({ op: 'answerFromPbx', callId: this.callId, sdp });
  }

  offerFromPbx(sdp: string): Promise<string> {
    return this.call({ op: 'offerFromPbx', callId: this.callId, sdp });
  }

  answerFromWhatsApp(sdp: string): Promise<string> {
    return this.call({ op: 'answerFromWhatsApp', callId: this.callId, sdp });
  }

  offerToWhatsApp(): Promise<string> {
    return this.call({ op: 'offerToWhatsApp', callId: this.callId });
  }

  async answerFromPbxToOffer(sdp: string): Promise<void> {
    await this.call({ op: 'answerFromPbxToOffer', callId: this.callId, sdp });
  }

  async pbxSending(sending: boolean): Promise<void> {
    try {
      await this.call({ op: 'pbxSending', callId: this.callId, sending });
    } catch (err) {
      this.log.debug({ callId: this.callId, err: (err as Error).message }, 'pbxSending not delivered');
    }
  }

  onFailure(listener: (failure: MediaFailure) => void): void {
    this.failureListener = listener;
    if (this.failure && !this.closing) this.tell(this.failure); // it failed before anyone listened
  }

  onMilestone(listener: (m: MediaMilestone) => void): void {
    this.milestoneListener = listener;
  }

  mediaStats(): MediaStats {
    return this.stats ?? NO_STATS;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.forget();
      if (this.dead || !this.rpc || !this.created) return;
      try {
        // A create that timed out here may still have been carried out by a slow worker: its
        // session would stay there for good. closeSession of a session it does not have is a no-op.
        await this.created.catch(() => undefined);
        const final = await this.rpc.request({ op: 'closeSession', callId: this.callId });
        if (final) this.stats = final;
      } catch (err) {
        this.log.debug({ callId: this.callId, err: (err as Error).message }, 'media session close in its worker failed');
      }
    })();
    return this.closing;
  }

  // ------------------------------------------------------------ from the pool

  /** The worker reported the session's failure (it logged it there). */
  failed(f: MediaFailure): void {
    if (this.failure || this.closing) return;
    this.failure = f;
    this.tell(f);
  }

  milestone(m: MediaMilestone): void {
    try {
      this.milestoneListener?.(m);
    } catch (err) {
      this.log.debug({ callId: this.callId, err }, 'milestone listener failed');
    }
  }

  snapshot(st: MediaStats): void {
    this.stats = st;
  }

  /** The session's worker is gone: every request fails, the call gets `engine-dead`. */
  engineDead(detail: string): void {
    this.dead ??= new MediaError(detail, ENGINE, 'engine-dead');
    this.forget();
    if (this.failure || this.closing) return;
    this.log.warn({ callId: this.callId, failure: 'engine-dead', detail }, 'media failed');
    this.failed({ kind: 'engine-dead', detail });
  }

  private tell(f: MediaFailure): void {
    try {
      this.failureListener?.(f);
    } catch (err) {
      this.log.error({ callId: this.callId, err: (err as Error).message }, 'media failure listener threw');
    }
  }
}
