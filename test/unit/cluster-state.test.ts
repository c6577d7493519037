import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisSharedState } from '../../src/bridge/cluster/shared-state.js';
import { ClusterNode } from '../../src/bridge/cluster/node.js';
import { createInternalServer, signBody, SIGNATURE_HEADER } from '../../src/http/internal-route.js';
import type { WaEvent } from '../../src/whatsapp/types.js';
import { createLogger } from '../../src/util/log.js';
import { startRedis, type RedisDaemon } from '../harness/redis.js';
import { waitFor } from '../support/wait.js';

/** The shared state against a real redis-server, and the internal hop's signature check. */
let daemon: RedisDaemon;
let redis: Redis;
let n = 0;
const log = createLogger({ level: 'silent' });
const SECRET = 'cluster-secret-0123456789';
const fresh = () => new RedisSharedState(redis, `t${++n}:`, SECRET);

beforeAll(async () => {
  daemon = await startRedis();
  redis = new Redis(daemon.url);
}, 20_000);
afterAll(async () => {
  await redis?.quit();
  await daemon?.stop();
});

describe('shared state in Redis', () => {
  it('de-duplicates an event across instances, for its TTL only', async () => {
    const s = fresh();
    expect(await s.firstSight('terminate:wacid.1', 300)).toBe(true);
    expect(await new RedisSharedState(redis, `t${n}:`, SECRET).firstSight('terminate:wacid.1', 300)).toBe(false);
    // Bounded wait: the key expires after 300 ms.
    await waitFor(async () => await s.firstSight('terminate:wacid.1', 300), { what: 'the dedupe key to expire', timeoutMs: 5000 });
  });

  it('gives a call to the first instance that claims it, and tells the others who owns it', async () => {
    const s = fresh();
    const owners = await Promise.all(['a', 'b', 'c', 'd'].map((i) => s.claim({ kind: 'wa', id: 'wacid.2' }, i, 10_000)));
    expect(new Set(owners).size).toBe(1);
    expect(await s.owner({ kind: 'wa', id: 'wacid.2' })).toBe(owners[0]);
  });

  it('releases a call only for its owner', async () => {
    const s = fresh();
    await s.set({ kind: 'op', id: 'opq' }, 'a', 10_000);
    await s.release([{ kind: 'op', id: 'opq' }], 'b');
    expect(await s.owner({ kind: 'op', id: 'opq' })).toBe('a');
    await s.release([{ kind: 'op', id: 'opq' }], 'a');
    expect(await s.owner({ kind: 'op', id: 'opq' })).toBeUndefined();
  });

  it('forgets an instance whose lease is not renewed', async () => {
    const s = fresh();
    await s.renew('a', 'http://10.0.0.1:8090', 300);
    expect(await s.urlOf('a')).toBe('http://10.0.0.1:8090');
    await waitFor(async () => (await s.urlOf('a')) === undefined, { what: 'the lease to expire', timeoutMs: 5000 });
  });
});

const terminate = (callId: string): WaEvent => ({ kind: 'terminate', callId, phoneNumberId: '1', businessNumber: '1', timestamp: 1, status: 'COMPLETED', errors: [] });

describe('routing events between two instances', () => {
  it('delivers a call\'s events on its owner, once, whichever instance took the webhook', async () => {
    const prefix = `route${++n}:`;
    const got: Record<string, WaEvent[]> = { a: [], b: [] };
    const servers = await Promise.all(
      ['a', 'b'].map(async (id) => {
        const srv = createInternalServer({ log, secret: 'cluster-secret-0123456789', onEvents: (evs) => got[id]!.push(...evs) });
        const url = await srv.listen({ host: '127.0.0.1', port: 0 });
        return { srv, url };
      }),
    );
    const nodes = ['a', 'b'].map((id, i) => {
      const cfg = { redisUrl: daemon.url, instanceId: id, internal: { host: '127.0.0.1', port: 0 }, advertiseUrl: servers[i]!.url, secret: 'cluster-secret-0123456789', heartbeatMs: 200, leaseMs: 1000, keyPrefix: prefix };
      return new ClusterNode({ config: cfg, state: new RedisSharedState(redis, prefix, SECRET), log, callTtlMs: 60_000, deliver: (evs) => got[id]!.push(...evs) });
    });
    await Promise.all(nodes.map((x) => x.start()));
    try {
      const status: WaEvent = { kind: 'status', callId: 'wacid.9', phoneNumberId: '1', businessNumber: '1', timestamp: 1, status: 'RINGING' };
      await nodes[0]!.route([status]); // a claims the call
      await nodes[1]!.route([terminate('wacid.9')]); // b forwards to a
      await nodes[1]!.route([terminate('wacid.9')]); // a duplicate: dropped anywhere
      expect(got.a!.map((e) => e.kind)).toEqual(['status', 'terminate']);
      expect(got.b).toEqual([]);
      // An outbound call whose INVITE reached b: its webhooks, carrying the opaque, go to b.
      nodes[1]!.started({ direction: 'outbound', key: 'sip-call-1', sipCallId: 'sip-call-1', opaque: 'opq-7', phoneNumberId: '1' });
      await waitFor(async () => (await new RedisSharedState(redis, prefix, SECRET).owner({ kind: 'op', id: 'opq-7' })) === 'b', { what: 'the opaque recorded' });
      await nodes[0]!.route([{ kind: 'status', callId: 'wacid.10', phoneNumberId: '1', businessNumber: '1', timestamp: 1, status: 'RINGING', bizOpaqueCallbackData: 'opq-7' }]);
      expect(got.b!.map((e) => (e.kind === 'status' ? e.callId : e.kind))).toEqual(['wacid.10']);
    } finally {
      await Promise.all(nodes.map((x) => x.close()));
      await Promise.all(servers.map((s) => s.srv.close()));
    }
  });
});

describe('the internal hop', () => {
  it('refuses a wrong signature, a malformed body and a stale one; takes a signed fresh one', async () => {
    const got: WaEvent[] = [];
    const secret = 'cluster-secret-0123456789';
    const srv = createInternalServer({ log, secret, onEvents: (evs) => got.push(...evs) });
    try {
      const post = (body: string, sig: string | undefined) =>
        srv.inject({ method: 'POST', url: '/internal/events', headers: { 'content-type': 'application/json', ...(sig ? { [SIGNATURE_HEADER]: sig } : {}) }, payload: body });
      const good = JSON.stringify({ from: 'a', sentAt: Date.now(), events: [terminate('wacid.3')] });
      expect((await post(good, undefined)).statusCode).toBe(401);
      expect((await post(good, signBody('another-secret-0123456789', good))).statusCode).toBe(401);
      expect((await post(good, signBody(secret, good).slice(0, -1))).statusCode).toBe(401);
      const junk = JSON.stringify({ from: 'a', sentAt: Date.now(), events: [{ kind: 'connect', callId: 'x' }] });
      expect((await post(junk, signBody(secret, junk))).statusCode).toBe(400);
      const stale = JSON.stringify({ from: 'a', sentAt: Date.now() - 120_000, events: [terminate('wacid.3')] });
      expect((await post(stale, signBody(secret, stale))).statusCode).toBe(400);
      expect(got).toEqual([]);
      expect((await post(good, signBody(secret, good))).statusCode).toBe(202);
      expect(got.map((e) => e.kind)).toEqual(['terminate']);
    } finally {
      await srv.close();
    }
  });
});

describe('the call-permission cache shared through Redis', () => {
  it('answers on instance B from what instance A learned, without asking Graph again; invalidation reaches both', async () => {
    const { PermissionCache } = await import('../../src/bridge/permissions.js');
    let graphAsks = 0;
    const api = { getCallPermissions: async () => (graphAsks++, { canStartCall: true, canRequestPermission: false, status: 'temporary' as const, actions: [] }) };
    const store = fresh();
    const [a, b] = [new PermissionCache(api as never, 60_000, log), new PermissionCache(api as never, 60_000, log)];
    a.useSharedStore(store);
    b.useSharedStore(store);
    expect((await a.check('pn', '551199')).source).toBe('graph');
    // Bounded wait: A writes the answer to Redis after answering (fire and forget).
    await waitFor(async () => (await store.get('pn:551199')) !== undefined, { what: 'the shared answer' });
    expect(await b.check('pn', '551199')).toMatchObject({ canStartCall: true, status: 'temporary', source: 'cache' });
    expect(graphAsks).toBe(1);
    b.invalidate('pn', '551199');
    await waitFor(async () => (await store.get('pn:551199')) === undefined, { what: 'the shared answer to be forgotten' });
    b.onReply({ kind: 'permission_reply', phoneNumberId: 'pn', businessNumber: '1', timestamp: 1, userWaId: '551188', response: 'reject', isPermanent: false });
    await waitFor(async () => (await store.get('pn:551188')) !== undefined, { what: 'the reply to be shared' });
    expect(await a.check('pn', '551188')).toMatchObject({ canStartCall: false, status: 'no_permission' });
  });
});

describe('ending a dead instance\'s calls', () => {
  const dialog = { callId: 'sip-1', localHeader: '<sip:a@b>;tag=x', remoteHeader: '<sip:c@d>;tag=y', remoteTarget: 'sip:c@127.0.0.2', routeSet: [], localSeq: 2, transport: 'udp' as const };
  const fakes = () => {
    const done: string[] = [];
    return {
      done,
      sip: { dialogSnapshots: () => [], byeStored: async (d: typeof dialog) => (done.push(`bye ${d.callId}`), 200) },
      media: { name: 'rtpengine', deleteForeign: async (id: string) => void done.push(`delete ${id}`) },
      whatsapp: { terminate: async (_pn: string, id: string) => void done.push(`terminate ${id}`) },
    };
  };

  it('two survivors sweeping at once end each call once: terminate, BYE from the stored dialog, rtpengine delete', async () => {
    const { Takeover } = await import('../../src/bridge/cluster/takeover.js');
    const state = fresh();
    await state.join('dead');
    await state.recordCall('dead', 'wacid.5', { direction: 'inbound', waCallId: 'wacid.5', sipCallId: 'sip-1', phoneNumberId: 'pn', mediaCallId: 'wacid.5' }, 60_000);
    await state.putDialogs('dead', new Map([['sip-1', JSON.stringify(dialog)]]), [], 60_000);
    const f = fakes();
    const survivors = ['s1', 's2'].map((id) => new Takeover({ instanceId: id, state, ...f, log, dialogTtlMs: 60_000 }));
    await Promise.all(survivors.map((s) => s.sweep()));
    expect(f.done.sort()).toEqual(['bye sip-1', 'delete wacid.5', 'terminate wacid.5']);
    expect(await state.members()).toEqual([]);
    expect((await state.leftBy('dead')).calls.size).toBe(0);
  });

  it('a live member is left alone; calls left by a previous run of this id are ended at start', async () => {
    const { Takeover } = await import('../../src/bridge/cluster/takeover.js');
    const state = fresh();
    await state.join('alive');
    await state.renew('alive', 'http://x', 60_000);
    await state.recordCall('alive', 'k', { direction: 'inbound', waCallId: 'wacid.6', phoneNumberId: 'pn' }, 60_000);
    const f = fakes();
    await new Takeover({ instanceId: 'other', state, ...f, log, dialogTtlMs: 60_000 }).sweep();
    expect(f.done).toEqual([]);
    await new Takeover({ instanceId: 'alive', state, ...f, log, dialogTtlMs: 60_000 }).endLeftovers();
    expect(f.done).toEqual(['terminate wacid.6']);
  });
});

describe('Redis as hostile input (anyone who can write it, without the cluster secret)', () => {
  const fakes = () => {
    const done: string[] = [];
    return {
      done,
      sip: { dialogSnapshots: () => [], byeStored: async (d: { callId: string; remoteTarget: string }) => (done.push(`bye ${d.callId} to ${d.remoteTarget}`), 200) },
      media: { name: 'rtpengine', deleteForeign: async (id: string) => void done.push(`delete ${id}`) },
      whatsapp: { terminate: async (_pn: string, id: string) => void done.push(`terminate ${id}`) },
    };
  };
  const dialog = (target: string) => JSON.stringify({ callId: 'sip-h', localHeader: '<sip:a@b>;tag=x', remoteHeader: '<sip:c@d>;tag=y', remoteTarget: target, routeSet: [], localSeq: 2, transport: 'udp' });

  it('a survivor acts on no call, dialog or ringing INVITE written without the seal, nor on one copied from another instance', async () => {
    const { Takeover } = await import('../../src/bridge/cluster/takeover.js');
    const state = fresh();
    const prefix = `t${n}:`;
    const f = fakes();
    // Written raw, as an attacker with Redis access would: a call and a dialog aiming a BYE anywhere.
    await state.join('dead-h');
    await redis.hset(`${prefix}calls:dead-h`, 'k', JSON.stringify({ direction: 'inbound', waCallId: 'wacid.victim', sipCallId: 'sip-h', phoneNumberId: 'pn' }));
    await redis.hset(`${prefix}dlg:dead-h`, 'sip-h', dialog('sip:x@203.0.113.9'));
    await redis.hset(`${prefix}inv:dead-h`, 'sip-h', JSON.stringify({ kind: 'client', callId: 'sip-h', uri: 'sip:x@203.0.113.9' }));
    // Sealed by a live instance, then copied into the dead one's hashes.
    await state.recordCall('live-h', 'k2', { direction: 'inbound', waCallId: 'wacid.live', phoneNumberId: 'pn' }, 60_000);
    await redis.hset(`${prefix}calls:dead-h`, 'k2', (await redis.hget(`${prefix}calls:live-h`, 'k2'))!);
    expect((await state.leftBy('dead-h')).forged).toBe(4);
    await new Takeover({ instanceId: 's', state, ...f, log, dialogTtlMs: 60_000 }).sweep();
    expect(f.done).toEqual([]);
    // The same written through the state (sealed) is acted on.
    await state.join('dead-h2');
    await state.recordCall('dead-h2', 'k', { direction: 'inbound', waCallId: 'wacid.h2', sipCallId: 'sip-h', phoneNumberId: 'pn' }, 60_000);
    await state.putDialogs('dead-h2', new Map([['sip-h', dialog('sip:c@127.0.0.2')]]), [], 60_000);
    await new Takeover({ instanceId: 's', state, ...f, log, dialogTtlMs: 60_000 }).sweep();
    expect(f.done.sort()).toEqual(['bye sip-h to sip:c@127.0.0.2', 'terminate wacid.h2']);
  });

  it('the mailbox: a batch without the seal, an oversized one and a stale one are dropped; it keeps at most MAILBOX_MAX_BATCHES', async () => {
    const { MAILBOX_MAX_BATCHES } = await import('../../src/bridge/cluster/shared-state.js');
    const state = fresh();
    const prefix = `t${n}:`;
    const batch = (id: string, sentAt = Date.now()) => JSON.stringify({ from: 'x', sentAt, events: [terminate(id)] });
    await redis.rpush(`${prefix}mbox:m`, batch('wacid.forged'), 'x'.repeat(2 * 1024 * 1024));
    await state.mail('m', batch('wacid.stale', Date.now() - 11 * 60_000), 60_000);
    await state.mail('m', batch('wacid.good'), 60_000);
    const got: WaEvent[] = [];
    const cfg = { redisUrl: daemon.url, instanceId: 'm', internal: { host: '127.0.0.1', port: 0 }, advertiseUrl: 'http://127.0.0.1:1', secret: SECRET, heartbeatMs: 100, leaseMs: 600, keyPrefix: prefix };
    const node = new ClusterNode({ config: cfg, state, log, callTtlMs: 60_000, deliver: (evs) => got.push(...evs) });
    await node.start();
    try {
      // Bounded wait: the mailbox is read at the next heartbeat (100 ms).
      await waitFor(async () => (await redis.llen(`${prefix}mbox:m`)) === 0, { what: 'the mailbox taken' });
      await waitFor(() => got.length > 0, { what: 'the good batch delivered' });
      expect(got.map((e) => (e.kind === 'terminate' ? e.callId : e.kind))).toEqual(['wacid.good']);
    } finally {
      node.abandon();
    }
    const p = redis.pipeline();
    for (let i = 0; i < MAILBOX_MAX_BATCHES + 5; i++) p.rpush(`${prefix}mbox:full`, 'x');
    await p.exec();
    await state.mail('full', batch('wacid.last'), 60_000);
    expect(await redis.llen(`${prefix}mbox:full`)).toBe(MAILBOX_MAX_BATCHES);
    expect((await state.takeMail('full')).forged).toBe(100);
  });
});

describe('an instance that was only slow', () => {
  it('is a member again once it renews after a survivor buried it, so its later calls are still taken over when it dies', async () => {
    const { Takeover } = await import('../../src/bridge/cluster/takeover.js');
    const state = fresh();
    const done: string[] = [];
    const f = {
      sip: { dialogSnapshots: () => [] },
      media: { name: 'rtpengine', deleteForeign: async () => undefined },
      whatsapp: { terminate: async (_pn: string, id: string) => void done.push(`terminate ${id}`) },
    };
    const survivor = new Takeover({ instanceId: 'survivor', state, ...f, log, dialogTtlMs: 60_000 });
    await state.join('slow');
    await state.recordCall('slow', 'k1', { direction: 'inbound', waCallId: 'wacid.slow1', phoneNumberId: 'pn' }, 60_000);
    // Its lease ran out (never renewed here): the survivor ends its call and buries it.
    await survivor.sweep();
    expect(done).toEqual(['terminate wacid.slow1']);
    expect(await state.members()).toEqual([]);
    // A call it recorded after a survivor read its hashes is not buried with the ones read.
    const left = await state.leftBy('slow');
    await state.recordCall('slow', 'k0', { direction: 'inbound', waCallId: 'wacid.slow0', phoneNumberId: 'pn' }, 60_000);
    await state.bury('slow', left.read);
    expect([...(await state.leftBy('slow')).calls.keys()]).toEqual(['k0']);
    await state.forgetCall('slow', 'k0');
    // It was only slow: it renews (as its heartbeat does) and takes a new call ...
    await state.renew('slow', 'http://x', 300);
    await state.recordCall('slow', 'k2', { direction: 'inbound', waCallId: 'wacid.slow2', phoneNumberId: 'pn' }, 60_000);
    expect(await state.members()).toEqual(['slow']);
    // ... then dies for real. Bounded wait: its 300 ms lease expires.
    await waitFor(async () => (await state.urlOf('slow')) === undefined, { what: "the slow instance's lease to expire", timeoutMs: 5000 });
    await survivor.sweep();
    expect(done).toEqual(['terminate wacid.slow1', 'terminate wacid.slow2']);
  });
});

describe('an instance whose lease ran out while it was alive', () => {
  it('records its calls, dialogs and ringing INVITEs again once it sees the lapse, and counts it', async () => {
    const { Takeover } = await import('../../src/bridge/cluster/takeover.js');
    const { NO_CLUSTER_METRICS } = await import('../../src/bridge/cluster/metrics.js');
    const state = fresh();
    const prefix = `t${n}:`;
    const lapses: string[] = [];
    const metrics = { ...NO_CLUSTER_METRICS, leaseLapsed: () => void lapses.push('lapsed') };
    const dialog = { callId: 'sip-l', localHeader: '<sip:a@b>;tag=x', remoteHeader: '<sip:c@d>;tag=y', remoteTarget: 'sip:c@127.0.0.2', routeSet: [], localSeq: 2, transport: 'udp' as const };
    const takeover = new Takeover({ instanceId: 'lapse', state, sip: { dialogSnapshots: () => [dialog] }, media: { name: 'rtpengine' }, whatsapp: { terminate: async () => undefined }, log, dialogTtlMs: 60_000 });
    const cfg = { redisUrl: daemon.url, instanceId: 'lapse', internal: { host: '127.0.0.1', port: 0 }, advertiseUrl: 'http://127.0.0.1:1', secret: SECRET, heartbeatMs: 100, leaseMs: 60_000, keyPrefix: prefix };
    const node = new ClusterNode({ config: cfg, state, log, callTtlMs: 60_000, deliver: () => undefined, takeover, metrics });
    await node.start();
    try {
      node.started({ direction: 'inbound', key: 'wacid.l', waCallId: 'wacid.l', sipCallId: 'sip-l', phoneNumberId: 'pn' });
      // Bounded waits: the record is written at once, the dialog at the next heartbeat (100 ms).
      await waitFor(async () => (await state.leftBy('lapse')).calls.size === 1 && (await state.leftBy('lapse')).dialogs.size === 1, { what: 'the call and its dialog in Redis' });
      // A survivor took it for dead (its lease gone), ended its call and buried what it read.
      await redis.del(`${prefix}inst:lapse`);
      await state.bury('lapse', (await state.leftBy('lapse')).read);
      await waitFor(async () => (await state.leftBy('lapse')).calls.size === 1 && (await state.leftBy('lapse')).dialogs.size === 1, { what: 'the call and its dialog written again' });
      expect(lapses).toEqual(['lapsed']);
      expect(await state.members()).toEqual(['lapse']);
    } finally {
      node.abandon();
    }
  });
});

describe('Redis going away', () => {
  it('events are handled at once on the instance that took them, not after reconnect back-offs', async () => {
    const { connectRedis } = await import('../../src/bridge/cluster/shared-state.js');
    const own = await startRedis();
    const client = await connectRedis(own.url);
    const got: WaEvent[] = [];
    const cfg = { redisUrl: own.url, instanceId: 'lonely', internal: { host: '127.0.0.1', port: 0 }, advertiseUrl: 'http://127.0.0.1:1', secret: 'cluster-secret-0123456789', heartbeatMs: 60_000, leaseMs: 180_000, keyPrefix: 'down:' };
    const counted: string[] = [];
    const { NO_CLUSTER_METRICS } = await import('../../src/bridge/cluster/metrics.js');
    const metrics = { ...NO_CLUSTER_METRICS, redisError: (op: string) => void counted.push(op), leaseRenewalFailed: () => void counted.push('lease renewal failed') };
    const node = new ClusterNode({ config: cfg, state: new RedisSharedState(client, 'down:', SECRET), log, callTtlMs: 60_000, deliver: (evs) => got.push(...evs), metrics });
    try {
      await node.start();
      await own.stop();
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) await node.route([terminate(`wacid.down${i}`)]);
      // With the client queueing commands while reconnecting, these three took about 2 s.
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(got.map((e) => (e.kind === 'terminate' ? e.callId : ''))).toEqual(['wacid.down0', 'wacid.down1', 'wacid.down2']);
      expect(counted).toEqual(['route', 'route', 'route']);
    } finally {
      await node.close();
      client.disconnect();
      await own.stop();
    }
  });
});

describe('a forwarded event whose owner does not answer', () => {
  const secret = 'cluster-secret-0123456789';
  const setup = async (name: string, leaseMs = 600) => {
    const prefix = `fwd${++n}:`;
    const state = new RedisSharedState(redis, prefix, SECRET);
    const counted: string[] = [];
    const metrics = { ...(await import('../../src/bridge/cluster/metrics.js')).NO_CLUSTER_METRICS, forwarded: (r: string, k: number) => void counted.push(`${r} ${k}`), takenOver: (r: string) => void counted.push(`takeover ${r}`) };
    const done: string[] = [];
    const lines: string[] = [];
    const flog = createLogger({ level: 'info', destination: { write: (s: string) => (lines.push(s), true) } as unknown as NodeJS.WritableStream });
    const { Takeover } = await import('../../src/bridge/cluster/takeover.js');
    const takeover = new Takeover({
      instanceId: name,
      state,
      sip: { byeStored: async (d) => (done.push(`bye ${d.callId}`), 200) },
      media: { name: 'rtpengine', deleteForeign: async (id: string) => void done.push(`delete ${id}`) },
      whatsapp: { terminate: async (_pn: string, id: string) => void done.push(`terminate ${id}`) },
      log: flog,
      dialogTtlMs: 60_000,
      metrics,
    });
    const cfg = { redisUrl: daemon.url, instanceId: name, internal: { host: '127.0.0.1', port: 0 }, advertiseUrl: 'http://127.0.0.1:1', secret, heartbeatMs: 200, leaseMs, keyPrefix: prefix };
    const node = new ClusterNode({ config: cfg, state, log: flog, callTtlMs: 60_000, deliver: () => undefined, takeover, metrics });
    const logged = (msg: string) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);
    return { state, node, counted, done, logged, prefix };
  };
  /** A loopback port nobody listens on (the hop is refused). */
  const closedPort = async () => {
    const srv = createInternalServer({ log, secret, onEvents: () => undefined });
    const url = await srv.listen({ host: '127.0.0.1', port: 0 });
    await srv.close();
    return url;
  };

  it('an owner that refuses the hop with a 4xx (another secret) is asked once, not retried', async () => {
    const { state, node, counted, logged } = await setup('fwd-4xx');
    // The owner runs with another cluster secret: its hop answers 401.
    const other = createInternalServer({ log, secret: 'another-secret-0123456789', onEvents: () => undefined });
    let hits = 0;
    other.addHook('onRequest', async () => void hits++);
    const url = await other.listen({ host: '127.0.0.1', port: 0 });
    try {
      await state.renew('fwd-other', url, 60_000);
      await state.set({ kind: 'wa', id: 'wacid.f4' }, 'fwd-other', 60_000);
      await node.route([terminate('wacid.f4')]);
      expect(hits).toBe(1);
      expect(counted).toEqual(['failed 1']);
      expect(logged('forwarding webhook events to the owning instance failed; retrying')).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('the owner died: its lease runs out while the hop is retried, and this instance ends its calls at once (terminate, BYE, delete)', async () => {
    const { state, node, counted, done, logged } = await setup('fwd-b');
    await state.join('fwd-dead');
    await state.renew('fwd-dead', await closedPort(), 600);
    await state.set({ kind: 'wa', id: 'wacid.f1' }, 'fwd-dead', 60_000);
    await state.recordCall('fwd-dead', 'wacid.f1', { direction: 'inbound', waCallId: 'wacid.f1', sipCallId: 'sip-f1', phoneNumberId: 'pn', mediaCallId: 'wacid.f1' }, 60_000);
    await state.putDialogs('fwd-dead', new Map([['sip-f1', JSON.stringify({ callId: 'sip-f1', localHeader: '<sip:a@b>;tag=x', remoteHeader: '<sip:c@d>;tag=y', remoteTarget: 'sip:c@127.0.0.2', routeSet: [], localSeq: 2, transport: 'udp' })]]), [], 60_000);
    const t0 = performance.now();
    await node.route([terminate('wacid.f1')]);
    const tookMs = performance.now() - t0;
    expect(done.sort()).toEqual(['bye sip-f1', 'delete wacid.f1', 'terminate wacid.f1']);
    expect(counted).toEqual(['owner-dead 1', 'takeover forward']);
    // Retried while the lease lived (600 ms), then taken over: not at the next sweep, not never.
    expect(tookMs).toBeLessThan(3000);
    expect(logged('forwarding webhook events to the owning instance failed; retrying').length).toBeGreaterThan(0);
    expect(logged('the owner of these calls is dead (no lease): taking its calls over now')).toEqual([expect.objectContaining({ owner: 'fwd-dead', waCallIds: ['wacid.f1'] })]);
    expect(await state.members()).toEqual([]);
    process.stderr.write(`forward to a dead owner: its call ended ${Math.round(tookMs)} ms after the event arrived (lease 600 ms, set just before)\n`);
  });

  it('the owner holds its lease but does not answer: bounded retries, an error naming the call, the events left in Redis for its next heartbeat; one that comes back gets them', async () => {
    const { state, node, counted, done, logged, prefix } = await setup('fwd-c');
    const url = await closedPort();
    await state.renew('fwd-mute', url, 60_000);
    await state.set({ kind: 'wa', id: 'wacid.f2' }, 'fwd-mute', 60_000);
    const t0 = performance.now();
    await node.route([terminate('wacid.f2')]);
    // The retry window is one lease and one heartbeat (800 ms here).
    expect(performance.now() - t0).toBeGreaterThanOrEqual(500);
    expect(counted).toEqual(['failed 1']);
    expect(done).toEqual([]);
    expect(logged('forwarding webhook events to the owning instance failed; it still holds its lease: left in Redis for it to take at its next heartbeat')).toEqual([expect.objectContaining({ owner: 'fwd-mute', waCallIds: ['wacid.f2'], events: ['terminate'] })]);
    // The mute owner (its hop unreachable, Redis fine) takes the terminate at its next heartbeat.
    const mailed: WaEvent[] = [];
    const muteCfg = { redisUrl: daemon.url, instanceId: 'fwd-mute', internal: { host: '127.0.0.1', port: 0 }, advertiseUrl: url, secret, heartbeatMs: 100, leaseMs: 600, keyPrefix: prefix };
    const mute = new ClusterNode({ config: muteCfg, state, log, callTtlMs: 60_000, deliver: (evs) => mailed.push(...evs) });
    await mute.start();
    try {
      await waitFor(() => mailed.length > 0, { what: 'the mute owner to take its mail' });
      expect(mailed.map((e) => (e.kind === 'terminate' ? e.callId : e.kind))).toEqual(['wacid.f2']);
    } finally {
      mute.abandon();
    }

    // The owner's listener comes back on the same port during the retries: delivered, counted as retried.
    const got: WaEvent[] = [];
    const port = Number(new URL(url).port);
    const back = createInternalServer({ log, secret, onEvents: (evs) => got.push(...evs) });
    await state.set({ kind: 'wa', id: 'wacid.f3' }, 'fwd-mute', 60_000);
    const routed = node.route([terminate('wacid.f3')]);
    await waitFor(() => logged('forwarding webhook events to the owning instance failed; retrying').some((l) => (l.waCallIds as string[]).includes('wacid.f3')), { what: 'a failed first try' });
    await back.listen({ host: '127.0.0.1', port });
    try {
      await routed;
      expect(got.map((e) => (e.kind === 'terminate' ? e.callId : ''))).toEqual(['wacid.f3']);
      expect(counted).toEqual(['failed 1', 'retried 1']);
    } finally {
      await back.close();
    }
  });
});
