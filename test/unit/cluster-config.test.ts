import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';

const base = { whatsapp: { provider: 'meta', appSecret: 'app-secret' } };
const cluster = { redisUrl: 'redis://10.0.0.30:6379', advertiseUrl: 'http://10.0.0.11:8090' };

describe('cluster config', () => {
  it('is absent by default: one instance, nothing shared', () => {
    expect(buildConfig(base).cluster).toBeUndefined();
  });

  it('takes the shared secret from the environment, with defaults for the rest', () => {
    const c = buildConfig({ ...base, cluster }, { WA_SIP_BRIDGE_CLUSTER_SECRET: 'a-long-enough-cluster-secret' }).cluster!;
    expect(c).toMatchObject({ secret: 'a-long-enough-cluster-secret', heartbeatMs: 1000, leaseMs: 5000, internal: { host: '127.0.0.1', port: 8090 }, keyPrefix: 'wsb:' });
  });

  it('refuses a short or missing secret, a lease shorter than two heartbeats, and a URL that is not Redis', () => {
    expect(() => buildConfig({ ...base, cluster })).toThrow(/secret/);
    expect(() => buildConfig({ ...base, cluster: { ...cluster, secret: 'short' } })).toThrow(/16 characters/);
    expect(() => buildConfig({ ...base, cluster: { ...cluster, secret: 'a-long-enough-cluster-secret', heartbeatMs: 1000, leaseMs: 1500 } })).toThrow(/twice heartbeatMs/);
    expect(() => buildConfig({ ...base, cluster: { ...cluster, redisUrl: 'http://x', secret: 'a-long-enough-cluster-secret' } })).toThrow(/redis:\/\//);
  });
});
