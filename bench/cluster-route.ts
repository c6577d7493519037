/**
 * What the cluster adds to each webhook event before the bridge sees it: the shared
 * de-duplication and the ownership claim (two Redis round trips), against a baseline measured in
 * the same run: one Redis PING round trip. A real redis-server on loopback, started and stopped here.
 *
 *   npx tsx bench/cluster-route.ts [--events 5000]
 */
import { Redis } from 'ioredis';
import { ClusterNode } from '../src/bridge/cluster/node.js';
import { RedisSharedState } from '../src/bridge/cluster/shared-state.js';
import { createLogger } from '../src/util/log.js';
import type { WaEvent } from '../src/whatsapp/types.js';
import { startRedis } from '../test/harness/redis.js';

const arg = process.argv.indexOf('--events');
const N = arg > 0 ? Number(process.argv[arg + 1]) : 5000;
const daemon = await startRedis();
const redis = new Redis(daemon.url);
try {
  const log = createLogger({ level: 'silent' });
  let delivered = 0;
  const cfg = { redisUrl: daemon.url, instanceId: 'bench', internal: { host: '127.0.0.1', port: 0 }, advertiseUrl: 'http://127.0.0.1:1', secret: 'bench-secret-0123456789', heartbeatMs: 1000, leaseMs: 5000, keyPrefix: 'bench:' };
  const node = new ClusterNode({ config: cfg, state: new RedisSharedState(redis, 'bench:', cfg.secret), log, callTtlMs: 60_000, deliver: (evs) => void (delivered += evs.length) });
  const ev = (i: number): WaEvent => ({ kind: 'terminate', callId: `wacid.bench${i}`, phoneNumberId: '1', businessNumber: '1', timestamp: 1, status: 'COMPLETED', errors: [] });
  for (let i = 0; i < 200; i++) await redis.ping(); // warm up
  for (let i = 0; i < 200; i++) await node.route([ev(-i - 1)]);

  const t0 = performance.now();
  for (let i = 0; i < N; i++) await redis.ping();
  const pingUs = ((performance.now() - t0) * 1000) / N;
  const t1 = performance.now();
  for (let i = 0; i < N; i++) await node.route([ev(i)]);
  const routeUs = ((performance.now() - t1) * 1000) / N;
  if (delivered !== N + 200) throw new Error(`delivered ${delivered}, expected ${N + 200}`);
  console.log(`events: ${N}, one at a time (the worst case: no pipelining across events)`);
  console.log(`baseline  redis PING round trip      ${pingUs.toFixed(1)} µs`);
  console.log(`cluster   route() per event          ${routeUs.toFixed(1)} µs  (${(routeUs / pingUs).toFixed(2)}× a round trip)`);
  await node.close();
} finally {
  redis.disconnect();
  await daemon.stop();
}
