/**
 * Seeded, repeatable SIP fuzzing against the real stack (createSipStack on loopback): UDP
 * datagrams and TCP streams built by mutating valid messages. Shared by the short slice in the
 * normal test run (test/fuzz/sip.fuzz.test.ts) and the long run (bench/fuzz-sip.ts).
 * Everything is derived from the seed: the same seed sends the same bytes in the same order.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect } from 'node:net';
import { createSipStack, type SipStackWithStats } from '../../src/sip/stack.js';
import sip from 'sip';
import { checkDatagram, DEFAULT_SIP_LIMITS, type FrontDoorStats, type SipLimits } from '../../src/sip/front-door.js';
import { silentLogger } from '../../src/util/log.js';
import { freeDualPort, freePort } from '../harness/ports.js';
import { seededRandom as prng } from './seeded.js';




const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

function template(kind: number, n: number, sinkPort: number, transport: 'UDP' | 'TCP'): string {
  const method = ['INVITE', 'OPTIONS', 'BYE', 'CANCEL', 'ACK', 'UPDATE', 'INFO'][kind % 7]!;
  const body = method === 'INVITE' || method === 'UPDATE' ? SDP : '';
  const head =
    kind % 9 === 8
      ? ['SIP/2.0 200 OK']
      : [`${method} sip:9+5511987654321@127.0.0.1 SIP/2.0`];
  return [
    ...head,
    `Via: SIP/2.0/${transport} 127.0.0.2:${sinkPort};branch=z9hG4bKfz${n};rport`,
    'Max-Forwards: 70',
    `From: "Fuzz ${n}" <sip:1001@127.0.0.2>;tag=f${n}`,
    `To: <sip:9+5511987654321@127.0.0.1>${kind % 3 === 0 ? ';tag=t1' : ''}`,
    `Call-ID: fuzz-${n}@127.0.0.2`,
    `CSeq: ${n % 1000} ${method}`,
    `Contact: <sip:1001@127.0.0.2:${sinkPort}>`,
    'Authorization: Digest username="pbx", realm="wa", nonce="abc.def", uri="sip:x", response="00", qop=auth, nc=00000001, cnonce="c"',
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${body.length}`,
    '',
    body,
  ].join('\r\n');
}

const NASTY = ['\r\n', '\r', '\n', ' ', '\t', '\u0000', '"', '\\', '<', '>', ';', ',', ':', '=', '%', '\u00ff', '\u001b'];

/** One mutation of `msg`; some produce large inputs (whitespace runs, long lines, many headers). */
function mutate(msg: string, r: () => number): string {
  const at = (): number => Math.floor(r() * (msg.length + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  switch (Math.floor(r() * 16)) {
    case 0: return ' '.repeat(Math.floor(r() * 65_000)) + msg; // the quadratic regex's favourite
    case 1: return msg.replace(/Content-Length: \d+/, `Content-Length: ${pick(['abc', '-1', '99999999999', '1e3', '', ' 5 5', '0x10', '4294967296'])}`);
    case 2: return msg.replace('\r\n\r\n', '\r\n'); // no end of headers
    case 3: { const i = at(); return msg.slice(0, i) + pick(NASTY).repeat(1 + Math.floor(r() * 2000)) + msg.slice(i); }
    case 4: { const i = at(); return msg.slice(0, i) + msg.slice(i + Math.floor(r() * 200)); }
    case 5: return msg.replace('Max-Forwards: 70', Array.from({ length: Math.floor(r() * 300) }, (_, k) => `X-H${k}: ${'v'.repeat(Math.floor(r() * 40))}`).join('\r\n'));
    case 6: return msg.replace(/^From: .*$/m, `From: ${'"a" '.repeat(Math.floor(r() * 3000))}<sip:x@y>`);
    case 7: return msg.replace(/^To: .*$/m, `To: ${'a '.repeat(Math.floor(r() * 3000))}`);
    case 8: return msg.replace(/^Via: .*$/m, `Via: ${'SIP/2.0/UDP h;p=1, '.repeat(Math.floor(r() * 500))}`);
    case 9: return Array.from({ length: Math.floor(r() * 3000) }, () => String.fromCharCode(Math.floor(r() * 256))).join('');
    case 10: return msg.slice(0, at());
    case 11: return msg.replace(/\r\n/g, pick(['\n', '\r', '\r\n ', '\r\n\t']));
    case 12: return msg.replace(/^Authorization: .*$/m, `Authorization: Digest ${'a="'.repeat(Math.floor(r() * 2000))}`);
    case 13: return `\r\n`.repeat(Math.floor(r() * 5)) + msg + `\r\n`.repeat(Math.floor(r() * 5));
    case 14: return msg.replace(/^CSeq: .*$/m, `CSeq: ${pick(['', 'x', '1', '99999999999999999999 INVITE', '1 ' + 'A'.repeat(5000)])}`);
    default: { let m = msg; for (let k = 0; k < 3; k++) m = mutate(m, r); return m; }
  }
}

export function fuzzCase(seed: number, n: number, sinkPort: number, transport: 'UDP' | 'TCP'): string {
  const r = prng(seed ^ Math.imul(n, 0x9e3779b1));
  return mutate(template(Math.floor(r() * 63), n, sinkPort, transport), r);
}

export interface FuzzResult {
  udpCases: number;
  tcpCases: number;
  stats: FrontDoorStats;
  heapGrowthMb: number;
  unhandled: number;
  /** The stack still answered a good OPTIONS after the run, over UDP and over TCP. */
  aliveUdp: boolean;
  aliveTcp: boolean;
  ms: number;
}

/**
 * CPU cost per message, without the noise of GC pauses and sockets: each case goes through the
 * front door and, if it passes, `sip.parse`, three times; its cost is the fastest of the three.
 * Returns the costliest case (ms) and its index.
 */
export function cpuPerMessage(seed: number, cases: number, limits: SipLimits = DEFAULT_SIP_LIMITS): { maxMs: number; worstCase: number; meanUs: number } {
  let maxMs = 0;
  let worstCase = -1;
  let total = 0;
  for (let n = 0; n < cases; n++) {
    const text = fuzzCase(seed, n, 5999, 'UDP');
    let best = Infinity;
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      const c = checkDatagram(text, limits);
      if (c.ok) sip.parse(c.text);
      best = Math.min(best, performance.now() - t0);
    }
    total += best;
    if (best > maxMs) {
      maxMs = best;
      worstCase = n;
    }
  }
  return { maxMs, worstCase, meanUs: (total / cases) * 1000 };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Run `udpCases` datagrams and `tcpCases` stream messages (in connections of up to 8) from `seed`. */
export async function runSipFuzz(seed: number, udpCases: number, tcpCases: number, limits: Partial<SipLimits> = {}): Promise<FuzzResult> {
  const t0 = performance.now();
  let unhandled = 0;
  const onUnhandled = (): void => void unhandled++;
  process.on('unhandledRejection', onUnhandled);
  const port = await freeDualPort('127.0.0.1');
  // The fuzzer is one source sending as fast as it can: lift the per-source rate limit so every case is parsed.
  const stack: SipStackWithStats = await createSipStack({
    udp: { host: '127.0.0.1', port },
    tcp: { host: '127.0.0.1', port },
    logger: silentLogger(),
    limits: { ratePerSec: 1e9, rateBurst: 1e9, ...limits },
  });
  stack.onInvite((inv) => inv.reject(486, 'Busy Here'));
  const sinkPort = await freePort('127.0.0.2');
  const sink = createSocket('udp4');
  await new Promise<void>((r) => sink.bind(sinkPort, '127.0.0.2', () => r()));
  sink.on('message', () => undefined);
  const gc = (globalThis as { gc?: () => void }).gc; // with node --expose-gc: heap measured after a full GC
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  try {
    for (let n = 0; n < udpCases; n++) {
      const buf = Buffer.from(fuzzCase(seed, n, sinkPort, 'UDP'), 'latin1');
      if (buf.length > 0 && buf.length <= 65_507) sink.send(buf, port, '127.0.0.1');
      if (n % 8 === 7) await tick(); // let the stack read what was sent; keeps the socket buffer from overflowing
    }
    for (let n = 0; n < tcpCases; n += 8) {
      const stream = Array.from({ length: Math.min(8, tcpCases - n) }, (_, k) => fuzzCase(seed, udpCases + n + k, sinkPort, 'TCP')).join('');
      await tcpSend(port, stream, prng(seed + n));
    }
    await tick();
    gc?.();
    const heapGrowthMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
    const aliveUdp = await optionsAnswered(sink, port);
    const aliveTcp = await optionsAnsweredTcp(port);
    return { udpCases, tcpCases, stats: stack.frontDoorStats(), heapGrowthMb, unhandled, aliveUdp, aliveTcp, ms: performance.now() - t0 };
  } finally {
    process.off('unhandledRejection', onUnhandled);
    sink.close();
    await stack.close();
  }
}

/** Write `text` in random chunks, end, and wait until the connection is closed (by us or the stack). */
function tcpSend(port: number, text: string, r: () => number): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.once('close', () => resolve());
    s.once('connect', () => {
      let i = 0;
      while (i < text.length && !s.destroyed) {
        const len = 1 + Math.floor(r() * 3000);
        s.write(Buffer.from(text.slice(i, i + len), 'latin1'));
        i += len;
      }
      s.end();
      // The stack answers and may keep its side open: close ours once everything was written.
      setTimeout(() => s.destroy(), 50).unref();
    });
  });
}

const GOOD = (transport: 'UDP' | 'TCP', port: number) =>
  [
    'OPTIONS sip:bridge@127.0.0.1 SIP/2.0',
    `Via: SIP/2.0/${transport} 127.0.0.2:${port};branch=z9hG4bKalive${transport}`,
    'From: <sip:probe@127.0.0.2>;tag=1',
    'To: <sip:bridge@127.0.0.1>',
    `Call-ID: alive-${transport}@probe`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

function optionsAnswered(sink: UdpSocket, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000); // bounded: the answer comes within ms when the stack is alive
    sink.on('message', (m) => {
      if (m.toString('latin1').includes('alive-UDP@probe')) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    sink.send(GOOD('UDP', sink.address().port), port, '127.0.0.1');
  });
}

function optionsAnsweredTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 5000); // bounded, as above
    s.on('error', () => resolve(false));
    s.on('data', (d) => {
      if (d.toString('latin1').startsWith('SIP/2.0 200')) {
        clearTimeout(timer);
        s.destroy();
        resolve(true);
      }
    });
    s.once('connect', () => s.write(GOOD('TCP', s.localPort ?? 0)));
  });
}
