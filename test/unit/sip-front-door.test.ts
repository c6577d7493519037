/**
 * The SIP front door: the pure checks on real wire text, then the real stack on loopback fed
 * hostile datagrams and TCP streams, each followed by a good OPTIONS that must still be answered.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { checkDatagram, DEFAULT_SIP_LIMITS, RateLimiter, StreamFramer } from '../../src/sip/front-door.js';
import { createSipStack, type SipStackWithStats } from '../../src/sip/stack.js';
import { silentLogger } from '../../src/util/log.js';
import { freeDualPort } from '../harness/ports.js';

const L = DEFAULT_SIP_LIMITS;

function options(branch: string, body = '', extra: string[] = []): string {
  return [
    'OPTIONS sip:bridge@127.0.0.1 SIP/2.0',
    `Via: SIP/2.0/UDP 127.0.0.2:5099;branch=z9hG4bK${branch}`,
    'From: <sip:probe@127.0.0.2>;tag=1',
    'To: <sip:bridge@127.0.0.1>',
    `Call-ID: ${branch}@probe`,
    'CSeq: 1 OPTIONS',
    'Max-Forwards: 70',
    ...extra,
    `Content-Length: ${body.length}`,
    '',
    body,
  ].join('\r\n');
}

describe('checkDatagram', () => {
  it('passes a well-formed message and strips leading CRLF keep-alives', () => {
    expect(checkDatagram(options('a'), L)).toEqual({ ok: true, text: options('a') });
    expect(checkDatagram(`\r\n\r\n${options('a')}`, L)).toEqual({ ok: true, text: options('a') });
    expect(checkDatagram('\r\n\r\n', L)).toEqual({ ok: false, reason: 'keepalive' });
  });

  it.each([
    ['65,000 spaces', ' '.repeat(65_000), 'too-large'],
    ['spaces within the size limit', ' '.repeat(16_000), 'no-header-end'],
    ['spaces before a message', ' '.repeat(1000) + options('a'), 'no-start-line'],
    ['no blank line', options('a').replace('\r\n\r\n', '\r\n'), 'no-header-end'],
    ['non-numeric Content-Length', options('a').replace('Content-Length: 0', 'Content-Length: abc'), 'bad-content-length'],
    ['negative Content-Length', options('a').replace('Content-Length: 0', 'Content-Length: -1'), 'bad-content-length'],
    ['two different Content-Lengths', options('a', '', ['l: 5']), 'bad-content-length'],
    ['huge Content-Length', options('a').replace('Content-Length: 0', 'Content-Length: 999999999'), 'body-too-large'],
    ['body shorter than Content-Length', options('a').replace('Content-Length: 0', 'Content-Length: 10'), 'body-short'],
    ['a header without a colon', options('a', '', ['Garbage line']), 'bad-header'],
    ['a header name with a space', options('a', '', ['Bad Name: x']), 'bad-header'],
    ['too many headers', options('a', '', Array.from({ length: 70 }, (_, i) => `X-H${i}: v`)), 'too-many-headers'],
    ['a header over the length limit', options('a', '', [`X-Long: ${'a'.repeat(3000)}`]), 'header-too-long'],
    ['folded lines over the length limit', options('a', '', [`X-Long: a${'\r\n a'.repeat(800)}`]), 'header-too-long'],
    ['a bad start line', `HELLO\r\n${options('a').split('\r\n').slice(1).join('\r\n')}`, 'no-start-line'],
  ])('drops %s', (_name, text, reason) => {
    expect(checkDatagram(text, L)).toEqual({ ok: false, reason });
  });
});

describe('StreamFramer', () => {
  it('frames messages split at every byte and several in one chunk', () => {
    const two = options('a', 'hello') + options('b');
    const f = new StreamFramer(L);
    const got: string[] = [];
    for (const ch of two) got.push(...f.push(ch));
    expect(got).toEqual([options('a', 'hello'), options('b')]);
    expect(new StreamFramer(L).push(`\r\n${two}\r\n`)).toEqual([options('a', 'hello'), options('b')]);
  });

  it('fails on a missing or non-numeric Content-Length and on endless headers', () => {
    const noCl = options('a').replace('Content-Length: 0\r\n', '');
    const f1 = new StreamFramer(L);
    f1.push(noCl);
    expect(f1.failed).toBe('bad-content-length');
    const f2 = new StreamFramer(L);
    f2.push(options('a').replace('Content-Length: 0', 'Content-Length: x'));
    expect(f2.failed).toBe('bad-content-length');
    const f3 = new StreamFramer(L);
    f3.push('INVITE sip:x SIP/2.0\r\n');
    for (let i = 0; i < 100 && !f3.failed; i++) f3.push(`X-Pad: ${'a'.repeat(200)}\r\n`);
    expect(f3.failed).toBe('too-large'); // headers never end: cut at the message size
    const f4 = new StreamFramer(L);
    for (let i = 0; i < 100 && !f4.failed; i++) f4.push(' '.repeat(1000));
    expect(f4.failed).toBe('too-large');
  });
});

describe('RateLimiter', () => {
  it('allows the burst, then the rate against the clock, and forgets the oldest source', () => {
    let t = 0;
    const r = new RateLimiter(10, 5, 2, () => t);
    expect(Array.from({ length: 6 }, () => r.take('a'))).toEqual([true, true, true, true, true, false]);
    t += 100; // 10/s refills one token in 100 ms
    expect([r.take('a'), r.take('a')]).toEqual([true, false]);
    r.take('b');
    r.take('c');
    expect(r.size).toBe(2);
  });
});

describe('sip.limits in the config', () => {
  it('takes partial overrides and refuses nonsense', () => {
    expect(buildConfig({ sip: { limits: { ratePerSec: 50 } } }).sip.limits).toEqual({ ratePerSec: 50 });
    expect(() => buildConfig({ sip: { limits: { maxMessageBytes: 100 } } })).toThrow(ConfigError);
    expect(() => buildConfig({ sip: { limits: { maxHeaders: -1 } } })).toThrow(ConfigError);
  });
});

describe('the real stack behind the front door', () => {
  let stack: SipStackWithStats | undefined;
  const sockets: Array<UdpSocket | Socket> = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) 'destroy' in s ? s.destroy() : s.close();
    await stack?.close();
  });

  async function start(limits = {}): Promise<number> {
    const port = await freeDualPort('127.0.0.1');
    stack = await createSipStack({ udp: { host: '127.0.0.1', port }, tcp: { host: '127.0.0.1', port }, logger: silentLogger(), limits });
    return port;
  }

  function udpClient(): Promise<{ send: (t: string) => void; next: () => Promise<string> }> {
    const s = createSocket('udp4');
    sockets.push(s);
    const queue: string[] = [];
    const waiters: Array<(m: string) => void> = [];
    s.on('message', (m) => {
      const w = waiters.shift();
      if (w) w(m.toString('latin1'));
      else queue.push(m.toString('latin1'));
    });
    return new Promise((resolve) =>
      s.bind(0, '127.0.0.2', () =>
        resolve({
          send: (t) => s.send(Buffer.from(t, 'latin1'), portOf, '127.0.0.1'),
          next: () => new Promise((r) => (queue.length ? r(queue.shift()!) : waiters.push(r))),
        }),
      ),
    );
  }
  let portOf = 0;

  it('UDP: hostile datagrams are dropped and counted; a good OPTIONS after them is answered', async () => {
    portOf = await start({ maxMessageBytes: 65_535, maxBodyBytes: 65_000 });
    const c = await udpClient();
    c.send(' '.repeat(65_000));
    c.send(options('bad').replace('Content-Length: 0', 'Content-Length: zz'));
    c.send(options('good'));
    expect((await c.next()).split('\r\n')[0]).toBe('SIP/2.0 200 OK');
    const st = stack!.frontDoorStats();
    expect(st.dropped).toMatchObject({ 'no-header-end': 1, 'bad-content-length': 1 });
    expect(st.accepted).toBe(1);
  });

  it('UDP: a source over its rate is dropped, another source is still served', async () => {
    portOf = await start({ ratePerSec: 1, rateBurst: 3 });
    const flooder = await udpClient();
    for (let i = 0; i < 20; i++) flooder.send(options(`f${i}`));
    for (let i = 0; i < 3; i++) expect((await flooder.next()).split('\r\n')[0]).toBe('SIP/2.0 200 OK');
    await expect.poll(() => stack!.frontDoorStats().dropped.rate ?? 0).toBe(17);
    const other = createSocket('udp4');
    sockets.push(other);
    const answered = new Promise<string>((r) => other.once('message', (m) => r(m.toString('latin1'))));
    other.bind(0, '127.0.0.3', () => other.send(options('other'), portOf, '127.0.0.1'));
    expect((await answered).split('\r\n')[0]).toBe('SIP/2.0 200 OK');
  });

  function tcpClient(port: number): Promise<{ s: Socket; closed: Promise<void>; data: () => string }> {
    return new Promise((resolve) => {
      let got = '';
      const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () => resolve({ s, closed, data: () => got }));
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('data', (d) => (got += d.toString('latin1')));
      s.on('error', () => undefined);
      sockets.push(s);
    });
  }

  it('TCP: an endless non-numeric Content-Length stream is cut off; the connection limit holds', async () => {
    const port = await start({ maxTcpConnectionsPerSource: 2 });
    const good = await tcpClient(port);
    good.s.write(options('tcp1').replace('UDP', 'TCP'));
    await expect.poll(() => good.data().split('\r\n')[0]).toBe('SIP/2.0 200 OK');
    const bad = await tcpClient(port);
    bad.s.write(options('tcp2').replace('UDP', 'TCP').replace('Content-Length: 0', 'Content-Length: lots'));
    for (let i = 0; i < 50 && !bad.s.destroyed; i++) bad.s.write('x'.repeat(10_000));
    await bad.closed;
    const a = await tcpClient(port);
    const b = await tcpClient(port);
    await b.closed; // the third connection from 127.0.0.2 (good, a, b): refused by the per-source limit
    expect(a.s.destroyed).toBe(false);
    expect(stack!.frontDoorStats().dropped).toMatchObject({ 'bad-content-length': 1, 'tcp-connections': 1 });
  });

  it('TCP: a message that never completes is cut off at the message deadline', async () => {
    const port = await start({ tcpMessageTimeoutMs: 200 });
    const slow = await tcpClient(port);
    slow.s.write('OPTIONS sip:bridge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2');
    await slow.closed; // closed by the 200 ms deadline (the test's own timeout bounds the wait)
    expect(stack!.frontDoorStats().dropped['tcp-timeout']).toBe(1);
  });
});
