import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type sip from 'sip';
import type { SipCore } from '../../src/sip/core.js';
import { Dialog } from '../../src/sip/dialog.js';
import type { LibEndpoint } from '../../src/sip/lib.js';
import { SESSION_TIMERS_OFF } from '../../src/sip/session-timer.js';
import { SipFailure } from '../../src/sip/types.js';
import { silentLogger } from '../../src/util/log.js';

const ep = { transport: 'udp', listen: { host: '127.0.0.1', port: 5080 }, advertised: { host: '127.0.0.1', port: 5080 } } as LibEndpoint;
const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n';

function fakeCore() {
  const replies: Array<{ rq: sip.Message; status: number; ext?: sip.Extension }> = [];
  const requests: sip.Message[] = [];
  const dialogs = new Map<string, unknown>();
  const core: SipCore = {
    logger: silentLogger(),
    userAgent: 'test',
    credentials: undefined,
    timers: { t1: 500, t2: 4000 },
    session: SESSION_TIMERS_OFF,
    dialogs: { add: (k, d) => dialogs.set(k, d), remove: (k) => dialogs.delete(k) },
    request: (_ep, rq, onResponse) => {
      requests.push(rq);
      onResponse({ status: 200, reason: 'OK', headers: {} });
    },
    reply: (_ep, rq, status, _reason, ext) => void replies.push({ rq, status, ...(ext ? { ext } : {}) }),
    contact: () => '<sip:127.0.0.1:5080>',
    endpointFor: () => ep,
  };
  return { core, replies, requests, dialogs };
}

function dialog(core: SipCore, role: 'uac' | 'uas' = 'uac'): Dialog {
  return new Dialog(core, {
    role,
    callId: 'c1',
    localTag: 'lt',
    remoteTag: 'rt',
    localHeader: '<sip:a@x>;tag=lt',
    remoteHeader: '<sip:b@y>;tag=rt',
    localSeq: 1,
    remoteTarget: 'sip:b@127.0.0.2:5060',
    routeSet: ['sip:proxy.test;lr'],
    endpoint: ep,
    localSdp: SDP,
    remoteSdp: undefined,
  });
}

function request(method: string, seq: number, ext: Partial<sip.Message> = {}): sip.Message {
  return { method, uri: 'sip:a@x', headers: { cseq: { seq, method }, 'call-id': 'c1', via: [{ params: { branch: `b${seq}` } }] }, ...ext };
}

describe('Dialog', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('builds in-dialog requests per RFC 3261 section 12.2.1.1 and BYE is idempotent', async () => {
    const { core, requests, dialogs } = fakeCore();
    const d = dialog(core);
    expect(dialogs.size).toBe(1);
    await Promise.all([d.bye(), d.bye()]);
    expect(requests).toHaveLength(1);
    const bye = requests[0]!;
    expect(bye.uri).toBe('sip:b@127.0.0.2:5060');
    expect(bye.headers.cseq).toEqual({ seq: 2, method: 'BYE' });
    expect(bye.headers.to).toBe('<sip:b@y>;tag=rt');
    expect(bye.headers.from).toBe('<sip:a@x>;tag=lt');
    expect(bye.headers.route).toEqual([{ uri: 'sip:proxy.test;lr' }]);
    expect(d.state).toBe('terminated');
    expect(dialogs.size).toBe(0);
  });

  it('answers BYE 200 and emits bye once; a throwing listener does not break it', () => {
    const { core, replies } = fakeCore();
    const d = dialog(core);
    const seen: string[] = [];
    d.on('bye', () => {
      throw new Error('listener bug');
    });
    d.on('bye', () => seen.push('bye'));
    d.handleRequest(request('BYE', 5), ep);
    d.handleRequest(request('BYE', 5), ep);
    expect(replies.map((r) => r.status)).toEqual([200, 200]);
    expect(seen).toEqual(['bye']);
    expect(d.state).toBe('terminated');
  });

  it('answers INFO 200 and emits it; OPTIONS 200; unknown methods 501; out-of-order CSeq 500', () => {
    const { core, replies } = fakeCore();
    const d = dialog(core);
    const infos: Array<[string | undefined, string]> = [];
    d.on('info', (ct, body) => infos.push([ct, body]));
    d.handleRequest(request('INFO', 3, { content: 'Signal=5\r\nDuration=160\r\n', headers: { ...request('INFO', 3).headers, 'content-type': 'application/dtmf-relay' } }), ep);
    d.handleRequest(request('OPTIONS', 4), ep);
    d.handleRequest(request('REFER', 5), ep);
    d.handleRequest(request('INFO', 2), ep);
    expect(infos).toEqual([['application/dtmf-relay', 'Signal=5\r\nDuration=160\r\n']]);
    expect(replies.map((r) => r.status)).toEqual([200, 200, 501, 500]);
  });

  it('UAS: retransmits the 2xx with T1 doubling up to T2 until the ACK (RFC 3261 section 13.3.1.4)', async () => {
    const { core, replies } = fakeCore();
    const d = dialog(core, 'uas');
    const acked = d.sendTwoXx(ep, request('INVITE', 1), SDP);
    const sentAt = (): number => replies.filter((r) => r.status === 200).length;
    expect(sentAt()).toBe(1);
    await vi.advanceTimersByTimeAsync(500);
    expect(sentAt()).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sentAt()).toBe(3);
    await vi.advanceTimersByTimeAsync(2000 + 4000 + 4000);
    expect(sentAt()).toBe(6); // 500, 1000, 2000, 4000, 4000
    d.handleAck(request('ACK', 1));
    await expect(acked).resolves.toBeUndefined();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sentAt()).toBe(6);
  });

  it('UAS: no ACK within 64*T1 rejects and sends BYE', async () => {
    const { core, requests } = fakeCore();
    const d = dialog(core, 'uas');
    const acked = d.sendTwoXx(ep, request('INVITE', 1), SDP);
    const failure = acked.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(32_000);
    expect(await failure).toBeInstanceOf(SipFailure);
    expect(requests.map((r) => r.method)).toEqual(['BYE']);
  });

  it('re-INVITE without handler: 100, then 200 with our SDP mirrored and version bumped', async () => {
    const { core, replies } = fakeCore();
    const d = dialog(core);
    const offer = 'v=0\r\no=p 1 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=sendonly\r\n';
    d.handleRequest(request('INVITE', 2, { content: offer, headers: { ...request('INVITE', 2).headers, 'content-type': 'application/sdp' } }), ep);
    await vi.advanceTimersByTimeAsync(0);
    expect(replies.map((r) => r.status)).toEqual([100, 200]);
    expect(replies[1]!.ext?.content).toContain('a=recvonly');
    expect(replies[1]!.ext?.content).toContain('o=- 1 2 ');
    d.handleAck(request('ACK', 2));
  });

  it('re-INVITE whose handler throws is answered 488 and the dialog survives', async () => {
    const { core, replies } = fakeCore();
    const d = dialog(core);
    d.setReinviteHandler(() => {
      throw new Error('boom');
    });
    d.handleRequest(request('INVITE', 2), ep);
    await vi.advanceTimersByTimeAsync(0);
    expect(replies.map((r) => r.status)).toEqual([100, 488]);
    expect(d.state).toBe('confirmed');
  });
});
