import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createWebhookSender, sendWebhook, buildStatusWebhook } from '../../src/simulator/webhook-sender.js';
import { createGraphSimulator, type GraphSimulator } from '../../src/simulator/graph-server.js';
import { verifyRequestSignature } from '../../src/whatsapp/signature.js';
import { parseWebhook } from '../../src/whatsapp/webhook.js';
import { createCallsApi } from '../../src/whatsapp/graph-client.js';
import { silentLogger } from '../../src/util/log.js';

const SECRET = 'app-secret';
const PN = '436666719526789';
const target = { phoneNumberId: PN, businessNumber: '13175551399' };

interface Received {
  raw: Buffer;
  headers: IncomingMessage['headers'];
  valid: boolean;
}

/** A minimal webhook receiver: verifies the raw bytes like the bridge will. */
let received: Received[] = [];
let server: Server;
let hookUrl: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const provider = req.url === '/360' ? '360dialog' : 'meta';
      const valid = verifyRequestSignature(raw, req.headers, SECRET, provider);
      received.push({ raw, headers: req.headers, valid });
      res.statusCode = valid ? 200 : 401;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));
beforeEach(() => {
  received = [];
});

describe('webhook sender', () => {
  it('signs like Meta; wrong secret and no signature are refused', async () => {
    const payload = buildStatusWebhook({ ...target, callId: 'wacid.1', userWaId: '1', status: 'RINGING' });
    expect(await sendWebhook(`${hookUrl}/`, payload, { appSecret: SECRET })).toBe(200);
    expect(await sendWebhook(`${hookUrl}/`, payload, { appSecret: SECRET, signature: 'wrong' })).toBe(401);
    expect(await sendWebhook(`${hookUrl}/`, payload, { appSecret: SECRET, signature: 'none' })).toBe(401);
    expect(received[0]!.headers['x-hub-signature-256']).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(received[2]!.headers['x-hub-signature-256']).toBeUndefined();
    expect(parseWebhook(JSON.parse(received[0]!.raw.toString())).events[0]).toMatchObject({ kind: 'status', status: 'RINGING' });
  });

  it('signs like 360dialog when asked', async () => {
    const payload = buildStatusWebhook({ ...target, callId: 'wacid.1', userWaId: '1', status: 'ACCEPTED' });
    expect(await sendWebhook(`${hookUrl}/360`, payload, { appSecret: SECRET, provider: '360dialog' })).toBe(200);
    expect(received[0]!.headers['x-360dialog-signature']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('sends raw strings as is, signature over exactly those bytes', async () => {
    const raw = '{ "object" : "whatsapp_business_account", "entry": [] }';
    expect(await sendWebhook(`${hookUrl}/`, raw, { appSecret: SECRET })).toBe(200);
    expect(received[0]!.raw.toString()).toBe(raw);
  });

  describe('bound to a Graph simulator', () => {
    let sim: GraphSimulator;
    beforeAll(async () => {
      sim = createGraphSimulator({ accessToken: 't', apiKey: 'k' });
      await sim.listen();
    });
    afterAll(() => sim.close());

    it('a user call registers the call; its terminate ends it', async () => {
      const sender = createWebhookSender({ url: `${hookUrl}/`, appSecret: SECRET, ...target, simulator: sim });
      const { callId, status } = await sender.userCall({ userWaId: '5511987654321', userName: 'Ana', sdp: 'v=0\r\n' });
      expect(status).toBe(200);
      expect(sim.getCall(callId)).toMatchObject({ state: 'ringing', phoneNumberId: PN, direction: 'USER_INITIATED' });
      const ev = parseWebhook(JSON.parse(received[0]!.raw.toString())).events[0];
      expect(ev).toMatchObject({ kind: 'connect', callId, userName: 'Ana', userWaId: '5511987654321', sdp: 'v=0\r\n' });

      const api = createCallsApi({ provider: 'meta', baseUrl: sim.url, version: 'v23.0', accessToken: 't', logger: silentLogger() });
      await api.preAccept(PN, callId, 'v=0\r\n');
      expect(await sender.terminate({ callId, userWaId: '5511987654321', status: 'COMPLETED' })).toBe(200);
      expect(sim.getCall(callId)?.state).toBe('terminated');
      await expect(api.accept(PN, callId, 'v=0\r\n')).rejects.toMatchObject({ code: 100 });
    });

    it('status, business connect and permission reply go out signed', async () => {
      const sender = createWebhookSender({ url: `${hookUrl}/`, appSecret: SECRET, ...target });
      expect(await sender.businessConnect({ callId: 'wacid.b', userWaId: '12185552828', sdp: 'v=0' })).toBe(200);
      expect(await sender.status({ callId: 'wacid.b', userWaId: '12185552828', status: 'REJECTED' })).toBe(200);
      expect(await sender.permissionReply({ userWaId: '12185552828', response: 'accept', isPermanent: true })).toBe(200);
      expect(await sender.status({ callId: 'wacid.b', userWaId: '1', status: 'RINGING' }, { signature: 'wrong' })).toBe(401);
      const kinds = received.slice(0, 3).map((r) => parseWebhook(JSON.parse(r.raw.toString())).events[0]?.kind);
      expect(kinds).toEqual(['connect', 'status', 'permission_reply']);
    });
  });
});
