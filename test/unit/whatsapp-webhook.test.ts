import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { eventKey, parseWebhook } from '../../src/whatsapp/webhook.js';
import { verifyChallenge } from '../../src/whatsapp/webhook-auth.js';
import type { WaConnectEvent, WaPermissionReplyEvent, WaStatusEvent, WaTerminateEvent } from '../../src/whatsapp/types.js';
import {
  buildBusinessConnectWebhook,
  buildPermissionReplyWebhook,
  buildStatusWebhook,
  buildTerminateWebhook,
  buildUserConnectWebhook,
} from '../../src/simulator/webhook-sender.js';

const dir = new URL('../fixtures/whatsapp/', import.meta.url);
const text = (name: string) => readFileSync(new URL(name, dir), 'utf8');
const json = (name: string): any => JSON.parse(text(name));
/** The fixture's offer with CRLF line ends, as WhatsApp sends it. */
const OFFER = text('offer-user-initiated.sdp').replace(/\r?\n/g, '\r\n');

function userConnectFixture(): any {
  const payload = json('webhook-connect-user-initiated.json');
  payload.entry[0].changes[0].value.calls[0].session.sdp = OFFER;
  return payload;
}

const target = { phoneNumberId: '436666719526789', businessNumber: '13175551399' };

describe('parseWebhook: fixtures', () => {
  it('connect, user-initiated', () => {
    const r = parseWebhook(userConnectFixture());
    expect(r.ignored).toEqual([]);
    expect(r.events).toEqual<WaConnectEvent[]>([
      {
        kind: 'connect',
        phoneNumberId: '436666719526789',
        businessNumber: '13175551399',
        timestamp: 1764000000,
        callId: 'wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh',
        direction: 'USER_INITIATED',
        userWaId: '5511987654321',
        userName: 'Ana Souza',
        sdpType: 'offer',
        sdp: OFFER,
      },
    ]);
    expect((r.events[0] as WaConnectEvent).sdp).toContain('\r\na=ice-lite\r\n');
  });

  it('connect, business-initiated: userWaId is `to`, opaque data echoed', () => {
    const r = parseWebhook(json('webhook-connect-business-initiated.json'));
    expect(r.ignored).toEqual([]);
    const ev = r.events[0] as WaConnectEvent;
    expect(ev).toMatchObject({
      kind: 'connect',
      direction: 'BUSINESS_INITIATED',
      userWaId: '12185552828',
      sdpType: 'answer',
      bizOpaqueCallbackData: 'ext-1001',
      timestamp: 1764000200,
    });
    expect(ev.sdp).toMatch(/^<WhatsApp's SDP answer/);
    expect(ev.userName).toBeUndefined();
  });

  it('connect falls back to connection.webrtc.sdp when session.sdp is absent', () => {
    const p = json('webhook-connect-business-initiated.json');
    delete p.entry[0].changes[0].value.calls[0].session.sdp;
    const ev = parseWebhook(p).events[0] as WaConnectEvent;
    expect(ev.sdp).toBe('<the same SDP answer again>');
  });

  it('connect without any SDP is ignored with a reason', () => {
    const p = json('webhook-connect-business-initiated.json');
    delete p.entry[0].changes[0].value.calls[0].session;
    delete p.entry[0].changes[0].value.calls[0].connection;
    const r = parseWebhook(p);
    expect(r.events).toEqual([]);
    expect(r.ignored[0]).toMatchObject({ field: 'calls', reason: expect.stringContaining('no SDP') });
  });

  it('status RINGING', () => {
    const r = parseWebhook(json('webhook-status-ringing.json'));
    expect(r.ignored).toEqual([]);
    expect(r.events).toEqual<WaStatusEvent[]>([
      {
        kind: 'status',
        phoneNumberId: '436666719526789',
        businessNumber: '13175551399',
        timestamp: 1764000201,
        callId: 'wacid.HBgLMTIxODU1NTI4MjgVAgARGCAyODRQIAFRoA',
        status: 'RINGING',
        bizOpaqueCallbackData: 'ext-1001',
      },
    ]);
  });

  it('terminate COMPLETED with duration', () => {
    const r = parseWebhook(json('webhook-terminate-completed.json'));
    expect(r.events).toEqual<WaTerminateEvent[]>([
      {
        kind: 'terminate',
        phoneNumberId: '436666719526789',
        businessNumber: '13175551399',
        timestamp: 1764000125,
        callId: 'wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh',
        direction: 'USER_INITIATED',
        status: 'COMPLETED',
        durationSec: 120,
        errors: [],
      },
    ]);
  });

  it('terminate FAILED takes errors from value.errors', () => {
    const ev = parseWebhook(json('webhook-terminate-failed.json')).events[0] as WaTerminateEvent;
    expect(ev).toMatchObject({ kind: 'terminate', status: 'FAILED', direction: 'BUSINESS_INITIATED', bizOpaqueCallbackData: 'ext-1001' });
    expect(ev.durationSec).toBeUndefined();
    expect(ev.errors).toEqual([{ code: 138021, message: 'Media receive timeout', details: 'No media received from the business' }]);
  });

  it('terminate FAILED takes errors from the call when they sit there', () => {
    const p = json('webhook-terminate-failed.json');
    const v = p.entry[0].changes[0].value;
    v.calls[0].errors = [{ code: 138019, message: 'Call setup failed' }];
    const ev = parseWebhook(p).events[0] as WaTerminateEvent;
    expect(ev.errors).toEqual([{ code: 138019, message: 'Call setup failed' }]);
    delete v.errors;
    expect((parseWebhook(p).events[0] as WaTerminateEvent).errors).toEqual([{ code: 138019, message: 'Call setup failed' }]);
  });

  it('call permission reply on the messages field', () => {
    const r = parseWebhook(json('webhook-call-permission-reply.json'));
    expect(r.ignored).toEqual([]);
    expect(r.events).toEqual<WaPermissionReplyEvent[]>([
      {
        kind: 'permission_reply',
        phoneNumberId: '436666719526789',
        businessNumber: '13175551399',
        timestamp: 1764000400,
        userWaId: '5511987654321',
        response: 'accept',
        isPermanent: false,
        expiresAt: 1764605200,
        responseSource: 'user_action',
      },
    ]);
  });
});

describe('parseWebhook: what is ignored', () => {
  it('an ordinary text message is ignored, not an error', () => {
    const p = json('webhook-call-permission-reply.json');
    p.entry[0].changes[0].value.messages = [{ from: '5511987654321', id: 'wamid.x', timestamp: '1', type: 'text', text: { body: 'hi' } }];
    const r = parseWebhook(p);
    expect(r.events).toEqual([]);
    expect(r.ignored).toEqual([{ field: 'messages', reason: 'message of type "text"' }]);
  });

  it('message delivery statuses on the messages field are ignored', () => {
    const p = json('webhook-call-permission-reply.json');
    const v = p.entry[0].changes[0].value;
    delete v.messages;
    v.statuses = [{ id: 'wamid.x', status: 'delivered', timestamp: '1', recipient_id: '1' }];
    expect(parseWebhook(p)).toEqual({ events: [], ignored: [{ field: 'messages', reason: 'messages change without messages[]' }] });
  });

  it('unknown call events and unknown fields are ignored with a reason', () => {
    const p = userConnectFixture();
    p.entry[0].changes[0].value.calls[0].event = 'hold';
    p.entry[0].changes.push({ field: 'account_settings_update', value: { foo: 1 } });
    const r = parseWebhook(p);
    expect(r.events).toEqual([]);
    expect(r.ignored).toEqual([
      { field: 'calls', reason: 'unknown call event "hold"' },
      { field: 'account_settings_update', reason: 'field "account_settings_update" is not handled' },
    ]);
  });

  it('a malformed entry does not hide the good ones next to it', () => {
    const p = userConnectFixture();
    const good = json('webhook-terminate-completed.json').entry[0];
    p.entry.push('junk', { changes: 'no' }, good);
    p.entry[0].changes[0].value.calls.push({ id: 7, event: 'connect' });
    const r = parseWebhook(p);
    expect(r.events.map((e) => e.kind)).toEqual(['connect', 'terminate']);
    expect(r.ignored).toHaveLength(3);
  });

  it('a status of a non-call type is ignored', () => {
    const p = json('webhook-status-ringing.json');
    p.entry[0].changes[0].value.statuses[0].type = 'message';
    expect(parseWebhook(p).ignored[0]?.reason).toMatch(/not call/);
  });

  it('extra fields are tolerated (BSUID additions, deeplink payloads)', () => {
    const p = userConnectFixture();
    const c = p.entry[0].changes[0].value.calls[0];
    Object.assign(c, { from_user_id: 'US.123', deeplink_payload: 'x', future: { a: [1] } });
    p.entry[0].changes[0].value.contacts[0].username = 'ana';
    expect(parseWebhook(p).events).toHaveLength(1);
  });

  it('picks the contact whose wa_id matches, else the first', () => {
    const p = userConnectFixture();
    p.entry[0].changes[0].value.contacts = [
      { profile: { name: 'Other' }, wa_id: '1' },
      { profile: { name: 'Ana' }, wa_id: '5511987654321' },
    ];
    expect((parseWebhook(p).events[0] as WaConnectEvent).userName).toBe('Ana');
    p.entry[0].changes[0].value.contacts = [{ profile: { name: 'Only' }, wa_id: '9' }];
    expect((parseWebhook(p).events[0] as WaConnectEvent).userName).toBe('Only');
  });

  const hostile: [string, unknown][] = [
    ['null', null],
    ['undefined', undefined],
    ['a string', 'hello'],
    ['a number', 42],
    ['an array', [1, 2, 3]],
    ['an empty object', {}],
    ['entry not an array', { object: 'whatsapp_business_account', entry: 'x' }],
    ['entry of nulls', { object: 'whatsapp_business_account', entry: [null, 1, []] }],
    ['changes of nulls', { entry: [{ changes: [null, 'x', { field: 3 }] }] }],
    ['value null', { entry: [{ changes: [{ field: 'calls', value: null }] }] }],
    ['value an array', { entry: [{ changes: [{ field: 'calls', value: [] }] }] }],
    ['metadata missing', { entry: [{ changes: [{ field: 'calls', value: { calls: [{ id: 'a', event: 'connect' }] } }] }] }],
    ['calls an object', { entry: [{ changes: [{ field: 'calls', value: { metadata: { phone_number_id: '1' }, calls: { id: 1 } } }] }] }],
    ['calls of junk', { entry: [{ changes: [{ field: 'calls', value: { metadata: { phone_number_id: '1' }, calls: [null, 'x', 1, [], { event: {} }] } }] }] }],
    ['statuses of junk', { entry: [{ changes: [{ field: 'calls', value: { metadata: { phone_number_id: '1' }, statuses: [null, { id: 1 }] } }] }] }],
    ['messages of junk', { entry: [{ changes: [{ field: 'messages', value: { metadata: { phone_number_id: '1' }, messages: [null, 1, { type: 'interactive', interactive: 5 }, { type: 'interactive', interactive: { type: 'call_permission_reply' } }] } }] }] }],
    ['deeply wrong types', { object: 'whatsapp_business_account', entry: [{ id: {}, changes: [{ field: 'calls', value: { metadata: { phone_number_id: [] }, contacts: 'x', calls: [{ id: 'wacid.1', event: 'connect', timestamp: {}, session: 'sdp', direction: 1 }] } }] }] }],
    ['other object', { object: 'page', entry: [] }],
  ];

  it.each(hostile)('never throws on %s', (_name, input) => {
    const r = parseWebhook(input);
    expect(r.events).toEqual([]);
    expect(Array.isArray(r.ignored)).toBe(true);
  });

  it('never throws on a hostile getter', () => {
    const evil = { get entry(): unknown { throw new Error('boom'); } };
    const r = parseWebhook(evil);
    expect(r.events).toEqual([]);
    expect(r.ignored.length).toBeGreaterThan(0);
  });

  it('never throws on a cyclic object', () => {
    const a: any = { object: 'whatsapp_business_account', entry: [] };
    a.entry.push({ changes: [{ field: 'calls', value: a }] });
    expect(() => parseWebhook(a)).not.toThrow();
  });
});

describe('parseWebhook: delivery semantics', () => {
  it('a terminate parses the same whether or not its connect was seen', () => {
    const term = json('webhook-terminate-completed.json');
    const alone = parseWebhook(term);
    parseWebhook(userConnectFixture());
    const after = parseWebhook(term);
    expect(after).toEqual(alone);
    const both = userConnectFixture();
    both.entry.unshift(term.entry[0]); // terminate first in the same delivery
    const r = parseWebhook(both);
    expect(r.events.map((e) => e.kind)).toEqual(['terminate', 'connect']);
    expect(r.events[0]).toEqual(alone.events[0]);
  });

  it('duplicates produce equal events and equal dedupe keys', () => {
    for (const f of ['webhook-connect-business-initiated.json', 'webhook-status-ringing.json', 'webhook-terminate-failed.json', 'webhook-call-permission-reply.json']) {
      const a = parseWebhook(json(f));
      const b = parseWebhook(json(f));
      expect(b).toEqual(a);
      expect(a.events.map(eventKey)).toEqual(b.events.map(eventKey));
    }
    const twice = userConnectFixture();
    twice.entry.push(structuredClone(twice.entry[0]));
    const r = parseWebhook(twice);
    expect(r.events).toHaveLength(2);
    expect(r.events[0]).toEqual(r.events[1]);
    expect(eventKey(r.events[0]!)).toBe(eventKey(r.events[1]!));
  });

  it('eventKey tells connect from terminate and statuses apart', () => {
    const connect = parseWebhook(userConnectFixture()).events[0]!;
    const term = parseWebhook(json('webhook-terminate-completed.json')).events[0]!;
    expect(eventKey(connect)).not.toBe(eventKey(term));
    const ringing = parseWebhook(json('webhook-status-ringing.json')).events[0]!;
    const accepted = json('webhook-status-ringing.json');
    accepted.entry[0].changes[0].value.statuses[0].status = 'ACCEPTED';
    expect(eventKey(ringing)).not.toBe(eventKey(parseWebhook(accepted).events[0]!));
  });
});

describe('webhook builders round-trip through the parser', () => {
  it('user connect', () => {
    const p = buildUserConnectWebhook({ ...target, callId: 'wacid.1', userWaId: '5511', userName: 'Ana', sdp: OFFER, timestamp: 10 });
    expect(parseWebhook(p)).toEqual({
      events: [{ kind: 'connect', ...target, timestamp: 10, callId: 'wacid.1', direction: 'USER_INITIATED', userWaId: '5511', userName: 'Ana', sdpType: 'offer', sdp: OFFER }],
      ignored: [],
    });
  });

  it('business connect, SDP only in connection.webrtc', () => {
    const p = buildBusinessConnectWebhook({ ...target, callId: 'wacid.2', userWaId: '12185552828', sdp: 'v=0', sdpAt: 'connection', bizOpaqueCallbackData: 'x' });
    expect(parseWebhook(p).events[0]).toMatchObject({ kind: 'connect', direction: 'BUSINESS_INITIATED', userWaId: '12185552828', sdp: 'v=0', sdpType: 'answer', bizOpaqueCallbackData: 'x' });
  });

  it('terminate with errors on the call or at value', () => {
    for (const errorsAt of ['call', 'value'] as const) {
      const p = buildTerminateWebhook({ ...target, callId: 'wacid.3', userWaId: '1', status: 'FAILED', errors: [{ code: 138022, message: 'Media transmit timeout', details: 'd' }], errorsAt });
      expect(parseWebhook(p).events[0]).toMatchObject({ kind: 'terminate', status: 'FAILED', errors: [{ code: 138022, message: 'Media transmit timeout', details: 'd' }] });
    }
    const ok = buildTerminateWebhook({ ...target, callId: 'wacid.3', userWaId: '1', status: 'COMPLETED', durationSec: 33 });
    expect(parseWebhook(ok).events[0]).toMatchObject({ status: 'COMPLETED', durationSec: 33, errors: [] });
  });

  it('status and permission reply', () => {
    for (const status of ['RINGING', 'ACCEPTED', 'REJECTED']) {
      const p = buildStatusWebhook({ ...target, callId: 'wacid.4', userWaId: '1', status });
      expect(parseWebhook(p).events[0]).toMatchObject({ kind: 'status', callId: 'wacid.4', status });
    }
    const p = buildPermissionReplyWebhook({ ...target, userWaId: '55', response: 'reject', responseSource: 'automatic' });
    expect(parseWebhook(p).events[0]).toMatchObject({ kind: 'permission_reply', userWaId: '55', response: 'reject', isPermanent: false, responseSource: 'automatic' });
  });
});

describe('verifyChallenge', () => {
  const q = { 'hub.mode': 'subscribe', 'hub.verify_token': 'tok', 'hub.challenge': '1158201444' };
  it('echoes the challenge on a good token', () => {
    expect(verifyChallenge(q, 'tok')).toBe('1158201444');
    expect(verifyChallenge({ hub: { mode: 'subscribe', verify_token: 'tok', challenge: 'c' } }, 'tok')).toBe('c');
  });
  it('refuses a wrong token, mode, missing fields or an empty configured token', () => {
    expect(verifyChallenge({ ...q, 'hub.verify_token': 'tok2' }, 'tok')).toBeUndefined();
    expect(verifyChallenge({ ...q, 'hub.verify_token': 'to' }, 'tok')).toBeUndefined();
    expect(verifyChallenge({ ...q, 'hub.mode': 'unsubscribe' }, 'tok')).toBeUndefined();
    expect(verifyChallenge({ 'hub.mode': 'subscribe', 'hub.verify_token': 'tok' }, 'tok')).toBeUndefined();
    expect(verifyChallenge({ ...q, 'hub.verify_token': ['tok'] }, 'tok')).toBeUndefined();
    expect(verifyChallenge({ ...q, 'hub.verify_token': '' }, '')).toBeUndefined();
    expect(verifyChallenge(null, 'tok')).toBeUndefined();
    expect(verifyChallenge('hub.mode=subscribe', 'tok')).toBeUndefined();
  });
});
