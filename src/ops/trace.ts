/**
 * The story of each call as a ladder diagram: every webhook, Graph action, SIP message and media
 * milestone is an arrow between four columns (WhatsApp, bridge, PBX, media), with its time
 * offset from the call's start and, for messages, the text itself with secrets redacted.
 *
 * Bounded by design, since it runs at full call rate: the calls in progress plus the last
 * `maxRecent` ended calls, at most `maxEvents` arrows per call and `maxBodyBytes` per message.
 * Recording an arrow is a push onto an array; listeners (the live view's SSE streams) are told
 * synchronously and must be cheap.
 */

export type Column = 'whatsapp' | 'bridge' | 'pbx' | 'media';
export type ArrowKind = 'webhook' | 'graph' | 'sip' | 'media' | 'note';

export interface Arrow {
  /** Milliseconds since the call's first arrow. */
  t: number;
  from: Column;
  to: Column;
  kind: ArrowKind;
  /** What the arrow says: a SIP method or status, a Graph action, a webhook event, a milestone. */
  label: string;
  /** The message (SIP text, JSON body, SDP), redacted and capped; absent for milestones. */
  body?: string;
}

export interface CallSummary {
  /** The call's trace id: its WhatsApp call id, or the SIP Call-ID until one is known. */
  id: string;
  direction: 'inbound' | 'outbound' | 'click-to-call';
  waCallId?: string;
  sipCallId?: string;
  /** The WhatsApp user and the PBX side, as far as known. */
  whatsappUser?: string;
  pbx?: string;
  startedAt: number;
  endedAt?: number;
  cause?: string;
}

export interface CallTrace {
  summary: CallSummary;
  arrows: Arrow[];
  /** Arrows not kept because the call had too many. */
  droppedArrows: number;
}

export type TraceUpdate = { type: 'call'; call: CallSummary } | { type: 'arrow'; id: string; arrow: Arrow };

export interface TraceLimits {
  maxRecent: number;
  maxEvents: number;
  maxBodyBytes: number;
}

const DEFAULT_LIMITS: TraceLimits = { maxRecent: 500, maxEvents: 300, maxBodyBytes: 8192 };
const PENDING_MS = 10_000;
const PENDING_MAX = 2_000;
const PENDING_ARROWS = 8;
/**
 * Message text held for names no call has yet, all names together. Anyone who can reach the SIP
 * port can make such names (a Call-ID per request); past this budget, held arrows keep their
 * label but not their text.
 */
const PENDING_BYTES = 2 * 1024 * 1024;

/** SIP credentials and media keys never leave the bridge, even to its own admin. */
const SECRET_LINE = /^(authorization|proxy-authorization|www-authenticate|proxy-authenticate)\s*:.*$/gim;
/** To the end of the line, also inside JSON, where an SDP's line breaks are escaped and a quote ends the string. */
const SDP_SECRET = /a=(ice-pwd|crypto):.*?(?=\\r|\\n|[\r\n"]|$)/gim;

export function redact(text: string): string {
  return text.replace(SECRET_LINE, (l) => `${l.slice(0, l.indexOf(':') + 1)} [redacted]`).replace(SDP_SECRET, 'a=$1:[redacted]');
}

export class CallTraces {
  private readonly live = new Map<string, CallTrace>();
  /** Other names of a live call (SIP Call-ID, outbound opaque data) → its trace id. */
  private readonly aliases = new Map<string, string>();
  private readonly recent: CallTrace[] = [];
  private readonly listeners = new Set<(u: TraceUpdate) => void>();
  private readonly limits: TraceLimits;
  /**
   * Arrows for a name no live call has yet (the INVITE goes out before the bridge learns its
   * Call-ID; a connect webhook is recorded before its call starts), adopted when a call takes
   * that name. Bounded: a few seconds, a few thousand names.
   */
  private readonly pending = new Map<string, { at: number; bytes: number; arrows: Array<Omit<Arrow, 't'> & { at: number }> }>();
  private pendingBytes = 0;

  constructor(limits: Partial<TraceLimits> = {}, private readonly now: () => number = Date.now) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** A call begins; `key` is the name its first event is known by. Idempotent. */
  start(key: string, summary: Omit<CallSummary, 'id' | 'startedAt'>): void {
    if (this.resolve(key)) return;
    const early = this.pending.get(key);
    const startedAt = Math.min(this.now(), early?.at ?? Infinity);
    const trace: CallTrace = { summary: { ...summary, id: key, startedAt }, arrows: [], droppedArrows: 0 };
    this.live.set(key, trace);
    this.emit({ type: 'call', call: trace.summary });
    this.adopt(trace, key);
  }

  /** The live call known as `key` is also known as `other` (e.g. its SIP Call-ID). */
  alias(key: string, other: string, fields: Partial<Pick<CallSummary, 'waCallId' | 'sipCallId' | 'whatsappUser' | 'pbx'>> = {}): void {
    const t = this.resolve(key);
    if (!t || other === t.summary.id) return;
    this.aliases.set(other, t.summary.id);
    Object.assign(t.summary, fields);
    this.emit({ type: 'call', call: t.summary });
    this.adopt(t, other);
  }

  private adopt(t: CallTrace, name: string): void {
    const p = this.pending.get(name);
    if (!p) return;
    this.forget(name);
    for (const a of p.arrows) this.push(t, { t: Math.max(0, a.at - t.summary.startedAt), from: a.from, to: a.to, kind: a.kind, label: a.label, ...(a.body !== undefined ? { body: a.body } : {}) });
    t.arrows.sort((x, y) => x.t - y.t);
  }

  private hold(key: string, a: Omit<Arrow, 't'> & { at: number }): void {
    let p = this.pending.get(key);
    if (!p) {
      // Names nobody claimed within PENDING_MS were not calls (or not ours): forget them.
      for (const [k, v] of this.pending) {
        if (a.at - v.at <= PENDING_MS && this.pending.size < PENDING_MAX) break;
        this.forget(k);
      }
      p = { at: a.at, bytes: 0, arrows: [] };
      this.pending.set(key, p);
    }
    if (p.arrows.length >= PENDING_ARROWS) return;
    const size = a.body?.length ?? 0;
    if (this.pendingBytes + size > PENDING_BYTES) {
      const { body: _dropped, ...labelOnly } = a;
      p.arrows.push(labelOnly);
      return;
    }
    p.arrows.push(a);
    p.bytes += size;
    this.pendingBytes += size;
  }

  private forget(name: string): void {
    const p = this.pending.get(name);
    if (!p) return;
    this.pendingBytes -= p.bytes;
    this.pending.delete(name);
  }

  arrow(key: string, from: Column, to: Column, kind: ArrowKind, label: string, body?: string): void {
    const t = this.resolve(key);
    const at = this.now();
    const text = body === undefined ? undefined : capped(redact(body), this.limits.maxBodyBytes);
    const a = { from, to, kind, label: label.slice(0, 80), ...(text !== undefined ? { body: text } : {}) };
    if (!t) this.hold(key, { ...a, at });
    else this.push(t, { t: at - t.summary.startedAt, ...a });
  }

  private push(t: CallTrace, a: Arrow): void {
    if (t.arrows.length >= this.limits.maxEvents) {
      t.droppedArrows++;
      return;
    }
    t.arrows.push(a);
    if (this.listeners.size > 0) this.emit({ type: 'arrow', id: t.summary.id, arrow: a });
  }

  /** The call has ended: it moves to the bounded history. */
  end(key: string, cause: string): void {
    const t = this.resolve(key);
    if (!t) return;
    this.live.delete(t.summary.id);
    for (const [k, v] of this.aliases) if (v === t.summary.id) this.aliases.delete(k);
    t.summary.endedAt = this.now();
    t.summary.cause = cause;
    this.recent.push(t);
    if (this.recent.length > this.limits.maxRecent) this.recent.splice(0, this.recent.length - this.limits.maxRecent);
    this.emit({ type: 'call', call: t.summary });
  }

  get(id: string): CallTrace | undefined {
    return this.resolve(id) ?? this.recent.find((t) => t.summary.id === id || t.summary.sipCallId === id || t.summary.waCallId === id);
  }

  list(): { active: CallSummary[]; recent: CallSummary[] } {
    return { active: [...this.live.values()].map((t) => t.summary), recent: this.recent.map((t) => t.summary).reverse() };
  }

  /** Sizes, for the soak bench and the leak checks. */
  sizes(): { live: number; aliases: number; recent: number; pending: number; pendingBytes: number } {
    return { live: this.live.size, aliases: this.aliases.size, recent: this.recent.length, pending: this.pending.size, pendingBytes: this.pendingBytes };
  }

  subscribe(listener: (u: TraceUpdate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private resolve(key: string): CallTrace | undefined {
    return this.live.get(key) ?? this.live.get(this.aliases.get(key) ?? '');
  }

  private emit(u: TraceUpdate): void {
    for (const l of this.listeners) {
      try {
        l(u);
      } catch {
        this.listeners.delete(l); // a broken stream stops listening; the call goes on
      }
    }
  }
}

function capped(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}\n… (${s.length - max} more characters)`;
}
