/**
 * A thin typed client of rtpengine's ng protocol (rtpengine-client over UDP): per-request
 * timeouts, `result: error` with its `error-reason`, `load limit` and transport errors all
 * become MediaError.
 */
import rtpengineClient, { type NgMessage, type NgTarget } from 'rtpengine-client';
import type { Logger } from 'pino';
import { MediaError } from '../types.js';

const ENGINE = 'rtpengine';
/** The ng socket's receive buffer (the kernel caps it at net.core.rmem_max). */
const NG_RECV_BUFFER = 4 * 1024 * 1024;

export type Command = 'offer' | 'answer' | 'delete' | 'list' | 'ping' | 'query' | 'playMedia' | 'stopMedia';

/** Thin typed wrapper: timeouts, error-reason and transport errors all become MediaError. */
/** Told of every ng round trip (the load bench times rtpengine's share of a call set-up). */
export type NgObserver = (command: Command, callId: string | undefined, ms: number, ok: boolean) => void;

export class NgClient {
  /** Optional; one call per request, after its reply or failure. */
  observer: NgObserver | undefined;
  /** When each rtpengine (host:port) last answered anything, on performance.now(). */
  private readonly lastReply = new Map<string, number>();
  private readonly client: InstanceType<typeof rtpengineClient.Client>;
  private closed = false;
  /** Replies that came after their request had timed out (dropped here; see the constructor). */
  lateReplies = 0;

  constructor(
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    this.client = new rtpengineClient.Client({ localAddress: '0.0.0.0', timeout: timeoutMs });
    // Socket errors are emitted as 'error': log, never crash.
    this.client.on('error', (err: unknown) => this.log.debug({ err: String(err) }, 'rtpengine ng client event'));
    // rtpengine-client 0.4 console.logs each reply whose request already timed out (the whole
    // reply through util.inspect, SDP or query statistics included) before emitting 'error'.
    // Late replies come in bursts exactly when rtpengine or this process is overloaded, and that
    // logging then cost the event loop most: 2,945 such lines in one 100/s bench run. Such a
    // reply is counted and dropped here instead; the request has already failed as a timeout.
    const inner = this.client as unknown as { messages: Map<string, unknown>; _onParsedMessage(obj: { id: string }): void };
    const parsed = inner._onParsedMessage.bind(inner);
    inner._onParsedMessage = (obj) => {
      if (inner.messages.has(obj.id)) return parsed(obj);
      if (this.lateReplies++ % 100 === 0) this.log.debug({ lateReplies: this.lateReplies }, 'rtpengine ng reply after its request timed out; dropped');
    };
    // Replies carry SDP (~1.5 kB): the default 208 kB receive buffer holds ~140 of them, and a
    // burst of set-ups (or a busy event loop) overflowed it: replies dropped, offers timed out.
    const socket = (this.client as unknown as { socket?: import('node:dgram').Socket }).socket;
    socket?.once('listening', () => {
      try {
        socket.setRecvBufferSize(NG_RECV_BUFFER);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'rtpengine ng socket: cannot enlarge the receive buffer');
      }
    });
  }

  async request(target: NgTarget, command: Command, params: NgMessage = {}): Promise<NgMessage> {
    if (this.closed) throw new MediaError(`rtpengine ${command}: engine closed`, ENGINE, 'closed');
    const started = performance.now();
    let reply: NgMessage;
    try {
      // Backstop in case the client's own timer never fires (e.g. a send error path).
      reply = await withTimeout(this.client[command](target, params), this.timeoutMs + 100);
    } catch (err) {
      this.observer?.(command, params['call-id'] as string | undefined, performance.now() - started, false);
      const msg = err instanceof Error ? err.message : String(err);
      const timeout = msg.includes('timeout');
      throw new MediaError(
        `rtpengine ${command} to ${target.host}:${target.port} failed: ${timeout ? `no reply within ${this.timeoutMs} ms` : msg}`,
        ENGINE,
        timeout ? 'timeout' : msg,
      );
    }
    const ms = performance.now() - started;
    this.lastReply.set(`${target.host}:${target.port}`, performance.now());
    this.observer?.(command, params['call-id'] as string | undefined, ms, reply['result'] === 'ok' || reply['result'] === 'pong');
    if (reply['result'] === 'error') {
      const reason = String(reply['error-reason'] ?? 'unknown error');
      throw new MediaError(`rtpengine ${command} failed: ${reason}`, ENGINE, reason);
    }
    if (reply['result'] === 'load limit') {
      throw new MediaError(`rtpengine ${command} refused: load limit`, ENGINE, 'load limit');
    }
    if (reply['warning']) this.log.warn({ command, warning: reply['warning'] }, 'rtpengine warning');
    this.log.debug({ command, ms: Math.round(ms * 100) / 100 }, 'rtpengine ng round trip');
    return reply;
  }

  /** Whether `target` answered any request (an error reply included) after `since`. */
  repliedSince(target: NgTarget, since: number): boolean {
    return (this.lastReply.get(`${target.host}:${target.port}`) ?? -Infinity) > since;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.client.close();
    } catch {
      /* already closed */
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

