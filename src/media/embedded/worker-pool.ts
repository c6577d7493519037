/**
 * The embedded engine on every core: a MediaEngine that runs N worker threads, each with today's
 * EmbeddedEngine (worker-main.ts), and places each new session on the worker holding the fewest.
 * Signalling stays on the main thread; a session here is a thin proxy (worker-session.ts) whose
 * every method is one request over worker-rpc.ts.
 *
 * - Each worker gets its own slice of the plain RTP port range and of the ICE range, so two
 *   workers never race for a port.
 * - A worker that dies (crash, process.exit inside it, terminate) or stops answering (no
 *   heartbeat for `hangMs`): each of its sessions fails with `engine-dead` (the bridge ends both
 *   legs), its requests reject at once, its ports are free again with its thread, and a
 *   replacement starts on the same slice.
 * - Its pino lines are written by the main thread's logger (same destination, with the call's ids).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { MediaError, type EngineReadiness, type MediaEngine, type MediaSession } from '../types.js';
import type { EmbeddedEngineOptions } from './engine.js';
import type { SessionStats } from './session.js';
import { WorkerSession } from './worker-session.js';
import { RpcClient, type FromWorker, type WorkerInit } from './worker-rpc.js';

const ENGINE = 'embedded';

export interface WorkerPoolOptions extends EmbeddedEngineOptions {
  /** Worker threads (>= 1). */
  workers: number;
  /** A request with no reply after this long rejects (reason `timeout`); default 10 s. */
  rpcTimeoutMs?: number;
  /** A worker silent this long (no heartbeat) is terminated and replaced; default 10 s. */
  hangMs?: number;
  /** How often a worker sends every session's stats (its heartbeat); default 1 s. */
  statsIntervalMs?: number;
  /** A worker not ready this long after it was started is terminated (and retried); default 30 s. */
  startTimeoutMs?: number;
}

/** A worker that ran this long before it died is restarted at once; one that died sooner backs off. */
const CLEAN_RUN_MS = 30_000;
/** The back-off after the n-th short-lived worker in a row: 1 s, 2 s, 4 s ... at most 30 s. */
const restartDelayMs = (failures: number): number => (failures === 0 ? 0 : Math.min(30_000, 500 * 2 ** failures));

/** Split [min, max] into `n` disjoint slices; `even` starts each slice on an even port (RTP/RTCP pairs). */
export function splitRange(min: number, max: number, n: number, even: boolean): Array<[number, number]> {
  const size = Math.floor((max - min + 1) / n);
  const step = even ? size - (size % 2) : size;
  if (step < (even ? 2 : 1)) throw new MediaError(`port range ${min}-${max} is too small for ${n} media workers`, ENGINE, 'config');
  const first = even && min % 2 !== 0 ? min + 1 : min;
  return Array.from({ length: n }, (_, i) => [first + i * step, i === n - 1 ? max : first + (i + 1) * step - 1]);
}

/** The worker's entry: the compiled .js in production, the .ts source under tsx/vitest. */
function workerEntry(): { file: URL; ts: boolean } {
  const ts = import.meta.url.endsWith('.ts');
  return { file: new URL(`./worker-main.${ts ? 'ts' : 'js'}`, import.meta.url), ts };
}

/** tsx's ESM API (`tsx/esm/api`, its `import` export), found from its package.json beside this file. */
function tsxEsmApi(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const rel = pkg.exports['./esm/api']?.import.default;
  if (!rel) throw new MediaError('tsx has no ./esm/api export: cannot start a media worker from .ts sources', ENGINE, 'config');
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}

function spawnWorker(init: WorkerInit): Worker {
  const { file, ts } = workerEntry();
  if (!ts) return new Worker(file, { workerData: init });
  // Source: the worker registers tsx's loader in its own thread, then imports the entry.
  const boot = `import(${JSON.stringify(tsxEsmApi())}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); })`;
  return new Worker(boot, { eval: true, workerData: init });
}

/** One worker thread and what it holds. */
class Slot {
  worker: Worker | undefined;
  rpc: RpcClient | undefined;
  threadId = 0;
  up = false;
  upSince = 0;
  lastHeard = 0;
  /** Why the pool itself is terminating this worker (it stopped answering), if it is. */
  killed: string | undefined;
  readonly sessions = new Set<WorkerSession>();
  /** Workers in a row that died within CLEAN_RUN_MS of being ready (or before), for the back-off. */
  failures = 0;
  restartTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly index: number,
    readonly init: WorkerInit,
  ) {}
}

export class EmbeddedWorkerPool implements MediaEngine {
  readonly name = ENGINE;
  private readonly slots: Slot[];
  private readonly hangTimer: NodeJS.Timeout;
  private closed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly opts: WorkerPoolOptions,
    private readonly log: Logger,
  ) {
    const { logger: _logger, workers, rpcTimeoutMs: _r, hangMs: _h, statsIntervalMs, startTimeoutMs: _s, ...engine } = opts;
    const rtp = splitRange(opts.portMin, opts.portMax, workers, true);
    const ice = opts.icePortRange ? splitRange(opts.icePortRange[0], opts.icePortRange[1], workers, false) : undefined;
    this.slots = rtp.map(
      ([portMin, portMax], index) =>
        new Slot(index, {
          index,
          logLevel: log.level,
          statsIntervalMs: statsIntervalMs ?? 1000,
          engine: { ...engine, portMin, portMax, ...(ice ? { icePortRange: ice[index]! } : {}) },
        }),
    );
    this.hangTimer = setInterval(() => this.checkHung(), 1000);
    this.hangTimer.unref();
  }

  /** Start the pool; resolves when every worker is up (rejects if one cannot start). */
  static async start(opts: WorkerPoolOptions): Promise<EmbeddedWorkerPool> {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new MediaError(`bad media worker count ${opts.workers}`, ENGINE, 'config');
    const pool = new EmbeddedWorkerPool(opts, opts.logger.child({ engine: ENGINE }));
    try {
      await Promise.all(pool.slots.map((s) => pool.startSlot(s)));
    } catch (err) {
      await pool.close();
      throw new MediaError(`embedded media workers did not start: ${(err as Error).message}`, ENGINE, 'engine-dead');
    }
    pool.log.info({ workers: pool.slots.length, slices: pool.slots.map((s) => `${s.init.engine.portMin}-${s.init.engine.portMax}`) }, 'embedded media workers up');
    return pool;
  }

  private get rpcTimeoutMs(): number {
    return this.opts.rpcTimeoutMs ?? 10_000;
  }

  private startSlot(slot: Slot): Promise<void> {
    const worker = spawnWorker(slot.init);
    const rpc = new RpcClient((m) => worker.postMessage(m), this.rpcTimeoutMs);
    slot.worker = worker;
    slot.rpc = rpc;
    slot.killed = undefined;
    slot.lastHeard = performance.now();
    const wlog = this.log.child({ mediaWorker: slot.index });
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (slot.worker !== worker) return; // a replaced worker's last words: its rpc and calls are gone
        slot.lastHeard = performance.now();
        if (m.kind === 'ready') {
          slot.up = true;
          slot.upSince = slot.lastHeard;
          slot.threadId = m.threadId;
          resolve();
        } else this.onMessage(slot, m, wlog);
      });
      let crash = '';
      worker.on('error', (err) => {
        crash = `: ${err.message}`;
        wlog.error({ err: err.message, stack: err.stack }, 'media worker crashed');
      });
      worker.on('exit', (code) => {
        const wasUp = slot.up;
        this.onExit(slot, worker, code);
        if (!wasUp) reject(new Error(`media worker ${slot.index} exited with code ${code} before it was ready${crash}`));
      });
    });
  }

  private onMessage(slot: Slot, m: Exclude<FromWorker, { kind: 'ready' }>, wlog: Logger): void {
    switch (m.kind) {
      case 'res':
        slot.rpc?.settle(m);
        return;
      case 'failure':
        sessionOn(slot, m.callId)?.failed(m.failure);
        return;
      case 'milestone':
        sessionOn(slot, m.callId)?.milestone(m.milestone);
        return;
      case 'stats':
        for (const [id, st] of m.stats) sessionOn(slot, id)?.snapshot(st);
        return;
      case 'log':
        forwardLog(wlog, m.line);
        return;
    }
  }

  /** The worker's thread ended: its sessions fail with engine-dead, a replacement starts. */
  private onExit(slot: Slot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    const wasUp = slot.up;
    slot.up = false;
    slot.worker = undefined;
    const detail = `embedded media worker ${slot.index} (thread ${slot.threadId}) ${slot.killed ?? `exited with code ${code}`}`;
    slot.rpc?.close(new MediaError(detail, ENGINE, 'engine-dead'));
    const lost = [...slot.sessions];
    slot.sessions.clear();
    for (const s of lost) s.engineDead(detail);
    if (this.closed) return;
    // A worker that dies soon after it is up (a crash at start, on its first call) must not be
    // replaced at once, over and over: each start costs a core for a while.
    const ranMs = wasUp ? Math.round(performance.now() - slot.upSince) : 0;
    slot.failures = wasUp && ranMs >= CLEAN_RUN_MS ? 0 : slot.failures + 1;
    const delay = restartDelayMs(slot.failures);
    this.log.error({ mediaWorker: slot.index, code, ranMs, sessionsLost: lost.length, restartInMs: delay }, 'media worker died; its calls end, a replacement starts');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.closed) return;
      this.startSlot(slot).then(
        () => this.log.info({ mediaWorker: slot.index }, 'media worker replaced'),
        (err: Error) => {
          if (!this.closed) this.log.error({ mediaWorker: slot.index, err: err.message }, 'media worker replacement failed');
        },
      );
    }, delay);
    slot.restartTimer.unref();
  }

  /** Terminate a worker silent for hangMs, or not ready startTimeoutMs after it was started. */
  private checkHung(): void {
    const hangMs = this.opts.hangMs ?? 10_000;
    const startMs = this.opts.startTimeoutMs ?? 30_000;
    const now = performance.now();
    for (const slot of this.slots) {
      if (!slot.worker || slot.killed) continue;
      const silentMs = Math.round(now - slot.lastHeard);
      if (slot.up && silentMs > hangMs) {
        slot.killed = `stopped answering for ${silentMs} ms and was terminated`;
        this.log.error({ mediaWorker: slot.index, silentMs }, 'media worker stopped answering; terminating it');
      } else if (!slot.up && silentMs > startMs) {
        slot.killed = `was not ready ${silentMs} ms after it was started and was terminated`;
        this.log.error({ mediaWorker: slot.index, silentMs }, 'media worker did not start; terminating it');
      } else continue;
      void slot.worker.terminate();
    }
  }

  createSession(callId: string): MediaSession {
    if (this.closed) throw new MediaError('engine closed', ENGINE, 'closed');
    let best: Slot | undefined;
    for (const s of this.slots) if (s.up && !s.killed && (!best || s.sessions.size < best.sessions.size)) best = s;
    const session = new WorkerSession(callId, best?.rpc, this.log, () => this.forget(session, best));
    if (!best) {
      session.engineDead('no embedded media worker is up');
      return session;
    }
    best.sessions.add(session);
    return session;
  }

  private forget(s: WorkerSession, slot: Slot | undefined): void {
    slot?.sessions.delete(s);
  }

  /** The worker each live session runs on (index), as this side placed them. */
  placement(): Map<string, number> {
    const m = new Map<string, number>();
    for (const slot of this.slots) for (const s of slot.sessions) m.set(s.callId, slot.index);
    return m;
  }

  /** Each worker's own list of its sessions, and its thread (tests, bench). */
  async workerSessions(): Promise<Array<{ worker: number; threadId: number; up: boolean; sessions: string[] }>> {
    return Promise.all(
      this.slots.map(async (s) => ({
        worker: s.index,
        threadId: s.threadId,
        up: s.up,
        sessions: s.up && s.rpc ? await s.rpc.request({ op: 'listSessions' }).catch(() => []) : [],
      })),
    );
  }

  /** Counters of a live session, from its worker (tests, bench). */
  async sessionStats(callId: string): Promise<SessionStats | undefined> {
    const slot = this.slots.find((s) => [...s.sessions].some((x) => x.callId === callId));
    if (!slot?.rpc) return undefined;
    return (await slot.rpc.request({ op: 'sessionStats', callId })) ?? undefined;
  }

  /** Terminate one worker as a crash would (tests): its calls get engine-dead, a replacement starts. */
  async killWorker(index: number): Promise<void> {
    await this.slots[index]?.worker?.terminate();
  }

  async listSessions(): Promise<string[]> {
    return (await this.workerSessions()).flatMap((w) => w.sessions);
  }

  async readiness(): Promise<EngineReadiness> {
    if (this.closed) return { ready: false, reason: 'embedded engine closed' };
    const per = await Promise.all(
      this.slots.map(async (s) => (s.up && s.rpc ? await s.rpc.request({ op: 'readiness' }, 2000).catch(() => undefined) : undefined)),
    );
    let pairs = 0;
    let free = 0;
    let up = 0;
    for (const r of per) {
      if (!r) continue;
      up++;
      pairs += Number(r.detail?.portPairs ?? 0);
      free += Number(r.detail?.freePortPairs ?? 0);
    }
    // Each worker's own count of its sessions (null: down).
    const sessionsPerWorker = per.map((r) => (r ? Number(r.detail?.sessions ?? 0) : null));
    const detail = { workers: this.slots.length, workersUp: up, portPairs: pairs, freePortPairs: free, sessions: this.slots.reduce((n, s) => n + s.sessions.size, 0), sessionsPerWorker };
    if (up === 0) return { ready: false, reason: 'no embedded media worker is up', detail };
    if (free === 0) return { ready: false, reason: `no free RTP port pair (${pairs} in use)`, detail };
    return up < this.slots.length ? { ready: true, reason: `${this.slots.length - up} of ${this.slots.length} media workers down`, detail } : { ready: true, detail };
  }

  /** Idempotent: a second call resolves when the first has finished. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.hangTimer);
    // Every session, by worker (two may share a call id): closed first, so none is told engine-dead by the shutdown.
    await Promise.all(this.slots.flatMap((slot) => [...slot.sessions]).map((s) => s.close()));
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.restartTimer) clearTimeout(s.restartTimer);
        const w = s.worker;
        if (!w) return;
        await s.rpc?.request({ op: 'shutdown' }, 3000).catch(() => undefined);
        await w.terminate();
      }),
    );
  }
}

/**
 * The session a worker's event names, among that worker's own: the same call id may be live on
 * another worker too (a call id the bridge saw again), whose call must not end for this one.
 */
function sessionOn(slot: Slot, callId: string): WorkerSession | undefined {
  for (const s of slot.sessions) if (s.callId === callId) return s;
  return undefined;
}

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** Write a worker's pino line with the main logger: its fields (callId...) and level kept. */
function forwardLog(log: Logger, line: string): void {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    log.warn({ line: line.slice(0, 500) }, 'unreadable log line from a media worker');
    return;
  }
  const { level, msg, time: _t, pid: _p, hostname: _h, name: _n, mediaWorker: _w, ...fields } = rec;
  // What the main logger binds already (engine: 'embedded') would be written twice: a JSON line
  // with a duplicate key, which strict log parsers refuse.
  for (const k of Object.keys(log.bindings())) delete fields[k];
  const label = LEVELS[typeof level === 'number' ? level : 30] ?? 'info';
  log[label](fields, typeof msg === 'string' ? msg : '');
}
