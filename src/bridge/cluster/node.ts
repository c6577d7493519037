/**
 * One bridge instance in a cluster sharing call state in Redis (docs/scaling.md).
 *
 * Any instance may take any webhook. For each event: a cluster-wide de-duplication (SET NX PX),
 * then the call's owner: the instance named by the outbound call's biz_opaque_callback_data, or
 * else whichever instance first claims the WhatsApp call id (SET NX) — the first event of a call
 * seen anywhere makes its receiver the owner, so a connect and a terminate landing on two instances
 * at once still meet on one. Events for this instance go to its bridge; the others are forwarded
 * to their owner over the signed internal hop (`POST <advertiseUrl>/internal/events`).
 * Each instance renews a lease (`inst:<id>`, its internal URL) every heartbeat.
 *
 * A hop that fails (refused, timed out, 5xx) is retried with backoff for as long as the owner
 * could still be alive (one lease and one heartbeat), its lease checked before each try. Once
 * the lease is gone, this instance ends the dead owner's calls at once (`Takeover.ownerDead`),
 * as its next sweep would: a forwarded terminate is never dropped, it ends the call here. An
 * owner that keeps its lease but never answers within that time gets the batch in Redis
 * (`mbox:<owner>`), which it takes at its next heartbeat.
 */
import { hostname } from 'node:os';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../util/log.js';
import type { WaEvent } from '../../whatsapp/types.js';
import { eventKey } from '../../whatsapp/webhook.js';
import { forwardSchema, signBody, SIGNATURE_HEADER, type ForwardBody } from '../../http/internal-route.js';
import { outboundMediaSessionId, type CallObserver, type EndedCallRecord, type StartedCall } from '../observer.js';
import type { CallDirectory, ClusterCallRecord, Leases, OwnerKey, RedisSharedState, SharedDedupe } from './shared-state.js';
import type { Takeover } from './takeover.js';
import { NO_CLUSTER_METRICS, type ClusterMetrics, type RedisOp } from './metrics.js';

export type ClusterConfig = NonNullable<Config['cluster']>;

/** Same window as the bridge's own in-memory de-duplication. */
const DEDUPE_TTL_MS = 30 * 60_000;
const FORWARD_TIMEOUT_MS = 2000;
/** First retry of a failed hop, doubled each time up to the cap. */
const RETRY_FIRST_MS = 100;
const RETRY_CAP_MS = 1000;
/** How long a batch left in Redis for a mute owner waits to be taken. */
const MAILBOX_TTL_MS = 10 * 60_000;

export interface ClusterNodeDeps {
  config: ClusterConfig;
  state: SharedDedupe & CallDirectory & Leases & Pick<RedisSharedState, 'join' | 'recordCall' | 'forgetCall' | 'mail' | 'takeMail'>;
  /** Dead instances' calls ended by this one, and this one's dialogs kept in Redis; absent: neither. */
  takeover?: Takeover | undefined;
  log: Logger;
  /** How long an ownership key lives at most: the longest call, plus margin. */
  callTtlMs: number;
  /** This instance's bridge: handle these events here. */
  deliver(events: WaEvent[]): void;
  metrics?: ClusterMetrics | undefined;
}

/** An answer from the owner that retrying cannot change (a 4xx: wrong secret, a body it refused). */
class PermanentHopError extends Error {}

export class ClusterNode implements CallObserver {
  readonly instanceId: string;
  private readonly log: Logger;
  private heartbeat: NodeJS.Timeout | undefined;
  private leaseOk = false;
  /** Ownership keys this instance wrote, by the call's first name, released when the call ends. */
  private readonly owned = new Map<string, OwnerKey[]>();
  /** What a survivor would need to end each call of this instance, by the call's first name. */
  private readonly records = new Map<string, ClusterCallRecord>();
  private readonly metrics: ClusterMetrics;

  constructor(private readonly deps: ClusterNodeDeps) {
    this.instanceId = deps.config.instanceId ?? `${hostname()}-${process.pid}`;
    this.log = deps.log.child({ component: 'cluster', instanceId: this.instanceId });
    this.metrics = deps.metrics ?? NO_CLUSTER_METRICS;
  }

  private redisFailed(op: RedisOp): void {
    this.metrics.redisError(op);
  }

  /** Take the lease, and keep renewing it. */
  async start(): Promise<void> {
    await this.deps.takeover?.endLeftovers().catch((err: unknown) => this.log.warn({ err }, 'ending calls left by a previous run failed'));
    await this.deps.state.join(this.instanceId);
    await this.renew();
    this.heartbeat = setInterval(() => void this.beat(), this.deps.config.heartbeatMs);
    this.heartbeat.unref();
    this.log.info({ advertiseUrl: this.deps.config.advertiseUrl }, 'cluster member: lease taken');
  }

  /** Whether the last lease renewal reached Redis (readiness). */
  get healthy(): boolean {
    return this.leaseOk;
  }

  private async beat(): Promise<void> {
    await this.renew();
    if (!this.leaseOk) return;
    await this.takeMail();
    if (!this.deps.takeover) return;
    await this.deps.takeover.syncDialogs().catch((err: unknown) => (this.redisFailed('sip-state'), this.log.warn({ err }, 'writing dialog state to Redis failed')));
    await this.deps.takeover.sweep();
  }

  /**
   * Batches another instance could not hand over the internal hop: sealed with the cluster secret
   * (./sealed.ts), checked as the hop checks them, no older than the mailbox's TTL, then delivered.
   * A batch the bridge already had (the hop did deliver it, its answer was lost) is a duplicate
   * there; a connect mailed behind its own terminate is refused there (the call ended already).
   */
  private async takeMail(): Promise<void> {
    let mail: Awaited<ReturnType<ClusterNodeDeps['state']['takeMail']>>;
    try {
      mail = await this.deps.state.takeMail(this.instanceId);
    } catch (err) {
      this.redisFailed('forward');
      this.log.warn({ err }, 'reading the events other instances left in Redis failed');
      return;
    }
    if (mail.forged) this.log.error({ batches: mail.forged }, 'event batches in Redis without a valid cluster signature (or too big); dropped');
    for (const batch of mail.batches) {
      const parsed = forwardSchema.safeParse(batch);
      if (!parsed.success) {
        this.log.warn({ error: parsed.error.message.slice(0, 300) }, 'events left in Redis by another instance are malformed; dropped');
        continue;
      }
      const ageMs = Date.now() - parsed.data.sentAt;
      if (ageMs > MAILBOX_TTL_MS) {
        this.log.warn({ from: parsed.data.from, ageMs }, 'events left in Redis by another instance are older than the mailbox TTL; dropped');
        continue;
      }
      const events = parsed.data.events as unknown as WaEvent[];
      this.log.info({ from: parsed.data.from, waCallIds: events.map((e) => ('callId' in e ? e.callId : e.kind)), events: events.map((e) => e.kind) }, 'webhook events left in Redis by another instance (its hop to here failed) delivered');
      this.deps.deliver(events);
    }
  }

  private async renew(): Promise<void> {
    try {
      const lapsed = await this.deps.state.renew(this.instanceId, this.deps.config.advertiseUrl, this.deps.config.leaseMs);
      if (!this.leaseOk) this.log.info('cluster lease renewed');
      this.leaseOk = true;
      if (lapsed && this.heartbeat) this.leaseLapsed();
    } catch (err) {
      this.metrics.leaseRenewalFailed();
      this.redisFailed('lease');
      if (this.leaseOk) this.log.error({ err }, 'cluster lease renewal failed: Redis unreachable; other instances will think this one dead');
      this.leaseOk = false;
    }
  }

  /**
   * The lease had run out before this renewal (the process was too slow to renew it for
   * `leaseMs`, or Redis lost it): other instances took this one for dead and may have ended its
   * calls and deleted its records. The calls still held here are recorded again, and every dialog
   * and ringing INVITE is written again at this heartbeat, so they are not lost for the day this
   * instance really dies.
   */
  private leaseLapsed(): void {
    this.metrics.leaseLapsed();
    this.log.error({ calls: this.records.size }, 'cluster lease had run out before this renewal: other instances may have ended calls of this one; recording its calls again');
    for (const [key, rec] of this.records) this.record(key, rec);
    this.deps.takeover?.forgetWritten();
  }

  /** Webhook events as received from WhatsApp, on any instance. Never throws. */
  async route(events: WaEvent[]): Promise<void> {
    const local: WaEvent[] = [];
    const remote = new Map<string, WaEvent[]>();
    for (const ev of events) {
      const owner = await this.ownerOf(ev);
      if (owner === undefined) continue;
      if (owner === this.instanceId) local.push(ev);
      else remote.set(owner, [...(remote.get(owner) ?? []), ev]);
    }
    if (local.length) this.deps.deliver(local);
    await Promise.all([...remote].map(([owner, evs]) => this.forward(owner, evs)));
  }

  /** The instance that acts on `ev`; undefined for a duplicate. Redis trouble: this instance. */
  private async ownerOf(ev: WaEvent): Promise<string | undefined> {
    const callId = 'callId' in ev ? ev.callId : undefined;
    try {
      if (!(await this.deps.state.firstSight(eventKey(ev), DEDUPE_TTL_MS))) {
        this.log.info({ key: eventKey(ev), waCallId: callId }, 'duplicate webhook event ignored (seen by the cluster)');
        return undefined;
      }
      if (ev.kind === 'permission_reply') return this.instanceId;
      const opaque = ev.bizOpaqueCallbackData;
      const byOpaque = opaque ? await this.deps.state.owner({ kind: 'op', id: opaque }) : undefined;
      if (byOpaque) return byOpaque;
      return await this.deps.state.claim({ kind: 'wa', id: ev.callId }, this.instanceId, this.deps.callTtlMs);
    } catch (err) {
      this.redisFailed('route');
      this.log.error({ err, waCallId: callId, event: ev.kind }, 'Redis unreachable: handling the event on this instance');
      return this.instanceId;
    }
  }

  /** Hand `events` to their owner; see the file comment for retries and a dead owner. Never throws. */
  private async forward(owner: string, events: WaEvent[]): Promise<void> {
    const waCallIds = events.map((e) => ('callId' in e ? e.callId : e.kind));
    const log = this.log.child({ owner, waCallIds, events: events.map((e) => e.kind) });
    // Long enough for a dead owner's lease to run out: past it, the owner is alive or seen dead.
    const windowMs = this.deps.config.leaseMs + this.deps.config.heartbeatMs;
    const t0 = performance.now();
    let lastError = '';
    for (let attempt = 0, backoff = RETRY_FIRST_MS; ; attempt++, backoff = Math.min(backoff * 2, RETRY_CAP_MS)) {
      let url: string | undefined | null;
      try {
        url = await this.deps.state.urlOf(owner);
      } catch (err) {
        this.redisFailed('forward');
        lastError = `Redis: ${(err as Error).message}`;
        url = null; // unknown: try again
      }
      if (url === undefined) return this.ownerDead(owner, events, log, attempt);
      if (url !== null) {
        try {
          await this.post(url, events);
          this.metrics.forwarded(attempt === 0 ? 'ok' : 'retried', events.length);
          log.info({ attempts: attempt + 1 }, 'webhook events forwarded to the owning instance');
          return;
        } catch (err) {
          lastError = (err as Error).message;
          if (err instanceof PermanentHopError) break;
        }
      }
      // The last look at the lease comes at the window's end, when a dead owner's lease is gone.
      const remaining = windowMs - (performance.now() - t0);
      if (remaining <= 0) break;
      const wait = Math.min(backoff, Math.ceil(remaining));
      log.warn({ attempt: attempt + 1, error: lastError, retryInMs: wait }, 'forwarding webhook events to the owning instance failed; retrying');
      await new Promise((r) => setTimeout(r, wait));
    }
    this.metrics.forwarded('failed', events.length);
    const afterMs = Math.round(performance.now() - t0);
    try {
      await this.deps.state.mail(owner, JSON.stringify({ from: this.instanceId, sentAt: Date.now(), events } satisfies ForwardBody), MAILBOX_TTL_MS);
      log.error({ error: lastError, afterMs }, 'forwarding webhook events to the owning instance failed; it still holds its lease: left in Redis for it to take at its next heartbeat');
    } catch (err) {
      this.redisFailed('forward');
      log.error({ error: lastError, afterMs, err }, 'forwarding webhook events to the owning instance failed, and Redis did not take them: NOT DELIVERED');
    }
  }

  private async post(url: string, events: WaEvent[]): Promise<void> {
    const body = JSON.stringify({ from: this.instanceId, sentAt: Date.now(), events } satisfies ForwardBody);
    const res = await fetch(`${url}/internal/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(this.deps.config.secret, body) },
      body,
      signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
    });
    if (res.status === 202) return;
    throw res.status >= 400 && res.status < 500 ? new PermanentHopError(`owner answered HTTP ${res.status}`) : new Error(`owner answered HTTP ${res.status}`);
  }

  /** The owner has no lease: end its calls now (the calls these events name among them). */
  private async ownerDead(owner: string, events: WaEvent[], log: Logger, attempts: number): Promise<void> {
    this.metrics.forwarded('owner-dead', events.length);
    if (!this.deps.takeover) {
      log.error('the owner of these calls has no live lease and this instance does no takeovers: events not delivered');
      return;
    }
    log.warn({ attempts }, 'the owner of these calls is dead (no lease): taking its calls over now');
    try {
      const unknown = await this.deps.takeover.ownerDead(owner, events);
      if (unknown.length) log.warn({ unknownCalls: unknown.map((e) => ('callId' in e ? e.callId : e.kind)) }, 'the dead owner kept no record of these calls: nothing to end for them');
    } catch (err) {
      this.redisFailed('sweep');
      log.error({ err }, 'taking over the dead owner\'s calls failed; the next sweep tries again');
    }
  }

  // CallObserver: record the calls this instance owns under every name that events may carry.
  started(c: StartedCall): void {
    const keys: OwnerKey[] = [];
    if (c.opaque) keys.push({ kind: 'op', id: c.opaque });
    if (c.sipCallId) keys.push({ kind: 'sip', id: c.sipCallId });
    if (c.waCallId) keys.push({ kind: 'wa', id: c.waCallId });
    this.own(c.key, keys);
    const mediaCallId = c.direction === 'outbound' ? outboundMediaSessionId(c.key) : c.key;
    this.record(c.key, { direction: c.direction, waCallId: c.waCallId, sipCallId: c.sipCallId, phoneNumberId: c.phoneNumberId, mediaCallId, opaque: c.opaque });
  }

  private record(callKey: string, rec: ClusterCallRecord): void {
    this.records.set(callKey, rec);
    this.deps.state.recordCall(this.instanceId, callKey, rec, this.deps.callTtlMs).catch((err: unknown) => (this.redisFailed('record'), this.log.error({ err, waCallId: rec.waCallId, sipCallId: rec.sipCallId }, 'recording the call in Redis failed')));
  }

  identified(key: string, ids: { waCallId?: string; sipCallId?: string }): void {
    const keys: OwnerKey[] = [];
    if (ids.waCallId) keys.push({ kind: 'wa', id: ids.waCallId });
    if (ids.sipCallId) keys.push({ kind: 'sip', id: ids.sipCallId });
    this.own(key, keys);
    const rec = this.records.get(key);
    if (rec) this.record(key, { ...rec, ...(ids.waCallId ? { waCallId: ids.waCallId } : {}), ...(ids.sipCallId ? { sipCallId: ids.sipCallId } : {}) });
  }

  private own(callKey: string, keys: OwnerKey[]): void {
    if (keys.length === 0) return;
    this.owned.set(callKey, [...(this.owned.get(callKey) ?? []), ...keys]);
    for (const k of keys)
      this.deps.state.set(k, this.instanceId, this.deps.callTtlMs).catch((err: unknown) => (this.redisFailed('record'), this.log.error({ err, key: `${k.kind}:${k.id}` }, 'recording call ownership in Redis failed')));
  }

  /** A call of this instance ended: its names are free again (only where this instance still owns them). */
  ended(rec: EndedCallRecord): void {
    const callKey = rec.key ?? (rec.direction === 'inbound' ? rec.waCallId : rec.sipCallId);
    const keys = (callKey && this.owned.get(callKey)) || [];
    if (callKey) {
      this.owned.delete(callKey);
      if (this.records.delete(callKey)) this.deps.state.forgetCall(this.instanceId, callKey).catch(() => undefined);
    }
    if (rec.waCallId) keys.push({ kind: 'wa', id: rec.waCallId });
    this.deps.state.release(keys, this.instanceId).catch((err: unknown) => this.log.warn({ err, waCallId: rec.waCallId }, 'releasing call ownership in Redis failed (it expires on its own)'));
  }

  /** Test only: stop renewing without giving the lease up, as a crashed process would. */
  abandon(): void {
    clearInterval(this.heartbeat);
  }

  /** Stop renewing and give the lease up (a clean stop; a crash lets it expire). */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.deps.state.drop(this.instanceId).catch(() => undefined);
  }
}
