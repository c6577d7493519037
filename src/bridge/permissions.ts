import type { Logger } from '../util/log.js';
import type { WaPermissionReplyEvent, WhatsAppCallingApi } from '../whatsapp/types.js';

export interface PermissionAnswer {
  canStartCall: boolean;
  canRequestPermission: boolean;
  status: string;
  /** Where the answer came from. */
  source: 'graph' | 'cache' | 'reply-webhook' | 'unknown';
}

/** Answers shared by several bridge instances (Redis); each entry expires on its own. */
export interface PermissionStore {
  get(key: string): Promise<PermissionAnswer | undefined>;
  put(key: string, answer: PermissionAnswer, ttlMs: number): Promise<void>;
  delete(key: string): Promise<void>;
}

/**
 * Whether the business may call a WhatsApp user (`start_call.can_perform_action`), cached for a
 * short while (Graph allows 100 permission look-ups per second) and updated by the user's
 * `call_permission_reply` webhook. When Graph cannot be asked, the call goes ahead: `connect`
 * itself answers 138006 if there is no permission.
 */
export class PermissionCache {
  private readonly entries = new Map<string, { answer: PermissionAnswer; expires: number }>();
  private shared: PermissionStore | undefined;

  constructor(
    private readonly api: Pick<WhatsAppCallingApi, 'getCallPermissions'>,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** Most users remembered; past it the oldest entry goes first. Expired entries go on every write. */
    private readonly maxEntries = 10_000,
  ) {}

  /** Also keep answers in `store`, seen by every instance of a cluster (the local map stays a first level). */
  useSharedStore(store: PermissionStore): void {
    this.shared = store;
  }

  private share(what: string, op: (s: PermissionStore) => Promise<void>): void {
    if (this.shared) op(this.shared).catch((err: unknown) => this.log.warn({ err, key: what }, 'shared permission cache unreachable; this instance keeps its own answer'));
  }

  get size(): number {
    return this.entries.size;
  }

  /** Store an answer: expired entries are dropped, and the oldest when the cache is full. */
  private put(key: string, value: { answer: PermissionAnswer; expires: number }): void {
    const t = this.now();
    for (const [k, e] of this.entries) if (e.expires <= t) this.entries.delete(k);
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  async check(phoneNumberId: string, waId: string): Promise<PermissionAnswer> {
    const key = `${phoneNumberId}:${waId}`;
    const hit = this.entries.get(key);
    if (hit && hit.expires > this.now()) return { ...hit.answer, source: 'cache' };
    const shared = this.shared && (await this.shared.get(key).catch(() => undefined));
    if (shared) return { ...shared, source: 'cache' };
    try {
      const p = await this.api.getCallPermissions(phoneNumberId, waId);
      const answer: PermissionAnswer = { canStartCall: p.canStartCall, canRequestPermission: p.canRequestPermission, status: p.status, source: 'graph' };
      if (this.ttlMs > 0) {
        this.put(key, { answer, expires: this.now() + this.ttlMs });
        this.share(key, (s) => s.put(key, answer, this.ttlMs));
      }
      return answer;
    } catch (err) {
      this.log.warn({ err, waId }, 'call permission look-up failed; trying the call anyway');
      return { canStartCall: true, canRequestPermission: false, status: 'unknown', source: 'unknown' };
    }
  }

  /** The user answered a permission request. */
  onReply(ev: WaPermissionReplyEvent): void {
    const accepted = ev.response === 'accept';
    const answer: PermissionAnswer = {
      canStartCall: accepted,
      canRequestPermission: false,
      status: accepted ? (ev.isPermanent ? 'permanent' : 'temporary') : 'no_permission',
      source: 'reply-webhook',
    };
    const until = accepted && ev.expiresAt ? Math.min(ev.expiresAt * 1000, this.now() + this.ttlMs) : this.now() + this.ttlMs;
    const key = `${ev.phoneNumberId}:${ev.userWaId}`;
    this.put(key, { answer, expires: until });
    if (until > this.now()) this.share(key, (s) => s.put(key, answer, until - this.now()));
  }

  /** Forget what we know (after `connect` said 138006 despite a positive answer). */
  invalidate(phoneNumberId: string, waId: string): void {
    const key = `${phoneNumberId}:${waId}`;
    this.entries.delete(key);
    this.share(key, (s) => s.delete(key));
  }
}
