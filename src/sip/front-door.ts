/**
 * The SIP front door: every datagram and every TCP byte passes here before the `sip` package's
 * parser sees it (wired in ./lib.ts). The package's parser is not safe on hostile input: its
 * message regex (`^\s*([\S\s]*?)\r\n\r\n`) is quadratic on leading whitespace, and its stream
 * parser buffers forever behind a non-numeric Content-Length. This module checks, in one linear
 * pass with `indexOf`, that the text is a plausible SIP message within hard limits, and only then
 * hands it on, so the package's regexes only ever see bounded, well-framed text:
 * - per-source rate limit (token bucket), checked first and in O(1), so a flood costs the flooder;
 * - message size (UDP: the datagram; TCP: headers + body), checked before any scan;
 * - a start line that begins with a token character (leading CRLF keep-alives are dropped,
 *   RFC 5626 section 3.5.1), a header section ended by CRLFCRLF;
 * - header count and header line length (folded lines count as one header);
 * - Content-Length: digits only, one value, within the body limit; over TCP it is required
 *   (RFC 3261 section 18.3) and frames the stream; over UDP a body shorter than it is dropped.
 * TCP connections are limited in number (overall and per source), a partial message must
 * complete within a deadline (slowloris), and idle connections are closed.
 */
import { performance } from 'node:perf_hooks';

export interface SipLimits {
  /** Largest UDP datagram / TCP message (headers + body), bytes. */
  maxMessageBytes: number;
  /** Largest body (Content-Length), bytes. */
  maxBodyBytes: number;
  /** Most header fields in one message. */
  maxHeaders: number;
  /** Longest header field (folded lines included) or start line, bytes. */
  maxHeaderBytes: number;
  /** Messages per second per source IP (token bucket refill). */
  ratePerSec: number;
  /** Bucket size: messages a source may send at once. */
  rateBurst: number;
  /** Sources tracked by the rate limiter; the oldest are forgotten beyond this. */
  maxTrackedSources: number;
  /** Accepted TCP connections at once, overall and per source IP. */
  maxTcpConnections: number;
  maxTcpConnectionsPerSource: number;
  /** A TCP connection with no traffic for this long is closed. */
  tcpIdleTimeoutMs: number;
  /** A message started on TCP must be complete within this time. */
  tcpMessageTimeoutMs: number;
}

export const DEFAULT_SIP_LIMITS: Readonly<SipLimits> = Object.freeze({
  maxMessageBytes: 16_384,
  maxBodyBytes: 12_288,
  maxHeaders: 64,
  maxHeaderBytes: 2048,
  ratePerSec: 200,
  rateBurst: 400,
  maxTrackedSources: 10_000,
  maxTcpConnections: 256,
  maxTcpConnectionsPerSource: 16,
  tcpIdleTimeoutMs: 120_000,
  tcpMessageTimeoutMs: 10_000,
});

export type DropReason =
  | 'rate'
  | 'too-large'
  | 'keepalive'
  | 'no-start-line'
  | 'no-header-end'
  | 'too-many-headers'
  | 'header-too-long'
  | 'bad-header'
  | 'bad-content-length'
  | 'body-too-large'
  | 'body-short'
  | 'tcp-connections'
  | 'tcp-timeout';

export type Checked = { ok: true; text: string } | { ok: false; reason: DropReason };

/**
 * RFC 3261 section 7.1 / 7.2 start lines, and a header name that is a token (25.1). These are the
 * shapes the `sip` parser accepts: text passing them is never half-parsed by it, so its stream
 * parser never keeps a stray body that would corrupt the framing of the next message.
 */
const REQUEST_LINE = /^[\w\-.!%*+`'~]+ [^\s]+ SIP\/\d\.\d$/;
const STATUS_LINE = /^SIP\/\d\.\d \d{3}(?: [^\r\n]*)?$/;
const HEADER_NAME = /^[\w\-.!%*+`'~]+[ \t]*:/;
/**
 * Bytes no valid header field holds: controls other than HTAB, a CR or LF that is not part of
 * a fold (CRLF + space/tab), runs of more than 64 spaces/tabs, and runs of more than 32 of the
 * same punctuation character. `sip`'s header regexes search with /g from every position, so such
 * runs inside one field cost them quadratic time (measured: 3-9 ms for a 2 KB field of bare CRs,
 * spaces or commas); no real PBX sends any of these.
 */
const BAD_FIELD = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n[ \t])|(?<!\r)\n|[ \t]{65}|([^\w\s])\1{32}/;
const CONTENT_LENGTH = /^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*$/i;
const CONTENT_LENGTH_NAME = /^(?:content-length|l)[ \t]*:/i;

export interface HeaderScan {
  ok: true;
  /** Offset of the CRLFCRLF that ends the headers; the body starts 4 bytes later. */
  headerEnd: number;
  contentLength: number | undefined;
}

/**
 * Check the header section of `text` (starting at offset 0, which must be the start line);
 * `headerEnd` is where the CRLFCRLF is. Linear in `headerEnd`.
 */
export function scanHeaders(text: string, headerEnd: number, limits: SipLimits): HeaderScan | { ok: false; reason: DropReason } {
  let headers = 0;
  let fieldStart = 0; // start of the current (possibly folded) field
  let contentLength: number | undefined;
  let pos = 0;
  while (pos <= headerEnd) {
    let eol = text.indexOf('\r\n', pos);
    if (eol === -1 || eol > headerEnd) eol = headerEnd;
    const next = eol + 2;
    const folded = next < headerEnd && (text[next] === ' ' || text[next] === '\t');
    if (!folded) {
      if (eol - fieldStart > limits.maxHeaderBytes) return { ok: false, reason: 'header-too-long' };
      const field = text.slice(fieldStart, eol);
      if (fieldStart === 0) {
        if (!REQUEST_LINE.test(field) && !STATUS_LINE.test(field)) return { ok: false, reason: 'no-start-line' };
      } else {
        if (++headers > limits.maxHeaders) return { ok: false, reason: 'too-many-headers' };
        if (!HEADER_NAME.test(field) || BAD_FIELD.test(field)) return { ok: false, reason: 'bad-header' };
        if (CONTENT_LENGTH_NAME.test(field)) {
          const m = CONTENT_LENGTH.exec(field);
          if (!m?.[1]) return { ok: false, reason: 'bad-content-length' };
          const n = Number(m[1]);
          if (contentLength !== undefined && contentLength !== n) return { ok: false, reason: 'bad-content-length' };
          if (n > limits.maxBodyBytes) return { ok: false, reason: 'body-too-large' };
          contentLength = n;
        }
      }
      fieldStart = next;
    } else if (next - fieldStart > limits.maxHeaderBytes) {
      return { ok: false, reason: 'header-too-long' };
    }
    pos = next;
  }
  return { ok: true, headerEnd, contentLength };
}

/** Index of the first non-CR/LF character (leading CRLFs are keep-alives, RFC 5626 section 3.5.1). */
function skipCrlf(text: string, from = 0): number {
  let i = from;
  while (i < text.length && (text.charCodeAt(i) === 13 || text.charCodeAt(i) === 10)) i++;
  return i;
}

/** One UDP datagram (latin1 text): the message to parse, or why it was dropped. */
export function checkDatagram(text: string, limits: SipLimits): Checked {
  if (text.length > limits.maxMessageBytes) return { ok: false, reason: 'too-large' };
  const start = skipCrlf(text);
  if (start === text.length) return { ok: false, reason: 'keepalive' };
  const msg = start === 0 ? text : text.slice(start);
  const headerEnd = msg.indexOf('\r\n\r\n');
  if (headerEnd === -1) return { ok: false, reason: 'no-header-end' };
  const scan = scanHeaders(msg, headerEnd, limits);
  if (!scan.ok) return scan;
  // RFC 3261 section 18.3: a datagram whose body is shorter than Content-Length is discarded.
  if (scan.contentLength !== undefined && msg.length - headerEnd - 4 < scan.contentLength) return { ok: false, reason: 'body-short' };
  return { ok: true, text: msg };
}

/**
 * Frames a TCP byte stream (latin1 text) into whole messages, each checked like a datagram.
 * Linear: the header-end search resumes where it stopped. After an error it stays failed.
 */
export class StreamFramer {
  private buf = '';
  private scanned = 0;
  private pending: { headerEnd: number; total: number } | undefined;
  failed: DropReason | undefined;

  constructor(private readonly limits: SipLimits) {}

  /** True while a message is partly received (used for the message deadline). */
  get partial(): boolean {
    return this.buf.length > 0;
  }

  /** Feed a chunk; returns the complete messages in it, or sets `failed`. */
  push(chunk: string): string[] {
    if (this.failed) return [];
    this.buf += chunk;
    const out: string[] = [];
    for (;;) {
      if (!this.pending) {
        const start = skipCrlf(this.buf);
        if (start > 0) {
          this.buf = this.buf.slice(start);
          this.scanned = 0;
        }
        if (this.buf.length === 0) return out;
        const headerEnd = this.buf.indexOf('\r\n\r\n', Math.max(0, this.scanned - 3));
        if (headerEnd === -1) {
          this.scanned = this.buf.length;
          if (this.buf.length > this.limits.maxMessageBytes) return this.fail('too-large');
          return out;
        }
        const scan = scanHeaders(this.buf, headerEnd, this.limits);
        if (!scan.ok) return this.fail(scan.reason);
        // RFC 3261 section 18.3: Content-Length is mandatory on a stream; it frames the message.
        if (scan.contentLength === undefined) return this.fail('bad-content-length');
        const total = headerEnd + 4 + scan.contentLength;
        if (total > this.limits.maxMessageBytes) return this.fail('too-large');
        this.pending = { headerEnd, total };
      }
      if (this.buf.length < this.pending.total) return out;
      out.push(this.buf.slice(0, this.pending.total));
      this.buf = this.buf.slice(this.pending.total);
      this.pending = undefined;
      this.scanned = 0;
    }
  }

  private fail(reason: DropReason): string[] {
    this.failed = reason;
    this.buf = '';
    return [];
  }
}

/** Per-source token buckets; the map is bounded (oldest sources are forgotten first). */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly maxSources: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  /** Take one token for `source`; false when it is over its rate. */
  take(source: string): boolean {
    const t = this.now();
    let b = this.buckets.get(source);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) * this.ratePerSec) / 1000);
      b.at = t;
      this.buckets.delete(source); // re-insert: Map order is the eviction order
    } else {
      b = { tokens: this.burst, at: t };
      if (this.buckets.size >= this.maxSources) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    }
    this.buckets.set(source, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }
}

const SLOW_MS = 2;

export interface FrontDoorStats {
  accepted: number;
  dropped: Partial<Record<DropReason, number>>;
  /** Longest time one datagram / TCP chunk took, from arrival to the end of its synchronous handling. */
  maxMessageMs: number;
  /** Datagrams / TCP chunks that took more than 2 ms. */
  slowMessages: number;
  tcpConnections: number;
  trackedSources: number;
}

/** Shared state of the front door of one stack: limits, rate limiter, counters. */
export class FrontDoor {
  readonly rate: RateLimiter;
  private readonly counters: FrontDoorStats = { accepted: 0, dropped: {}, maxMessageMs: 0, slowMessages: 0, tcpConnections: 0, trackedSources: 0 };
  private readonly connsBySource = new Map<string, number>();
  private readonly lastWarn = new Map<string, number>();

  constructor(
    readonly limits: SipLimits,
    private readonly warn: (fields: Record<string, unknown>, msg: string) => void,
  ) {
    this.rate = new RateLimiter(limits.ratePerSec, limits.rateBurst, limits.maxTrackedSources);
  }

  /** Count a drop; warn at most once per source and reason every 10 s, so a flood cannot flood the log. */
  drop(reason: DropReason, source: string, transport: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    if (reason === 'keepalive') return;
    const key = `${source}|${reason}`;
    const t = performance.now();
    const last = this.lastWarn.get(key);
    if (last !== undefined && t - last < 10_000) return;
    if (this.lastWarn.size >= 1000) this.lastWarn.clear();
    this.lastWarn.set(key, t);
    this.warn({ source, transport, reason, droppedSoFar: this.counters.dropped[reason] }, 'sip: message dropped at the front door');
  }

  /** Run the handling of one accepted message. */
  accept(fn: () => void): void {
    this.counters.accepted++;
    fn();
  }

  /** Time one datagram or TCP chunk, from arrival to the end of its synchronous handling (drops included). */
  timed(fn: () => void): void {
    const t0 = performance.now();
    try {
      fn();
    } finally {
      const ms = performance.now() - t0;
      if (ms > this.counters.maxMessageMs) this.counters.maxMessageMs = ms;
      if (ms > SLOW_MS) this.counters.slowMessages++;
    }
  }

  /** Admit a new TCP connection from `source`; call `release` when it closes. */
  openConnection(source: string): boolean {
    const mine = this.connsBySource.get(source) ?? 0;
    if (this.counters.tcpConnections >= this.limits.maxTcpConnections || mine >= this.limits.maxTcpConnectionsPerSource) return false;
    this.counters.tcpConnections++;
    this.connsBySource.set(source, mine + 1);
    return true;
  }

  releaseConnection(source: string): void {
    this.counters.tcpConnections--;
    const mine = (this.connsBySource.get(source) ?? 1) - 1;
    if (mine <= 0) this.connsBySource.delete(source);
    else this.connsBySource.set(source, mine);
  }

  stats(): FrontDoorStats {
    return { ...this.counters, dropped: { ...this.counters.dropped }, trackedSources: this.rate.size };
  }
}
