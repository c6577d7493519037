/**
 * One place sanitises every header value built from outside data (src/sip/headers.ts). Checked
 * on the real wire: our stack sends an INVITE to a raw UDP socket (the "PBX"), and answers a
 * raw INVITE with a 484 whose Warning carries a hostile dialled number.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDialedNumber } from '../../src/bridge/numbers.js';
import { escapeUserPart, quoteDisplayName, safeHeader, safeUri, warningValue } from '../../src/sip/headers.js';
import { createSipStack } from '../../src/sip/stack.js';
import type { SipStack } from '../../src/sip/types.js';
import { silentLogger } from '../../src/util/log.js';
import { freeDualPort, freePort } from '../harness/ports.js';

describe('sanitisers', () => {
  it('display names: no controls (NUL, ESC, DEL, C1, CR/LF), quotes and backslashes escaped', () => {
    expect(quoteDisplayName('A\u0000B\u001bC\u007fD\u0085E')).toBe('"A B C D E"');
    expect(quoteDisplayName('Ana\r\nAlert-Info: <http://x>;info=alert-autoanswer')).toBe('"Ana Alert-Info: <http://x>;info=alert-autoanswer"');
    expect(quoteDisplayName('say "hi" \\o/')).toBe('"say \\"hi\\" \\\\o/"');
    expect(quoteDisplayName('x'.repeat(500))).toHaveLength(130);
  });

  it('URIs and user parts: CR/LF, space, <, > and quotes are percent-encoded', () => {
    expect(safeUri('sip:+1\r\nX: y@a.b')).toBe('sip:+1%0D%0AX:%20y@a.b');
    expect(safeUri('sip:a%20b@c>')).toBe('sip:a%20b@c%3E');
    expect(safeUri('sip:a%ZZ@c')).toBe('sip:a%25ZZ@c');
    expect(escapeUserPart('+55 11\r\n<x>')).toBe('+55%2011%0D%0A%3Cx%3E');
  });

  it('header values: controls become spaces, names must be tokens, Warning text re-quoted', () => {
    expect(safeHeader('X-WA-Call-Id', 'wacid.1\r\nP-Asserted-Identity: <sip:boss@x>')).toEqual(['X-WA-Call-Id', 'wacid.1 P-Asserted-Identity: <sip:boss@x>']);
    expect(safeHeader('X-Bad\r\nName', 'v')).toBeUndefined();
    expect(safeHeader('Contact', 'v')).toBeUndefined();
    expect(safeHeader('Warning', '399 wa-sip-bridge "a "quoted" \u0000 text"')).toEqual(['Warning', '399 wa-sip-bridge "a \\"quoted\\" text"']);
    expect(warningValue('line\r\nInjected: yes')).toBe('399 wa-sip-bridge "line Injected: yes"');
  });
});

describe('dialled numbers', () => {
  it.each([
    ['sip:9%ZZ@bridge', 'the number has invalid percent-encoding'],
    ['sip:9%C3%28@bridge', 'the number has invalid percent-encoding'],
    ['sip:9+5511%0D%0AAlert-Info:x@bridge', '"+5511??Alert-Info:x" is not a phone number'],
    ['sip:9+55%0D%0A11987654321@bridge', '"+55??11987654321" is not a phone number'],
  ])('%s is refused cleanly: %s', (uri, reason) => {
    expect(parseDialedNumber(uri, '9')).toEqual({ ok: false, reason });
  });
});

describe('on the wire', () => {
  let stack: SipStack | undefined;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.close();
    await stack?.close();
  });

  async function peer(): Promise<{ port: number; socket: Socket; next: () => Promise<string> }> {
    const port = await freePort('127.0.0.2');
    const socket = createSocket('udp4');
    sockets.push(socket);
    const got: string[] = [];
    const waiters: Array<(m: string) => void> = [];
    socket.on('message', (m) => (waiters.length ? waiters.shift()!(m.toString('latin1')) : got.push(m.toString('latin1'))));
    await new Promise<void>((r) => socket.bind(port, '127.0.0.2', () => r()));
    return { port, socket, next: () => new Promise((r) => (got.length ? r(got.shift()!) : waiters.push(r))) };
  }

  const lines = (msg: string): string[] => msg.split('\r\n\r\n')[0]!.split('\r\n');

  it('an INVITE built from hostile WhatsApp data has no injected line and no control byte', async () => {
    const port = await freeDualPort('127.0.0.1');
    stack = await createSipStack({ udp: { host: '127.0.0.1', port }, logger: silentLogger() });
    const pbx = await peer();
    const call = stack.invite({
      uri: `sip:queue@127.0.0.2:${pbx.port}`,
      from: { uri: 'sip:+5511\r\nAlert-Info: <x>@wa.example.com', displayName: 'Eve\u0000\u001b[2J\u007f\r\nP-Asserted-Identity: <sip:ceo@corp>' },
      sdp: 'v=0\r\n',
      headers: { 'X-WA-Call-Id': 'wacid.X\r\nAlert-Info: <http://x>;info=alert-autoanswer', 'Bad Name': 'x' },
    });
    const invite = await pbx.next();
    call.cancel();
    const head = lines(invite);
    expect(head.filter((l) => /^(Alert-Info|P-Asserted-Identity)\s*:/i.test(l))).toEqual([]);
    expect(head.some((l) => /^Bad Name/i.test(l))).toBe(false);
    expect(invite.split('\r\n\r\n')[0]).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/);
    const from = head.find((l) => l.startsWith('From:'))!;
    expect(from).toMatch(/^From: "Eve \[2J P-Asserted-Identity: <sip:ceo@corp>" <sip:\+5511%0D%0AAlert-Info:%20%3Cx%3E@wa\.example\.com>;tag=/);
    expect(head).toContain('X-WA-Call-Id: wacid.X Alert-Info: <http://x>;info=alert-autoanswer');
  });

  it('a 484 for a dialled number with an encoded CR/LF carries a one-line Warning', async () => {
    const port = await freeDualPort('127.0.0.1');
    stack = await createSipStack({ udp: { host: '127.0.0.1', port }, logger: silentLogger() });
    stack.onInvite((inv) => {
      const d = parseDialedNumber(inv.requestUri, '9');
      if (!d.ok) inv.reject(484, 'Address Incomplete', { Warning: `399 wa-sip-bridge "${d.reason}"` });
    });
    const pbx = await peer();
    const ruri = 'sip:9+5511%0D%0AAlert-Info:x@127.0.0.1';
    const invite = [
      `INVITE ${ruri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.2:${pbx.port};branch=z9hG4bKsan1`,
      `From: <sip:1001@127.0.0.2>;tag=a`,
      `To: <${ruri}>`,
      'Call-ID: san1@pbx',
      'CSeq: 1 INVITE',
      `Contact: <sip:1001@127.0.0.2:${pbx.port}>`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    pbx.socket.send(invite, port, '127.0.0.1');
    let rs = await pbx.next();
    while (rs.startsWith('SIP/2.0 100')) rs = await pbx.next();
    const head = lines(rs);
    expect(head[0]).toBe('SIP/2.0 484 Address Incomplete');
    expect(head.filter((l) => /^Warning:/i.test(l))).toEqual(['Warning: 399 wa-sip-bridge "\\"+5511??Alert-Info:x\\" is not a phone number"']);
    expect(head.some((l) => /^Alert-Info/i.test(l))).toBe(false);
  });
});
