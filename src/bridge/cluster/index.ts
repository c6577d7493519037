/**
 * Starting and stopping cluster membership (`cluster` in the config): the Redis client, this
 * instance's lease, and the internal event route on its own internal listener.
 */
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../util/log.js';
import type { WaEvent } from '../../whatsapp/types.js';
import { createInternalServer } from '../../http/internal-route.js';
import type { CallObserver } from '../observer.js';
import type { PermissionStore } from '../permissions.js';
import { hostname } from 'node:os';
import { ClusterNode, type ClusterConfig } from './node.js';
import { Takeover, type TakeoverDeps } from './takeover.js';
import { connectRedis, RedisSharedState } from './shared-state.js';
import type { ClusterMetrics } from './metrics.js';

export interface Cluster {
  node: ClusterNode;
  /** Call-permission answers shared by every instance (Bridge's `sharedPermissions`). */
  permissions: PermissionStore;
  /** The internal listener's address (`http://host:port`). */
  internalUrl: string;
  close(): Promise<void>;
  /** Test only: leave as a crash would (no lease given up, no call ended). */
  abandon(): Promise<void>;
}

/**
 * Join the cluster. `deliver` hands events to this instance's bridge: the ones it owns among its
 * own webhooks, and those other instances forward to it.
 */
export interface ClusterPeers {
  sip: TakeoverDeps['sip'];
  media: TakeoverDeps['media'];
  whatsapp: TakeoverDeps['whatsapp'];
  /** Cluster counters (`BridgeMetrics.cluster`); absent: not counted. */
  metrics?: ClusterMetrics | undefined;
}

export async function startCluster(cfg: ClusterConfig, calls: Config['calls'], peers: ClusterPeers, log: Logger, deliver: (events: WaEvent[]) => void): Promise<Cluster> {
  const redis = await connectRedis(cfg.redisUrl);
  redis.on('error', (err: Error) => (peers.metrics?.redisError('connection'), log.warn({ component: 'cluster', error: err.message }, 'Redis connection error')));
  const state = new RedisSharedState(redis, cfg.keyPrefix, cfg.secret);
  // The longest a call can last (ringing, then maxDurationSec) and ten minutes for late webhooks.
  const callTtlMs = (calls.ringTimeoutSec + calls.maxDurationSec) * 1000 + 10 * 60_000;
  const instanceId = cfg.instanceId ?? `${hostname()}-${process.pid}`;
  const takeover = new Takeover({ instanceId, state, ...peers, log: log.child({ component: 'cluster', instanceId }), dialogTtlMs: callTtlMs });
  const node = new ClusterNode({ config: { ...cfg, instanceId }, state, log, callTtlMs, deliver, takeover, metrics: peers.metrics });
  const internal = createInternalServer({
    log,
    secret: cfg.secret,
    onEvents: (events, from) => {
      log.debug({ from, events: events.length }, 'events from another instance');
      deliver(events);
    },
  });
  try {
    await redis.ping();
    await node.start();
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const internalUrl = (await internal.listen({ host: cfg.internal.host, port: cfg.internal.port })).replace('0.0.0.0', '127.0.0.1');
  return {
    node,
    permissions: state,
    internalUrl,
    async abandon() {
      node.abandon();
      await internal.close();
      redis.disconnect();
    },
    async close() {
      await node.close();
      await internal.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** Both observers told of every call (the operations hub, and the cluster's directory). */
export function bothObservers(a: CallObserver, b: CallObserver): CallObserver {
  return {
    started: (c) => (a.started(c), b.started(c)),
    identified: (k, ids) => (a.identified(k, ids), b.identified(k, ids)),
  };
}
