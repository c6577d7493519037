/**
 * Call state shared by several bridge instances, in Redis. The single-instance bridge never
 * builds any of this: its dedupe and call maps stay in memory.
 *
 * Keys (all under `keyPrefix`):
 * - `evt:<event key>`      webhook de-duplication, SET NX PX (the first instance to see an event wins);
 * - `own:wa:<call id>`     the instance that owns a WhatsApp call (SET NX: the first event claims it);
 * - `own:op:<opaque>`      the owner of an outbound call, by biz_opaque_callback_data;
 * - `own:sip:<Call-ID>`    the owner, by SIP Call-ID;
 * - `inst:<instance id>`   an instance's lease: its internal URL, renewed by its heartbeat;
 * - `perm:<pnid>:<wa id>`  a call-permission answer (JSON), for the cache's TTL;
 * - `members`             every instance that joined (a set; one without a lease is dead);
 * - `calls:<instance>`    hash: call key → ClusterCallRecord (JSON), the instance's calls;
 * - `dlg:<instance>`      hash: SIP Call-ID → StoredDialog (JSON), refreshed every heartbeat;
 * - `inv:<instance>`      hash: SIP Call-ID → StoredInvite (JSON): INVITEs still ringing, either way;
 * - `beat:<instance>`     when the instance last renewed its lease (ms since the epoch; takeover latency);
 * - `end:<instance>:<key>` the survivor that ends a dead instance's call (SET NX);
 * - `mbox:<instance>`     list: forwarded event batches (JSON) its internal hop did not take, for its next heartbeat.
 */
import { Redis } from 'ioredis';
import type { PermissionAnswer, PermissionStore } from '../permissions.js';
import { seal, unseal } from './sealed.js';

/** The most batches a mute owner's mailbox holds: past it, the oldest go (a bound on Redis memory). */
export const MAILBOX_MAX_BATCHES = 1000;

/** What a survivor needs to end a dead instance's call. */
export interface ClusterCallRecord {
  direction: 'inbound' | 'outbound' | 'click-to-call';
  waCallId?: string | undefined;
  sipCallId?: string | undefined;
  phoneNumberId?: string | undefined;
  /** The media session's call id in the engine. */
  mediaCallId?: string | undefined;
  /** An outbound call's biz_opaque_callback_data (webhooks may name it before the call id). */
  opaque?: string | undefined;
}

/** The two hashes of SIP state an instance keeps for a survivor: confirmed dialogs, ringing INVITEs. */
export type SipStateHash = 'dlg' | 'inv';

/** Webhook de-duplication across instances. */
export interface SharedDedupe {
  /** True the first time `key` is seen within `ttlMs`, anywhere in the cluster. */
  firstSight(key: string, ttlMs: number): Promise<boolean>;
}

export type OwnerKey = { kind: 'wa' | 'op' | 'sip'; id: string };

/** Which instance owns which call. */
export interface CallDirectory {
  /** Claim `key` for `instanceId` unless another instance has it; returns the owner. */
  claim(key: OwnerKey, instanceId: string, ttlMs: number): Promise<string>;
  owner(key: OwnerKey): Promise<string | undefined>;
  /** Record (overwrite) the owner. */
  set(key: OwnerKey, instanceId: string, ttlMs: number): Promise<void>;
  /** Forget keys, only where `instanceId` still owns them. */
  release(keys: OwnerKey[], instanceId: string): Promise<void>;
}

/** Instance leases: who is alive and where it listens. */
export interface Leases {
  /** Take or renew the lease; true when there was none to renew (first start, or it had run out). */
  renew(instanceId: string, url: string, leaseMs: number): Promise<boolean>;
  /** The internal URL of a live instance, or undefined when its lease has run out. */
  urlOf(instanceId: string): Promise<string | undefined>;
  drop(instanceId: string): Promise<void>;
}

const LEFT_HASHES = ['calls', 'dlg', 'inv'] as const;
type LeftHash = (typeof LEFT_HASHES)[number];

/** What an instance left in Redis, as a survivor reads it. */
export interface LeftBy {
  calls: Map<string, ClusterCallRecord>;
  /** Confirmed dialogs and ringing INVITEs, checked field by field by their user. */
  dialogs: Map<string, unknown>;
  invites: Map<string, unknown>;
  /** Entries without a valid seal (./sealed.ts): left out. */
  forged: number;
  /** The fields read from each hash (forged ones included), for `bury`. */
  read: Record<LeftHash, string[]>;
}

// Delete a key only when it still holds the expected value (an owner releasing its own call).
const RELEASE_IF_OWNER = `local n = 0
for i, k in ipairs(KEYS) do if redis.call('GET', k) == ARGV[1] then n = n + redis.call('DEL', k) end end
return n`;

export class RedisSharedState implements SharedDedupe, CallDirectory, Leases, PermissionStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** The cluster secret: what survivors act on is sealed with it (./sealed.ts). */
    private readonly secret: string,
  ) {}

  private ownKey(k: OwnerKey): string {
    return `${this.prefix}own:${k.kind}:${k.id}`;
  }

  async firstSight(key: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(`${this.prefix}evt:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  async claim(key: OwnerKey, instanceId: string, ttlMs: number): Promise<string> {
    const k = this.ownKey(key);
    // SET NX ... GET answers the previous owner, or null when this instance took the key.
    const prev = await this.redis.set(k, instanceId, 'PX', ttlMs, 'NX', 'GET');
    return prev ?? instanceId;
  }

  async owner(key: OwnerKey): Promise<string | undefined> {
    return (await this.redis.get(this.ownKey(key))) ?? undefined;
  }

  async set(key: OwnerKey, instanceId: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.ownKey(key), instanceId, 'PX', ttlMs);
  }

  async release(keys: OwnerKey[], instanceId: string): Promise<void> {
    if (keys.length === 0) return;
    await this.redis.eval(RELEASE_IF_OWNER, keys.length, ...keys.map((k) => this.ownKey(k)), instanceId);
  }

  async get(key: string): Promise<PermissionAnswer | undefined> {
    const v = await this.redis.get(`${this.prefix}perm:${key}`);
    if (!v) return undefined;
    try {
      const a = JSON.parse(v) as PermissionAnswer;
      return typeof a.canStartCall === 'boolean' && typeof a.canRequestPermission === 'boolean' && typeof a.status === 'string' ? a : undefined;
    } catch {
      return undefined;
    }
  }

  async put(key: string, answer: PermissionAnswer, ttlMs: number): Promise<void> {
    await this.redis.set(`${this.prefix}perm:${key}`, JSON.stringify(answer), 'PX', Math.max(1, Math.round(ttlMs)));
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(`${this.prefix}perm:${key}`);
  }

  async renew(instanceId: string, url: string, leaseMs: number): Promise<boolean> {
    // The beat outlives the lease (ten leases), so a survivor can tell when the instance went quiet.
    // Membership is renewed too: an instance that was only slow (its lease ran out, a survivor
    // took its calls over and buried it) must be seen again, or its later calls die with it.
    const results = await this.redis
      .multi()
      .set(`${this.prefix}inst:${instanceId}`, url, 'PX', leaseMs, 'GET')
      .set(`${this.prefix}beat:${instanceId}`, String(Date.now()), 'PX', leaseMs * 10)
      .sadd(`${this.prefix}members`, instanceId)
      .exec();
    failedExec(results);
    return results?.[0]?.[1] === null;
  }

  /** When `instanceId` last renewed its lease (ms since the epoch), if still known. */
  async lastBeat(instanceId: string): Promise<number | undefined> {
    const v = Number(await this.redis.get(`${this.prefix}beat:${instanceId}`));
    return Number.isFinite(v) && v > 0 ? v : undefined;
  }

  async urlOf(instanceId: string): Promise<string | undefined> {
    return (await this.redis.get(`${this.prefix}inst:${instanceId}`)) ?? undefined;
  }

  async drop(instanceId: string): Promise<void> {
    await this.redis.multi().del(`${this.prefix}inst:${instanceId}`).srem(`${this.prefix}members`, instanceId).exec();
  }

  async join(instanceId: string): Promise<void> {
    await this.redis.sadd(`${this.prefix}members`, instanceId);
  }

  async members(): Promise<string[]> {
    return this.redis.smembers(`${this.prefix}members`);
  }

  async recordCall(instanceId: string, callKey: string, rec: ClusterCallRecord, ttlMs: number): Promise<void> {
    const k = `${this.prefix}calls:${instanceId}`;
    await this.redis.multi().hset(k, callKey, seal(this.secret, `calls:${instanceId}:${callKey}`, JSON.stringify(rec))).pexpire(k, ttlMs).exec();
  }

  async forgetCall(instanceId: string, callKey: string): Promise<void> {
    await this.redis.hdel(`${this.prefix}calls:${instanceId}`, callKey);
  }

  async putDialogs(instanceId: string, changed: Map<string, string>, removed: string[], ttlMs: number, hash: SipStateHash = 'dlg'): Promise<void> {
    const k = `${this.prefix}${hash}:${instanceId}`;
    const m = this.redis.multi();
    if (changed.size) m.hset(k, Object.fromEntries([...changed].map(([f, json]) => [f, seal(this.secret, `${hash}:${instanceId}:${f}`, json)]))).pexpire(k, ttlMs);
    if (removed.length) m.hdel(k, ...removed);
    await m.exec().then(failedExec);
  }

  /**
   * A dead instance's calls, dialogs and ringing INVITEs. Entries without a valid seal (./sealed.ts)
   * are left out and counted in `forged`; INVITEs are checked field by field by their user.
   */
  async leftBy(instanceId: string): Promise<LeftBy> {
    const [calls, dialogs, invites] = await Promise.all(LEFT_HASHES.map((h) => this.redis.hgetall(`${this.prefix}${h}:${instanceId}`)));
    const forged = { n: 0 };
    const open = <T>(h: LeftHash, values: Record<string, string>) => this.unsealAll<T>(`${h}:${instanceId}`, values, forged);
    const read = { calls: Object.keys(calls!), dlg: Object.keys(dialogs!), inv: Object.keys(invites!) };
    return { calls: open<ClusterCallRecord>('calls', calls!), dialogs: open<unknown>('dlg', dialogs!), invites: open<unknown>('inv', invites!), forged: forged.n, read };
  }

  private unsealAll<T>(where: string, h: Record<string, string>, forged: { n: number }): Map<string, T> {
    const out = new Map<string, T>();
    for (const [k, v] of Object.entries(h)) {
      const value = unseal(this.secret, `${where}:${k}`, v);
      if (value === undefined) forged.n++;
      else out.set(k, value as T);
    }
    return out;
  }

  /** Leave a forwarded batch (a JSON object) for `instanceId` to take at its next heartbeat; at most `MAILBOX_MAX_BATCHES` are kept. */
  async mail(instanceId: string, body: string, ttlMs: number): Promise<void> {
    const k = `${this.prefix}mbox:${instanceId}`;
    await this.redis.multi().rpush(k, seal(this.secret, `mbox:${instanceId}`, body)).ltrim(k, -MAILBOX_MAX_BATCHES, -1).pexpire(k, ttlMs).exec().then(failedExec);
  }

  /** Take (at most 100 of) the batches left for `instanceId`, each as it was mailed; `forged`: ones without a valid seal, dropped. */
  async takeMail(instanceId: string): Promise<{ batches: unknown[]; forged: number }> {
    const raw = (await this.redis.lpop(`${this.prefix}mbox:${instanceId}`, 100)) ?? [];
    const batches = raw.map((v) => unseal(this.secret, `mbox:${instanceId}`, v)).filter((v) => v !== undefined);
    return { batches, forged: raw.length - batches.length };
  }

  /** Whether this survivor ends `callKey` of the dead instance (one survivor per call). */
  async claimEnd(deadId: string, callKey: string, survivorId: string): Promise<boolean> {
    return (await this.redis.set(`${this.prefix}end:${deadId}:${callKey}`, survivorId, 'PX', 10 * 60_000, 'NX')) === 'OK';
  }

  /**
   * The dead instance is handled: the records a survivor read (`LeftBy.read`) go, and it leaves
   * the members. Only those: an instance that was only slow may have written more since (a call
   * it took after the survivor read its hashes), which must stay for the day it really dies.
   */
  async bury(deadId: string, read: LeftBy['read']): Promise<void> {
    const p = this.prefix;
    const m = this.redis.multi().del(`${p}beat:${deadId}`).srem(`${p}members`, deadId);
    for (const h of LEFT_HASHES) if (read[h].length) m.hdel(`${p}${h}:${deadId}`, ...read[h]);
    await m.exec();
  }
}

/**
 * A client that fails commands at once while Redis is away (no offline queue), so a webhook is
 * handled on the instance that took it instead of waiting out reconnect back-offs: queued, the
 * third event after Redis went away waited 1.4 s. Resolves once connected.
 */
export async function connectRedis(url: string, timeoutMs = 5000): Promise<Redis> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 });
  // Connection errors are retried by the client; the caller adds its own logging listener.
  redis.on('error', () => undefined);
  try {
    await new Promise<void>((ok, ko) => {
      const timer = setTimeout(() => ko(new Error(`Redis ${url}: not connected within ${timeoutMs} ms`)), timeoutMs);
      redis.once('ready', () => (clearTimeout(timer), ok()));
    });
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  return redis;
}

/** MULTI answers each command's error in its results instead of rejecting: make it reject. */
function failedExec(results: Array<[Error | null, unknown]> | null): void {
  const err = results?.find(([e]) => e)?.[0];
  if (err) throw err;
}
