import { createServer, type Server } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCallsApi, graphErrorFromResponse, type WhatsAppCallingApi } from '../../src/whatsapp/graph-client.js';
import { GraphApiError } from '../../src/whatsapp/types.js';
import { createGraphSimulator, type ConnectHookEvent, type GraphSimulator } from '../../src/simulator/graph-server.js';
import { createLogger, silentLogger } from '../../src/util/log.js';

const NO_RETRY = { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 };
const TOKEN = 'EAAG-test-token';
const KEY = 'd360-test-key';
const PN = '436666719526789';
const ANSWER = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=setup:active\r\n';

let sim: GraphSimulator;
let url: string;

beforeAll(async () => {
  sim = createGraphSimulator({ accessToken: TOKEN, apiKey: KEY, version: 'v23.0', d360PhoneNumberId: PN });
  url = await sim.listen();
});
afterAll(() => sim.close());
afterEach(() => {
  sim.actions.length = 0;
});

function clients(logger = silentLogger()): [string, WhatsAppCallingApi][] {
  return [
    ['meta', createCallsApi({ provider: 'meta', baseUrl: url, version: 'v23.0', accessToken: TOKEN, logger, retry: NO_RETRY })],
    ['360dialog', createCallsApi({ provider: '360dialog', baseUrl: url, apiKey: KEY, logger, retry: NO_RETRY })],
  ];
}

async function catchErr(p: Promise<unknown>): Promise<GraphApiError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GraphApiError);
    return err as GraphApiError;
  }
  throw new Error('expected a GraphApiError');
}

describe.each([
  ['meta', `/v23.0/${PN}/calls`],
  ['360dialog', '/calling/calls'],
])('calls actions on the wire (%s)', (provider, callsPath) => {
  const api = () => clients().find(([p]) => p === provider)![1];

  it('pre_accept then accept: path and exact bodies', async () => {
    const callId = `wacid.in-${provider}`;
    sim.registerCall(callId, PN);
    await api().preAccept(PN, callId, ANSWER);
    await api().accept(PN, callId, ANSWER, 'ext-7');
    const [pre, acc] = sim.actions;
    expect(pre).toMatchObject({ provider, method: 'POST', path: callsPath, action: 'pre_accept', callId, response: { status: 200 } });
    expect(pre!.body).toEqual({ messaging_product: 'whatsapp', call_id: callId, action: 'pre_accept', session: { sdp_type: 'answer', sdp: ANSWER } });
    expect(acc!.body).toEqual({
      messaging_product: 'whatsapp',
      call_id: callId,
      action: 'accept',
      session: { sdp_type: 'answer', sdp: ANSWER },
      biz_opaque_callback_data: 'ext-7',
    });
    expect(sim.getCall(callId)?.state).toBe('accepted');
  });

  it('accept without opaque data has no such key; terminate', async () => {
    const callId = `wacid.acc-${provider}`;
    sim.registerCall(callId, PN);
    await api().accept(PN, callId, ANSWER);
    await api().terminate(PN, callId);
    expect(sim.actions[0]!.body).not.toHaveProperty('biz_opaque_callback_data');
    expect(sim.actions[1]!.body).toEqual({ messaging_product: 'whatsapp', call_id: callId, action: 'terminate' });
  });

  it('reject', async () => {
    const callId = `wacid.rej-${provider}`;
    sim.registerCall(callId, PN);
    await api().reject(PN, callId);
    expect(sim.actions[0]).toMatchObject({ path: callsPath, action: 'reject' });
    expect(sim.actions[0]!.body).toEqual({ messaging_product: 'whatsapp', call_id: callId, action: 'reject' });
  });

  it('connect returns the wacid and fires the connect hook', async () => {
    let onConnect: (c: ConnectHookEvent) => void = () => undefined;
    const hooked = new Promise<ConnectHookEvent>((resolve) => {
      onConnect = resolve;
      sim.on('connect', onConnect);
    });
    const { callId } = await api().connect(PN, '12185552828', 'v=0\r\n', 'ext-9');
    expect(callId).toMatch(/^wacid\./);
    expect(sim.actions[0]!.body).toEqual({
      messaging_product: 'whatsapp',
      to: '12185552828',
      action: 'connect',
      session: { sdp_type: 'offer', sdp: 'v=0\r\n' },
      biz_opaque_callback_data: 'ext-9',
    });
    await expect(hooked).resolves.toMatchObject({ callId, to: '12185552828', sdp: 'v=0\r\n', bizOpaqueCallbackData: 'ext-9', provider });
    sim.off('connect', onConnect);
    await api().terminate(PN, callId);
    expect(sim.getCall(callId)?.state).toBe('terminated');
  });

  it('call permissions: path and typed result', async () => {
    sim.setPermission('5511987654321', 'temporary');
    const perms = await api().getCallPermissions(PN, '5511987654321');
    const a = sim.actions[0]!;
    expect(a.method).toBe('GET');
    expect(a.path).toBe(provider === 'meta' ? `/v23.0/${PN}/call_permissions` : '/calling/permissions/5511987654321');
    expect(perms.status).toBe('temporary');
    expect(perms.expirationTime).toBeGreaterThan(Date.now() / 1000);
    expect(perms.canStartCall).toBe(true);
    expect(perms.canRequestPermission).toBe(true);
    expect(perms.actions.find((x) => x.actionName === 'send_call_permission_request')?.limits[0]).toEqual({ timePeriod: 'PT24H', maxAllowed: 1, currentUsage: 0 });
    sim.setPermission('1', 'no_permission');
    expect(await api().getCallPermissions(PN, '1')).toMatchObject({ status: 'no_permission', canStartCall: false });
  });

  it('call permission request message', async () => {
    const { messageId } = await api().sendCallPermissionRequest(PN, '5511987654321', 'May we call you?');
    expect(messageId).toMatch(/^wamid\./);
    expect(sim.actions[0]).toMatchObject({ action: 'call_permission_request', path: provider === 'meta' ? `/v23.0/${PN}/messages` : '/messages' });
    expect(sim.actions[0]!.body).toEqual({
      messaging_product: 'whatsapp',
      to: '5511987654321',
      type: 'interactive',
      interactive: { type: 'call_permission_request', action: { name: 'call_permission_request' }, body: { text: 'May we call you?' } },
    });
    await api().sendCallPermissionRequest(PN, '5511987654321');
    expect((sim.actions[1]!.body as any).interactive).not.toHaveProperty('body');
  });
});

describe('errors', () => {
  it('a simulated Meta error becomes GraphApiError with every field', async () => {
    const [, meta] = clients()[0]!;
    sim.registerCall('wacid.err', PN);
    sim.failNext('accept', { httpStatus: 400, code: 138006, subcode: 2494055, message: '(#138006) No approved call permission', details: 'user has not granted', isTransient: false });
    const err = await catchErr(meta.accept(PN, 'wacid.err', ANSWER));
    expect(err.httpStatus).toBe(400);
    expect(err.code).toBe(138006);
    expect(err.subcode).toBe(2494055);
    expect(err.message).toBe('(#138006) No approved call permission');
    expect(err.details).toBe('user has not granted');
    expect(err.fbtraceId).toMatch(/^A/);
    expect(err.isTransient).toBe(false);
    // the failure did not change the call: a real accept still works
    await meta.accept(PN, 'wacid.err', ANSWER);
  });

  it('a transient 500 is marked transient', async () => {
    const [, meta] = clients()[0]!;
    sim.failNext('connect', { httpStatus: 500, code: 138004, message: 'Connection error' });
    const err = await catchErr(meta.connect(PN, '12185552828', 'v=0'));
    expect(err).toMatchObject({ httpStatus: 500, code: 138004, isTransient: true });
  });

  it('360dialog string errors keep the (#code)', async () => {
    const [, d360] = clients()[1]!;
    const err = await catchErr(d360.accept(PN, 'wacid.unknown', ANSWER));
    expect(err.httpStatus).toBe(400);
    expect(err.code).toBe(100);
    expect(err.message).toMatch(/^\(#100\) Invalid parameter: Unknown call_id/);
  });

  it('401 on a bad Meta token: OAuth code 190', async () => {
    const bad = createCallsApi({ provider: 'meta', baseUrl: url, version: 'v23.0', accessToken: 'nope', logger: silentLogger(), retry: NO_RETRY });
    const err = await catchErr(bad.terminate(PN, 'wacid.x'));
    expect(err).toMatchObject({ httpStatus: 401, code: 190, isTransient: false });
    expect(sim.actions[0]!.response.status).toBe(401);
  });

  it('401 on a bad 360dialog key', async () => {
    const bad = createCallsApi({ provider: '360dialog', baseUrl: url, apiKey: 'nope', logger: silentLogger(), retry: NO_RETRY });
    const err = await catchErr(bad.terminate(PN, 'wacid.x'));
    expect(err.httpStatus).toBe(401);
    expect(err.message).toMatch(/Invalid api key/);
  });

  it('a server that never answers gives code 0 at the timeout', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const silent: Server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as import('node:net').AddressInfo).port;
    try {
      const api = createCallsApi({ provider: 'meta', baseUrl: `http://127.0.0.1:${port}`, version: 'v23.0', accessToken: TOKEN, timeoutMs: 200, logger: silentLogger(), retry: NO_RETRY });
      const t0 = Date.now();
      const err = await catchErr(api.accept(PN, 'wacid.t', ANSWER));
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(err).toMatchObject({ code: 0, httpStatus: 0, isTransient: true });
      expect(err.message).toMatch(/timeout after 200 ms/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('a simulator handler that hangs also times out', async () => {
    sim.setHandler('terminate', () => new Promise(() => undefined));
    try {
      const api = createCallsApi({ provider: 'meta', baseUrl: url, version: 'v23.0', accessToken: TOKEN, timeoutMs: 150, logger: silentLogger(), retry: NO_RETRY });
      const err = await catchErr(api.terminate(PN, 'wacid.h'));
      expect(err.code).toBe(0);
    } finally {
      sim.setHandler('terminate', undefined);
    }
  });

  it('connection refused gives code 0', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as import('node:net').AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const api = createCallsApi({ provider: '360dialog', baseUrl: `http://127.0.0.1:${port}`, apiKey: KEY, logger: silentLogger(), retry: NO_RETRY });
    const err = await catchErr(api.reject(PN, 'wacid.r'));
    expect(err).toMatchObject({ code: 0, httpStatus: 0 });
    expect(err.message).toMatch(/network error/);
  });

  it('graphErrorFromResponse on a non-JSON body', () => {
    const e = graphErrorFromResponse(502, undefined, '<html>Bad gateway</html>');
    expect(e).toMatchObject({ httpStatus: 502, code: 0, isTransient: true });
    expect(e.message).toContain('HTTP 502');
  });
});

describe('logging', () => {
  it('logs each request at debug with the call id, never the token, key or SDP', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger({ level: 'debug', destination });
    for (const [, api] of clients(logger)) {
      sim.registerCall('wacid.log', PN);
      await api.preAccept(PN, 'wacid.log', ANSWER).catch(() => undefined);
      await api.terminate(PN, 'wacid.log').catch(() => undefined);
    }
    const all = lines.join('');
    expect(lines.length).toBeGreaterThanOrEqual(4);
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed.filter((l) => l.msg === 'whatsapp api request').every((l) => l.callId === 'wacid.log' && l.level === 20)).toBe(true);
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain(KEY);
    expect(all).not.toContain('a=setup:active');
    expect(all.toLowerCase()).not.toContain('authorization');
  });
});
