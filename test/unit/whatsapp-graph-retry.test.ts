import { createServer, type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCallsApi, type CallsApiOptions } from '../../src/whatsapp/graph-client.js';
import { backoffMs, classify, parseRetryAfter, withRetries } from '../../src/whatsapp/graph-retry.js';
import { WhatsAppCounters } from '../../src/whatsapp/counters.js';
import { GraphApiError } from '../../src/whatsapp/types.js';
import { createGraphSimulator, type GraphSimulator } from '../../src/simulator/graph-server.js';
import { silentLogger } from '../../src/util/log.js';

const TOKEN = 'tok';
const PN = '436666719526789';
const SDP = 'v=0\r\n';
let sim: GraphSimulator;
let url: string;
let counters: WhatsAppCounters;
let sleeps: number[];

beforeAll(async () => {
  sim = createGraphSimulator({ accessToken: TOKEN, apiKey: TOKEN });
  url = await sim.listen();
});
afterAll(() => sim.close());
afterEach(() => {
  sim.clearFaults();
  sim.actions.length = 0;
});

function api(over: Partial<CallsApiOptions> = {}) {
  counters = new WhatsAppCounters();
  sleeps = [];
  return createCallsApi({
    provider: 'meta',
    baseUrl: url,
    version: 'v23.0',
    accessToken: TOKEN,
    logger: silentLogger(),
    // Generous: a loaded machine can take hundreds of ms to answer, and a late answer must not
    // count as lost (it would add a retry). Tests of lost answers and hangs set a shorter one.
    timeoutMs: 5000,
    retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 2000 },
    counters,
    // Records the delay the client chose, then waits a token time (the policy, not the clock, is under test).
    sleep: async (ms) => void sleeps.push(ms),
    ...over,
  } as CallsApiOptions);
}

/** The client's timeout where an answer is meant to be lost: long enough for a real answer on a busy machine. */
const LOST_MS = 1500;

const count = (action: string) => sim.actions.filter((a) => a.action === action).length;

describe('Graph actions survive a bad second', () => {
  it.each(['pre_accept', 'accept', 'reject', 'terminate'] as const)('%s: a 500 then success is retried and succeeds', async (action) => {
    const c = api();
    const callId = `wacid.R${action}`;
    sim.registerCall(callId, PN);
    sim.injectFault(action, { kind: 'http-500' });
    const run = { pre_accept: () => c.preAccept(PN, callId, SDP), accept: () => c.accept(PN, callId, SDP), reject: () => c.reject(PN, callId), terminate: () => c.terminate(PN, callId) }[action];
    await run();
    expect(count(action)).toBe(2);
    expect(sim.actions.map((a) => a.response.status)).toEqual([500, 200]);
    expect(counters.get('graph_retries', { action })).toBe(1);
  });

  it('429 honours Retry-After as the delay floor, counted as rate limited', async () => {
    const c = api();
    sim.registerCall('wacid.429', PN);
    sim.injectFault('accept', { kind: 'rate-limit', retryAfterSec: 1 });
    await c.accept(PN, 'wacid.429', SDP);
    expect(sleeps).toEqual([1000]);
    expect(counters.get('graph_rate_limited', { action: 'accept' })).toBe(1);
  });

  it('a Retry-After beyond maxDelayMs gives up at once rather than hold the call', async () => {
    const c = api();
    sim.registerCall('wacid.slow', PN);
    sim.injectFault('accept', { kind: 'rate-limit', retryAfterSec: 60 });
    await expect(c.accept(PN, 'wacid.slow', SDP)).rejects.toMatchObject({ httpStatus: 429, retryAfterMs: 60_000 });
    expect(count('accept')).toBe(1);
    expect(counters.get('graph_gave_up', { action: 'accept' })).toBe(1);
  });

  it('retries are bounded: three 500s give up with the last error', async () => {
    const c = api();
    sim.registerCall('wacid.down', PN);
    sim.injectFault('terminate', { kind: 'http-500' }, 5);
    await expect(c.terminate(PN, 'wacid.down')).rejects.toMatchObject({ httpStatus: 500, code: 138004 });
    expect(count('terminate')).toBe(3);
    expect(sleeps).toHaveLength(2);
    expect(sleeps[1]!).toBeGreaterThan(sleeps[0]! / 2); // exponential with jitter: 5..10 then 10..20
  });

  it('a hang (no answer) on accept is retried; "already accepted" after a lost answer counts as success', async () => {
    const c = api({ timeoutMs: LOST_MS });
    sim.registerCall('wacid.lost', PN);
    sim.injectFault('accept', { kind: 'lost-response' });
    await c.accept(PN, 'wacid.lost', SDP);
    expect(sim.getCall('wacid.lost')!.state).toBe('accepted');
    expect(count('accept')).toBe(2);
    expect(counters.get('graph_already_done', { action: 'accept' })).toBe(1);
  });

  it('terminate on a call that already ended is success, not an error', async () => {
    const c = api();
    sim.registerCall('wacid.ended', PN);
    sim.markTerminated('wacid.ended');
    await c.terminate(PN, 'wacid.ended');
    expect(counters.get('graph_already_done', { action: 'terminate' })).toBe(1);
  });

  it('reject on an accepted call is NOT taken as done', async () => {
    const c = api();
    sim.registerCall('wacid.acc', PN);
    await c.accept(PN, 'wacid.acc', SDP);
    await expect(c.reject(PN, 'wacid.acc')).rejects.toMatchObject({ code: 100 });
  });

  it('connect: a 500 or 429 is retried (Graph answered: no call was made) and places exactly one call', async () => {
    const c = api();
    sim.injectFault('connect', { kind: 'http-500' });
    sim.injectFault('connect', { kind: 'rate-limit' });
    const { callId } = await c.connect(PN, '12185552828', SDP, 'opaque-1');
    expect(sim.actions.filter((a) => a.action === 'connect').map((a) => a.response.status)).toEqual([500, 429, 200]);
    expect(sim.actions.filter((a) => a.response.status === 200).map((a) => a.callId)).toEqual([callId]);
  });

  it('connect whose answer is lost is NOT sent again (a second call would ring): outcomeUnknown', async () => {
    const c = api({ timeoutMs: LOST_MS });
    sim.injectFault('connect', { kind: 'lost-response' });
    const err = await c.connect(PN, '12185552828', SDP, 'opaque-2').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphApiError);
    expect(err).toMatchObject({ transport: 'lost', outcomeUnknown: true });
    expect(count('connect')).toBe(1);
    expect(counters.get('graph_gave_up', { action: 'connect' })).toBe(1);
  });

  it('the permission GET is retried on 500 and on a hang', async () => {
    const c = api({ timeoutMs: LOST_MS });
    sim.injectFault('call_permissions', { kind: 'http-500' });
    sim.injectFault('call_permissions', { kind: 'hang' });
    const p = await c.getCallPermissions(PN, '12185552828');
    expect(p.canStartCall).toBe(true);
    expect(count('call_permissions')).toBe(3);
  });

  it('connection refused (nothing sent) is retried even for connect', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const c = api({ baseUrl: `http://127.0.0.1:${port}` });
    await expect(c.connect(PN, '12185552828', SDP)).rejects.toMatchObject({ transport: 'not-sent' });
    expect(counters.get('graph_retries', { action: 'connect' })).toBe(2);
  });
});

describe('retry policy (pure)', () => {
  const e = (status: number, code = 0, msg = 'x') => new GraphApiError(msg, status, code);
  it('classifies', () => {
    expect(classify('accept', e(400, 100, 'Invalid parameter'))).toBe('final');
    expect(classify('accept', e(400, 613))).toBe('retry');
    expect(classify('connect', e(400, 138005))).toBe('retry');
    expect(classify('accept', e(503))).toBe('retry');
    expect(classify('terminate', e(400, 100, 'Call wacid.x is already terminated'))).toBe('already-done');
    expect(classify('reject', e(400, 100, 'Call wacid.x is already accepted; use terminate'))).toBe('final');
    expect(classify('accept', new Error('boom'))).toBe('final');
  });
  it('backoff grows and stays within [d/2, d], capped', () => {
    const p = { attempts: 5, baseDelayMs: 100, maxDelayMs: 300 };
    expect([backoffMs(p, 1, () => 0), backoffMs(p, 1, () => 1)]).toEqual([50, 100]);
    expect([backoffMs(p, 3, () => 0), backoffMs(p, 3, () => 1)]).toEqual([150, 300]);
  });
  it('Retry-After: seconds or an HTTP date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
  it('withRetries resolves undefined on already-done and rethrows final errors untouched', async () => {
    const deps = { policy: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 }, log: silentLogger(), sleep: async () => undefined };
    await expect(withRetries('terminate', deps, async () => Promise.reject(e(400, 100, 'already ended')))).resolves.toBeUndefined();
    const fatal = e(400, 138006);
    await expect(withRetries('connect', deps, async () => Promise.reject(fatal))).rejects.toBe(fatal);
  });
});
