/**
 * The simulator's business-initiated half: Graph `connect` from "the bridge" (here a werift
 * full-ICE peer standing in for rtpengine), then the webhooks WhatsApp sends, signed, to a tiny
 * receiver: RINGING, connect with the SDP answer, ACCEPTED; decline; no answer; no permission
 * (138006); a bad offer (100 / 2494010); the business's terminate ends the user's peer.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse, write } from 'sdp-transform';
import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { checkWhatsAppOffer } from '../../src/media/sdp-rules.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { WHATSAPP_OPUS_FMTP } from '../../src/simulator/webrtc-peer.js';
import { verifyRequestSignature } from '../../src/whatsapp/signature.js';
import { parseWebhook } from '../../src/whatsapp/webhook.js';
import type { WaEvent } from '../../src/whatsapp/types.js';

const SECRET = 'app-secret';
const TOKEN = 'token-1';
const PN = '436666719526789';
const USER = '5511987654321';

interface Hook {
  at: number;
  valid: boolean;
  field: string;
  events: WaEvent[];
}

let server: Server;
let hooks: Hook[] = [];
let sim: WhatsAppSimulator;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const valid = verifyRequestSignature(raw, req.headers, SECRET, 'meta');
      const body = JSON.parse(raw.toString('utf8')) as { entry: Array<{ changes: Array<{ field: string }> }> };
      hooks.push({ at: Date.now(), valid, field: body.entry[0]!.changes[0]!.field, events: parseWebhook(body).events });
      res.statusCode = valid ? 200 : 401;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

beforeEach(async () => {
  hooks = [];
  sim = await WhatsAppSimulator.start({
    phoneNumberId: PN,
    businessNumber: '13175551399',
    accessToken: TOKEN,
    appSecret: SECRET,
    webhookUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`,
  });
});

afterEach(async () => {
  await sim.close();
});

/** The business side: a full-ICE werift peer whose offer is shaped like the rtpengine engine's. */
async function businessPeer(): Promise<{ pc: RTCPeerConnection; offer: string }> {
  const pc = new RTCPeerConnection({
    iceServers: [],
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceUseIpv4: false,
    iceUseIpv6: false,
    bundlePolicy: 'max-bundle',
    codecs: {
      audio: [
        new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111, parameters: WHATSAPP_OPUS_FMTP }),
        new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, payloadType: 126 }),
      ],
    },
    headerExtensions: { audio: [] },
  });
  pc.addTransceiver('audio', { direction: 'sendrecv' });
  await pc.setLocalDescription(await pc.createOffer());
  while (pc.iceGatheringState !== 'complete') await new Promise((r) => setTimeout(r, 10));
  const s = parse(pc.localDescription!.sdp) as ReturnType<typeof parse> & Record<string, unknown>;
  const m = s.media[0]! as ReturnType<typeof parse>['media'][number] & Record<string, unknown>;
  delete m['endOfCandidates'];
  m.candidates = (m.candidates ?? []).filter((c) => c.ip === '127.0.0.1');
  const offer = write(s);
  return { pc, offer };
}

async function connect(to: string, sdp: string, opaque = 'ext-1001'): Promise<{ status: number; body: unknown; at: number }> {
  const res = await fetch(`${sim.graphUrl}/v23.0/${PN}/calls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ messaging_product: 'whatsapp', to, action: 'connect', session: { sdp_type: 'offer', sdp }, biz_opaque_callback_data: opaque }),
  });
  const body: unknown = await res.json();
  return { status: res.status, body, at: Date.now() };
}

async function waitHooks(n: number, timeoutMs = 5000): Promise<Hook[]> {
  const deadline = Date.now() + timeoutMs;
  while (hooks.length < n) {
    if (Date.now() > deadline) throw new Error(`only ${hooks.length} webhooks, wanted ${n}: ${JSON.stringify(hooks.map((h) => h.events))}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return hooks;
}

const summary = (h: Hook): string => {
  const e = h.events[0]!;
  if (e.kind === 'status') return `status:${e.status}`;
  if (e.kind === 'terminate') return `terminate:${e.status}${e.durationSec !== undefined ? `:${e.durationSec}s` : ''}`;
  return e.kind;
};

describe('WhatsAppSimulator, business-initiated calls', () => {
  for (const setup of ['active', 'passive'] as const) {
    it(`connect → RINGING → connect webhook with an ICE-lite answer (setup:${setup}) → ACCEPTED; media comes up`, async () => {
      const user = sim.user(USER, { kind: 'answer', afterMs: 50, setup, toneHz: 1000 });
      const biz = await businessPeer();
      try {
        expect(checkWhatsAppOffer(biz.offer)).toEqual([]);
        const r = await connect(USER, biz.offer);
        expect(r.status).toBe(200);
        const callId = (r.body as { calls: Array<{ id: string }> }).calls[0]!.id;
        expect(callId).toMatch(/^wacid\./);

        const c = await user.waitForConnect(5000);
        expect(c.callId).toBe(callId);
        expect(user.callId).toBe(callId);
        const got = await waitHooks(3);
        expect(got.every((h) => h.valid && h.field === 'calls')).toBe(true);
        expect(got.map(summary)).toEqual(['status:RINGING', 'connect', 'status:ACCEPTED']);
        // Never before the Graph answer: the RINGING webhook came after connect returned.
        expect(got[0]!.at).toBeGreaterThanOrEqual(r.at);
        expect(got[0]!.events[0]).toMatchObject({ kind: 'status', callId, status: 'RINGING', bizOpaqueCallbackData: 'ext-1001' });
        const ev = got[1]!.events[0]!;
        expect(ev).toMatchObject({ kind: 'connect', callId, direction: 'BUSINESS_INITIATED', sdpType: 'answer', userWaId: USER, bizOpaqueCallbackData: 'ext-1001' });
        const answer = (ev as { sdp: string }).sdp;
        expect(answer).toMatch(/^a=ice-lite\r?$/m);
        expect(answer).toContain(`a=setup:${setup}`);
        expect(answer).toContain(`a=fmtp:111 ${WHATSAPP_OPUS_FMTP}`);
        expect(answer).toContain('a=rtpmap:126 telephone-event/8000');
        expect(answer.match(/^a=fingerprint:sha-256 /gm)).toHaveLength(1);

        // The business applies the answer: ICE + DTLS come up with the simulated user.
        await biz.pc.setRemoteDescription({ type: 'answer', sdp: answer });
        await user.peer!.waitConnected(10_000);
        expect(user.peer!.dtlsRole).toBe(setup === 'active' ? 'client' : 'server');
        expect(user.received.map((a) => a.action)).toEqual(['connect']);

        // The business hangs up: the user's peer ends, no webhook from the user.
        const t = await fetch(`${sim.graphUrl}/v23.0/${PN}/calls`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ messaging_product: 'whatsapp', call_id: callId, action: 'terminate' }),
        });
        expect(t.status).toBe(200);
        await new Promise((r) => setTimeout(r, 50));
        expect(user.inCall).toBe(false);
        expect(user.peer!.connectionState).toBe('closed');
        expect(user.received.map((a) => a.action)).toEqual(['connect', 'terminate']);
        expect(hooks).toHaveLength(3);
      } finally {
        await biz.pc.close();
      }
    });
  }

  it('the user hangs up: terminate COMPLETED with a duration', async () => {
    const user = sim.user(USER, { kind: 'answer', afterMs: 10 });
    const biz = await businessPeer();
    try {
      await connect(USER, biz.offer);
      await user.waitForConnect();
      await waitHooks(3);
      expect(await user.hangUp()).toBe(200);
      const got = await waitHooks(4);
      expect(summary(got[3]!)).toBe('terminate:COMPLETED:0s');
      expect(got[3]!.events[0]).toMatchObject({ direction: 'BUSINESS_INITIATED', bizOpaqueCallbackData: 'ext-1001' });
      expect(sim.graph.getCall(user.callId!)?.state).toBe('terminated');
    } finally {
      await biz.pc.close();
    }
  });

  it('decline: RINGING, REJECTED, then terminate without duration', async () => {
    const user = sim.user(USER, { kind: 'decline', afterMs: 20 });
    const { pc, offer } = await businessPeer();
    try {
      expect((await connect(USER, offer)).status).toBe(200);
      const got = await waitHooks(3);
      expect(got.map(summary)).toEqual(['status:RINGING', 'status:REJECTED', 'terminate:COMPLETED']);
      expect(user.peer).toBeUndefined();
      expect(user.inCall).toBe(false);
    } finally {
      await pc.close();
    }
  });

  it('no answer: RINGING, then terminate after giveUpAfterMs', async () => {
    sim.user(USER, { kind: 'no-answer', giveUpAfterMs: 150 });
    const { pc, offer } = await businessPeer();
    try {
      const r = await connect(USER, offer);
      const got = await waitHooks(2);
      expect(got.map(summary)).toEqual(['status:RINGING', 'terminate:COMPLETED']);
      expect(got[1]!.at - r.at).toBeGreaterThanOrEqual(140);
    } finally {
      await pc.close();
    }
  });

  it('no permission: connect answers 400 / 138006 and call_permissions says no_permission; accepting the request fixes both', async () => {
    const user = sim.user(USER, { kind: 'no-permission' });
    const r = await connect(USER, 'v=0\r\n');
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: 138006, message: '(#138006) No approved call permission', type: 'OAuthException' } });
    expect(user.received.map((a) => a.response.status)).toEqual([400]);
    const perm = await fetch(`${sim.graphUrl}/v23.0/${PN}/call_permissions?user_wa_id=${USER}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const pb = (await perm.json()) as { permission: { status: string }; actions: Array<{ action_name: string; can_perform_action: boolean }> };
    expect(pb.permission.status).toBe('no_permission');
    expect(pb.actions.find((a) => a.action_name === 'start_call')?.can_perform_action).toBe(false);
    await new Promise((r2) => setTimeout(r2, 30));
    expect(hooks).toHaveLength(0);

    expect(await user.permissionReply('accept')).toBe(200);
    const got = await waitHooks(1);
    expect(got[0]!.field).toBe('messages');
    expect(got[0]!.events[0]).toMatchObject({ kind: 'permission_reply', userWaId: USER, response: 'accept', isPermanent: false });
    const perm2 = (await (await fetch(`${sim.graphUrl}/v23.0/${PN}/call_permissions?user_wa_id=${USER}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
      permission: { status: string };
    };
    expect(perm2.permission.status).toBe('temporary');
    expect(user.currentBehaviour.kind).toBe('answer');
  });

  it('an offer that breaks Meta rules: 400 / 100 / 2494010, no webhook', async () => {
    const { pc, offer } = await businessPeer();
    try {
      const bad = offer.replace(/^a=setup:actpass/m, 'a=setup:active');
      const r = await connect(USER, bad);
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ error: { code: 100, error_subcode: 2494010 } });
      await new Promise((r2) => setTimeout(r2, 50));
      expect(hooks).toHaveLength(0);
    } finally {
      await pc.close();
    }
  });
});
