/**
 * Call records: one JSON object per call, either direction, written when the call has ended.
 * Records go to a JSON-lines file that is size-bounded (rotated to `.1` … `.N`, the oldest
 * dropped) and, optionally, are POSTed to a URL with bounded retries. Neither sink can hold a
 * call up or grow without bound: writes are queued in order, and a POST queue that overflows
 * drops its oldest records, counted and logged.
 */
import { appendFile, rename, rm, stat } from 'node:fs/promises';
import type { Logger } from '../util/log.js';

export interface MediaLegStats {
  codec: string | undefined;
  packetsIn: number;
  packetsOut: number;
  /** Packets lost on the way in / expected, 0..1 (absent where the engine can't tell). */
  lossRatio?: number;
  jitterMs?: number;
  mos?: number;
}

export interface CallRecord {
  direction: 'inbound' | 'outbound' | 'click-to-call';
  waCallId: string | undefined;
  sipCallId: string | undefined;
  phoneNumberId: string | undefined;
  /** E.164 digits of the WhatsApp user, and the business number. */
  whatsappUser: string | undefined;
  businessNumber: string | undefined;
  /** The PBX target (inbound) or the dialled extension (outbound). */
  pbxTarget: string | undefined;
  /** The routing rule that matched (inbound), by its index or name. */
  route: string | undefined;
  /** ISO 8601 timestamps; ringing/answered absent when the call never got there. */
  receivedAt: string;
  ringingAt?: string;
  answeredAt?: string;
  endedAt: string;
  /** Seconds from answer to end (0 if never answered). */
  durationSec: number;
  /** answered, unanswered (rang, failed or was cancelled first), refused (before it started). */
  outcome: string;
  /** Why the call ended, in a word (e.g. 'caller-hung-up', 'pbx-busy', 'whatsapp-media-timeout'). */
  cause: string;
  /** What the bridge sent WhatsApp at the end: reject, terminate, or none (WhatsApp ended it). */
  whatsappEnd: { action: string };
  /** What the SIP leg got: cancel, bye, none, or a final status to the PBX's INVITE. */
  sipEnd: { message: string; status?: number | undefined };
  /** The bridge's own set-up stages (ms): webhookToInvite, pbxAnswerToAccept, … */
  setupMs?: Record<string, number>;
  media?: { engine: string; whatsapp: MediaLegStats; pbx: MediaLegStats };
}

export interface CdrSink {
  write(rec: CallRecord): void;
  /** Waits for what was written so far to be flushed (file) or given up on (POST). */
  close(): Promise<void>;
}

export interface JsonlFileOptions {
  path: string;
  /** Rotate once the file reaches this size. */
  maxBytes: number;
  /** Rotated files kept (`path.1` newest … `path.N` oldest). */
  keep: number;
}

/** A JSON-lines file, rotated by size. Appends are serialised so records never interleave. */
export class JsonlCdrFile implements CdrSink {
  private chain: Promise<void> = Promise.resolve();
  private size: number | undefined;

  constructor(
    private readonly opts: JsonlFileOptions,
    private readonly log: Logger,
  ) {}

  write(rec: CallRecord): void {
    const line = `${JSON.stringify(rec)}\n`;
    this.chain = this.chain
      .then(() => this.append(line))
      .catch((err: unknown) => this.log.error({ err, waCallId: rec.waCallId, sipCallId: rec.sipCallId }, 'call record not written'));
  }

  private async append(line: string): Promise<void> {
    const bytes = Buffer.byteLength(line);
    this.size ??= await stat(this.opts.path).then((s) => s.size, () => 0);
    if (this.size > 0 && this.size + bytes > this.opts.maxBytes) await this.rotate();
    await appendFile(this.opts.path, line, { mode: 0o640 });
    this.size += bytes;
  }

  private async rotate(): Promise<void> {
    const { path, keep } = this.opts;
    if (keep <= 0) await rm(path, { force: true });
    else {
      await rm(`${path}.${keep}`, { force: true });
      for (let i = keep - 1; i >= 1; i--) await rename(`${path}.${i}`, `${path}.${i + 1}`).catch(() => undefined);
      await rename(path, `${path}.1`);
    }
    this.size = 0;
  }

  close(): Promise<void> {
    return this.chain;
  }
}

export interface HttpPostOptions {
  url: string;
  /** Extra headers, e.g. an Authorization for the receiving CRM. */
  headers?: Record<string, string>;
  /** Attempts per record (first try included). */
  attempts: number;
  /** First retry delay; doubled each time, with jitter. */
  backoffMs: number;
  timeoutMs: number;
  /** Records waiting to be posted; beyond it the oldest is dropped. */
  maxQueue: number;
}

/** POSTs each record as JSON; retries on network errors, 408, 429 and 5xx. One request at a time. */
export class HttpCdrPoster implements CdrSink {
  private readonly queue: CallRecord[] = [];
  private running: Promise<void> | undefined;
  dropped = 0;
  failed = 0;
  posted = 0;

  constructor(
    private readonly opts: HttpPostOptions,
    private readonly log: Logger,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  write(rec: CallRecord): void {
    if (this.queue.length >= this.opts.maxQueue) {
      const old = this.queue.shift()!;
      this.dropped++;
      this.log.error({ waCallId: old.waCallId, sipCallId: old.sipCallId, maxQueue: this.opts.maxQueue }, 'call record POST queue full: oldest record dropped');
    }
    this.queue.push(rec);
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  private async drain(): Promise<void> {
    for (let rec = this.queue.shift(); rec; rec = this.queue.shift()) await this.post(rec);
  }

  private async post(rec: CallRecord): Promise<void> {
    const ids = { waCallId: rec.waCallId, sipCallId: rec.sipCallId };
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      let why: string;
      try {
        const res = await fetch(this.opts.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...this.opts.headers },
          body: JSON.stringify(rec),
          signal: AbortSignal.timeout(this.opts.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.posted++;
          return;
        }
        why = `HTTP ${res.status}`;
        if (!(res.status === 408 || res.status === 429 || res.status >= 500)) break; // the receiver refuses it: no retry
      } catch (err) {
        why = (err as Error).message;
      }
      if (attempt === this.opts.attempts) {
        this.log.warn({ ...ids, attempt, why }, 'call record POST failed');
        break;
      }
      const delay = this.opts.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random());
      this.log.warn({ ...ids, attempt, why, retryInMs: Math.round(delay) }, 'call record POST failed, retrying');
      await this.sleep(delay);
    }
    this.failed++;
    this.log.error({ ...ids, url: this.opts.url }, 'call record not posted');
  }

  /** Waits for what is queued, retries included (bounded by attempts × backoff). */
  async close(): Promise<void> {
    await this.running;
  }
}

/** Every configured sink, as one. */
export class CdrSinks implements CdrSink {
  constructor(private readonly sinks: CdrSink[]) {}
  write(rec: CallRecord): void {
    for (const s of this.sinks) s.write(rec);
  }
  async close(): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.close()));
  }
}
