/**
 * baresip's control connection (ctrl_tcp: netstring-framed JSON over loopback TCP) and the
 * events it delivers, for test/harness/baresip.ts.
 */
import net from 'node:net';

export type BaresipEventType =
  | 'CALL_INCOMING'
  | 'CALL_RINGING'
  | 'CALL_PROGRESS'
  | 'CALL_ESTABLISHED'
  | 'CALL_CLOSED'
  | 'CALL_RTPESTAB'
  | 'CALL_LOCAL_SDP'
  | 'CALL_REMOTE_SDP'
  | 'CALL_RTCP'
  | 'AUDIO_ERROR'
  | (string & {});

/** One event as sent by ctrl_tcp (`{"event":true,"type":...,"class":...,"param":...}`). */
export interface BaresipEvent {
  type: BaresipEventType;
  class?: string;
  /** e.g. the peer URI for CALL_* or the close reason for CALL_CLOSED. */
  param?: string;
  /** Call id. */
  id?: string;
  direction?: 'incoming' | 'outgoing' | string;
  peeruri?: string;
  accountaor?: string;
  /** Date.now() when received. */
  at: number;
  raw: Record<string, unknown>;
}

export interface BaresipEvents {
  /** Every event received so far, in order. */
  readonly all: readonly BaresipEvent[];
  /**
   * The next event of `type` not yet returned by an earlier `waitFor` of the same type
   * (events that arrived before the call count, so there is no race with the action that
   * triggered them). Rejects after `timeoutMs` (default 10 s) with the recent log.
   */
  waitFor(type: BaresipEventType, timeoutMs?: number): Promise<BaresipEvent>;
  /** Subscribe to events; returns an unsubscribe function. */
  on(listener: (ev: BaresipEvent) => void): () => void;
}

export interface BaresipCommandResult {
  ok: boolean;
  data: string;
}

/** A ctrl_tcp client: commands with tokens and their responses, events to `onEvent`. */
export class Ctrl {
  private buf: Buffer = Buffer.alloc(0);
  private nextToken = 1;
  private readonly pending = new Map<string, { resolve: (r: BaresipCommandResult) => void; reject: (e: Error) => void }>();
  closed = false;

  constructor(
    private readonly sock: net.Socket,
    private readonly onEvent: (ev: Record<string, unknown>) => void,
  ) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('close', () => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new Error('ctrl_tcp connection closed'));
      this.pending.clear();
    });
    sock.on('error', () => {
      /* handled by close */
    });
  }

  static connect(port: number, timeoutMs: number): Promise<net.Socket> {
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve, reject) => {
      const attempt = (): void => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', (e) => {
          s.destroy();
          if (Date.now() > deadline) reject(new Error(`ctrl_tcp connect to ${port} failed: ${e.message}`));
          else setTimeout(attempt, 100);
        });
      };
      attempt();
    });
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const colon = this.buf.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(this.buf.subarray(0, colon).toString('ascii'));
      if (!Number.isInteger(len) || len < 0) {
        this.buf = Buffer.alloc(0); // desynchronised: drop
        return;
      }
      if (this.buf.length < colon + 1 + len + 1) return;
      const payload = this.buf.subarray(colon + 1, colon + 1 + len).toString('utf8');
      this.buf = this.buf.subarray(colon + 2 + len); // skip the trailing ','
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(payload) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (msg.response === true) {
        const token = typeof msg.token === 'string' ? msg.token : '';
        const p = this.pending.get(token);
        if (p) {
          this.pending.delete(token);
          p.resolve({ ok: msg.ok === true, data: typeof msg.data === 'string' ? msg.data : '' });
        }
      } else if (msg.event === true || msg.event === 'true') {
        this.onEvent(msg);
      }
    }
  }

  send(command: string, params: string | undefined, timeoutMs: number): Promise<BaresipCommandResult> {
    if (this.closed) return Promise.reject(new Error('ctrl_tcp connection closed'));
    const token = `t${this.nextToken++}`;
    const body: Record<string, string> = { command, token };
    if (params !== undefined) body.params = params;
    const json = JSON.stringify(body);
    return new Promise<BaresipCommandResult>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(token);
        reject(new Error(`ctrl_tcp command '${command}' timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(token, {
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.sock.write(`${Buffer.byteLength(json)}:${json},`);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * The events of one baresip: `onRawEvent` takes what ctrl_tcp delivers, `events` serves the
 * tests. `name` and `log` describe the instance in a timeout's message.
 */
export function createEventLog(name: () => string, log: () => string): { events: BaresipEvents; onRawEvent: (raw: Record<string, unknown>) => void } {
  const all: BaresipEvent[] = [];
  const listeners = new Set<(ev: BaresipEvent) => void>();
  const consumed = new Map<string, number>(); // type -> index in `all` after the last returned one
  const onRawEvent = (raw: Record<string, unknown>): void => {
    const str = (k: string): string | undefined => (typeof raw[k] === 'string' ? (raw[k] as string) : undefined);
    const ev: BaresipEvent = {
      type: str('type') ?? '',
      at: Date.now(),
      raw,
      ...(str('class') !== undefined && { class: str('class') }),
      ...(str('param') !== undefined && { param: str('param') }),
      ...(str('id') !== undefined && { id: str('id') }),
      ...(str('direction') !== undefined && { direction: str('direction') }),
      ...(str('peeruri') !== undefined && { peeruri: str('peeruri') }),
      ...(str('accountaor') !== undefined && { accountaor: str('accountaor') }),
    };
    all.push(ev);
    for (const l of [...listeners]) l(ev);
  };
  const events: BaresipEvents = {
    all,
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    waitFor(type, timeoutMs = 10_000) {
      const take = (from: number): BaresipEvent | undefined => {
        for (let i = from; i < all.length; i++) {
          if (all[i]!.type === type) {
            consumed.set(type, i + 1);
            return all[i];
          }
        }
        return undefined;
      };
      const found = take(consumed.get(type) ?? 0);
      if (found) return Promise.resolve(found);
      return new Promise<BaresipEvent>((resolve, reject) => {
        const t = setTimeout(() => {
          listeners.delete(l);
          const seen = all.map((e) => e.type).join(', ') || 'none';
          reject(
            new Error(
              `${name()}: no ${type} within ${timeoutMs} ms (events so far: ${seen})\n--- log tail ---\n${log().slice(-3000)}`,
            ),
          );
        }, timeoutMs);
        const l = (): void => {
          const ev = take(consumed.get(type) ?? 0);
          if (ev) {
            clearTimeout(t);
            listeners.delete(l);
            resolve(ev);
          }
        };
        listeners.add(l);
      });
    },
  };
  return { events, onRawEvent };
}
