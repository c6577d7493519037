/**
 * The wire between the main thread and an embedded media worker (worker-pool.ts, worker-main.ts):
 * one discriminated union each way, and a typed request/response client with request ids, a
 * timeout per request, and the worker's errors re-created as MediaError with the same reason.
 *
 * Main -> worker: `{ kind: 'req', id, req }`. Worker -> main: the reply to a request, or an event
 * nobody asked for (a session's failure or milestone, the periodic stats that double as the
 * worker's heartbeat, a log line).
 */
import { MediaError, type EngineReadiness, type MediaFailure, type MediaMilestone, type MediaStats } from '../types.js';
import type { EmbeddedEngineOptions } from './engine.js';
import type { SessionStats } from './session.js';

const ENGINE = 'embedded';

/** What the main thread asks of one session in a worker. */
export type SessionRequest =
  | { op: 'create'; callId: string }
  | { op: 'offerFromWhatsApp'; callId: string; sdp: string }
  | { op: 'answerFromPbx'; callId: string; sdp: string }
  | { op: 'offerFromPbx'; callId: string; sdp: string }
  | { op: 'answerFromWhatsApp'; callId: string; sdp: string }
  | { op: 'offerToWhatsApp'; callId: string }
  | { op: 'answerFromPbxToOffer'; callId: string; sdp: string }
  | { op: 'pbxSending'; callId: string; sending: boolean }
  | { op: 'closeSession'; callId: string }
  | { op: 'sessionStats'; callId: string };

/** What the main thread asks of a worker's engine. */
export type EngineRequest = { op: 'listSessions' } | { op: 'readiness' } | { op: 'shutdown' };

export type WorkerRequest = SessionRequest | EngineRequest;

/** The reply value of each request. */
export interface Replies {
  create: null;
  offerFromWhatsApp: string;
  answerFromPbx: string;
  offerFromPbx: string;
  answerFromWhatsApp: string;
  offerToWhatsApp: string;
  answerFromPbxToOffer: null;
  pbxSending: null;
  /** The session's final stats (undefined: it was not there). */
  closeSession: MediaStats | null;
  sessionStats: SessionStats | null;
  listSessions: string[];
  readiness: EngineReadiness;
  shutdown: null;
}

export type Op = WorkerRequest['op'];
export type ReplyOf<R extends WorkerRequest> = Replies[R['op']];

/** An error as it crosses the thread boundary. */
export interface WireError {
  message: string;
  reason: string | undefined;
}

export type ToWorker = { kind: 'req'; id: number; req: WorkerRequest };

export type FromWorker =
  | { kind: 'ready'; threadId: number }
  | { kind: 'res'; id: number; ok: true; value: Replies[Op] }
  | { kind: 'res'; id: number; ok: false; error: WireError }
  | { kind: 'failure'; callId: string; failure: MediaFailure }
  | { kind: 'milestone'; callId: string; milestone: MediaMilestone }
  /** Every live session's stats, every second; sent (empty) with no session too: the heartbeat. */
  | { kind: 'stats'; stats: Array<[string, MediaStats]> }
  /** One pino JSON line written in the worker. */
  | { kind: 'log'; line: string };

export type Reply = Extract<FromWorker, { kind: 'res' }>;

/** What a worker is started with (`workerData`): the engine's options without the logger. */
export interface WorkerInit {
  index: number;
  logLevel: string;
  engine: Omit<EmbeddedEngineOptions, 'logger'>;
  statsIntervalMs: number;
}

/** A thrown value as it goes back over the wire (a MediaError keeps its reason). */
export function toWire(err: unknown): WireError {
  if (err instanceof MediaError) return { message: err.message, reason: err.reason };
  return { message: err instanceof Error ? err.message : String(err), reason: undefined };
}

/** The error a caller sees: the worker's error as a MediaError with the same reason. */
export function fromWire(e: WireError): MediaError {
  return new MediaError(e.message, ENGINE, e.reason);
}

interface Pending {
  op: Op;
  resolve: (v: Replies[Op]) => void;
  reject: (e: MediaError) => void;
  timer: NodeJS.Timeout;
}

/**
 * The caller's side of the RPC. A request that gets no reply within its timeout rejects with
 * reason `timeout`; a reply that comes later (or after `close`) is dropped. `close(err)` rejects
 * everything pending with `err` and refuses new requests with it.
 */
export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedWith: MediaError | undefined;

  constructor(
    private readonly post: (m: ToWorker) => void,
    private readonly timeoutMs: number,
  ) {}

  /** Requests still waiting for their reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  request<R extends WorkerRequest>(req: R, timeoutMs = this.timeoutMs): Promise<ReplyOf<R>> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    return new Promise<ReplyOf<R>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new MediaError(`embedded media worker: ${req.op} got no reply within ${timeoutMs} ms`, ENGINE, 'timeout'));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { op: req.op, resolve: resolve as (v: Replies[Op]) => void, reject, timer });
      try {
        this.post({ kind: 'req', id, req });
      } catch (err) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new MediaError(`embedded media worker: ${req.op} could not be sent: ${(err as Error).message}`, ENGINE, 'engine-dead'));
      }
    });
  }

  /** A reply from the worker. Unknown ids (timed out, or after close) are ignored. */
  settle(m: Reply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.value);
    else p.reject(fromWire(m.error));
  }

  close(err: MediaError): void {
    this.closedWith ??= err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}
