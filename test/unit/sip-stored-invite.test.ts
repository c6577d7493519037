import { describe, expect, it } from 'vitest';
import { parseStoredDialog, parseStoredInvite } from '../../src/sip/stored-invite.js';

/** A ringing INVITE read back from Redis: anything that could put its own line on the wire is refused. */
const client = {
  kind: 'client',
  callId: 'abc@127.0.0.1',
  uri: 'sip:1001@10.0.0.5:5060',
  via: { version: '2.0', protocol: 'UDP', host: '10.0.0.11', port: 5060, params: { branch: 'z9hG4bK1', rport: null } },
  from: '"+5511987654321" <sip:+5511987654321@10.0.0.11>;tag=74dfcbc2',
  to: '<sip:1001@10.0.0.5:5060>',
  cseq: 1,
  transport: 'udp',
  early: { remoteHeader: '<sip:1001@10.0.0.5:5060>;tag=as1', remoteTarget: 'sip:1001@10.0.0.5:5060', routeSet: [] },
};
const server = {
  kind: 'server',
  callId: 'x1',
  via: [{ protocol: 'UDP', host: '10.0.0.5', port: 5060, params: { branch: 'z9hG4bKp', received: '10.0.0.5', rport: 5060 } }],
  from: '<sip:7001@10.0.0.5>;tag=p1',
  to: '<sip:9+5511@10.0.0.11>;tag=b1',
  cseq: 102,
  transport: 'udp',
  source: { address: '10.0.0.5', port: 5060 },
};

describe('a stored INVITE read back from Redis', () => {
  it('takes what an instance wrote, either way', () => {
    expect(parseStoredInvite(client)).toEqual({ ok: true, value: client });
    expect(parseStoredInvite(server)).toEqual({ ok: true, value: server });
  });

  it('refuses header injection, white space in a URI or Via, a bad port and a wrong shape', () => {
    const bad: unknown[] = [
      { ...client, to: '<sip:1001@x>\r\nX-Evil: 1' },
      { ...client, from: 'a\nb' },
      { ...client, uri: 'sip:1001@x SIP/2.0\r\nVia: evil' },
      { ...client, via: { ...client.via, host: '10.0.0.11\r\nX: y' } },
      { ...client, via: { ...client.via, params: { branch: 'z9 hG4' } } },
      { ...client, early: { ...client.early, remoteTarget: 'sip:a@b\r\n' } },
      { ...server, source: { address: '10.0.0.5', port: 70000 } },
      { ...server, via: [] },
      { ...client, kind: 'dialog' },
      'not an object',
      null,
    ];
    for (const b of bad) expect(parseStoredInvite(b).ok, JSON.stringify(b)).toBe(false);
  });

  it('a stored dialog (a confirmed call\'s BYE) is checked the same way', () => {
    const dialog = { callId: 'd1', localHeader: '<sip:a@10.0.0.11>;tag=x', remoteHeader: '<sip:1001@10.0.0.5>;tag=y', remoteTarget: 'sip:1001@10.0.0.5:5060', routeSet: ['sip:10.0.0.5;lr'], localSeq: 3, transport: 'udp' };
    expect(parseStoredDialog(dialog)).toEqual({ ok: true, value: dialog });
    const bad: unknown[] = [
      { ...dialog, remoteHeader: '<sip:1001@x>;tag=y\r\nX-Evil: 1' },
      { ...dialog, remoteTarget: 'sip:a@b SIP/2.0' },
      { ...dialog, routeSet: 'sip:10.0.0.5' },
      { ...dialog, routeSet: Array.from({ length: 21 }, () => 'sip:r') },
      { ...dialog, localSeq: -1 },
      { ...dialog, transport: 'sctp' },
    ];
    for (const b of bad) expect(parseStoredDialog(b).ok, JSON.stringify(b)).toBe(false);
  });
});
