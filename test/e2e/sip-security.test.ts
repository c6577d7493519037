import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { startLoopbackBridge } from '../support/bridge-config.js';
import { freePort } from '../harness/ports.js';
import { describeWithPeers } from '../support/peers.js';

/**
 * The SIP port under attack, against real peers on loopback: the WhatsApp simulator (werift
 * peer) → the bridge (127.0.0.1, embedded media) → baresip (127.0.0.2, a desk phone).
 * Attackers are other loopback addresses: a flooder in a child process (so its own CPU is not
 * the bridge's event loop), and raw sockets that speak SIP as a PBX or an intruder would.
 */
const PHONE_NUMBER_ID = '436666719526789';
const CALLER = '5511987654321';
const SECRET = 'sec-app-secret';
const TOKEN = 'sec-token';

let sim: WhatsAppSimulator;
let app: RunningApp | undefined;
let phone: BaresipHandle | undefined;
let flooder: ChildProcess | undefined;
let sipPort = 0;
const sockets: UdpSocket[] = [];
const logLines: string[] = [];
const log: Logger = createLogger({
  level: 'info',
  destination: { write: (s: string) => (logLines.push(s), true) } as unknown as NodeJS.WritableStream,
});

async function startBridge(over: { outbound?: Record<string, unknown> } = {}): Promise<RunningApp> {
  const started = await startLoopbackBridge(
    sim,
    {
      whatsapp: { phoneNumberIds: [PHONE_NUMBER_ID] },
      rest: {
        routing: { default: phone ? phone.sipUri : 'sip:nobody@127.0.0.2:5999' },
        outbound: over.outbound ? { enabled: true, dialPrefix: '9', phoneNumberId: PHONE_NUMBER_ID, ...over.outbound } : { enabled: false },
      },
    },
    log,
  );
  sipPort = started.sipPort;
  app = started.app;
  return started.app;
}

/**
 * A child process attacking the SIP port for `seconds`: ~100 whitespace datagrams/s (65,000 and
 * 16,000 bytes: the size that is dropped at once, and one that is within the size limit and
 * must be scanned) from 127.0.0.5, and TCP connections from 127.0.0.6 that announce a
 * non-numeric Content-Length, then stream bytes without end (reconnecting when cut off).
 */
function startFlood(seconds: number): ChildProcess {
  const script = `
    const dgram = require('dgram'), net = require('net');
    const [port, seconds] = process.argv.slice(1).map(Number);
    const big = Buffer.alloc(65000, 0x20), mid = Buffer.alloc(16000, 0x20);
    const u = dgram.createSocket('udp4');
    let sent = 0, cut = 0;
    u.bind(0, '127.0.0.5', () => {
      const t = setInterval(() => { u.send(sent++ % 2 ? big : mid, port, '127.0.0.1'); }, 10);
      setTimeout(() => { clearInterval(t); console.log(JSON.stringify({ sent, cut })); process.exit(0); }, seconds * 1000);
    });
    const endless = () => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.6' });
      s.on('error', () => {});
      s.on('close', () => { cut++; setTimeout(endless, 20); });
      s.on('connect', () => {
        s.write('INVITE sip:x@127.0.0.1 SIP/2.0\\r\\nVia: SIP/2.0/TCP 127.0.0.6:5060;branch=z9hG4bKx\\r\\nContent-Length: forever\\r\\n\\r\\n');
        const pump = () => { if (!s.destroyed && s.write(Buffer.alloc(64 * 1024, 0x41))) setImmediate(pump); };
        s.on('drain', pump);
        pump();
      });
    };
    endless();
  `;
  const child = spawn(process.execPath, ['-e', script, String(sipPort), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  flooder = child;
  return child;
}

async function healthLatencies(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await fetch(`${app!.url}/healthz`);
    out.push(performance.now() - t0);
    expect(r.status).toBe(200);
    await new Promise((r2) => setTimeout(r2, 100));
  }
  return out;
}

/** A raw SIP "PBX" on `address`: sends INVITEs over UDP or TCP and returns the final response. */
async function invite(address: string, requestUri: string, transport: 'udp' | 'tcp', authorization?: string): Promise<string> {
  const port = await freePort(address, transport);
  const text = [
    `INVITE ${requestUri} SIP/2.0`,
    `Via: SIP/2.0/${transport.toUpperCase()} ${address}:${port};branch=z9hG4bK${Math.random().toString(36).slice(2)}`,
    `From: <sip:7001@${address}>;tag=t${Math.random().toString(36).slice(2)}`,
    `To: <${requestUri}>`,
    `Call-ID: ${Math.random().toString(36).slice(2)}@${address}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:7001@${address}:${port};transport=${transport}>`,
    'Max-Forwards: 70',
    ...(authorization ? [`Authorization: ${authorization}`] : []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const finalOf = (data: string): string | undefined => data.split(/(?=SIP\/2\.0 )/).find((m) => /^SIP\/2\.0 [2-6]\d\d/.test(m));
  if (transport === 'udp') {
    const s = createSocket('udp4');
    sockets.push(s);
    await new Promise<void>((r) => s.bind(port, address, () => r()));
    return new Promise((resolve) => {
      s.on('message', (m) => {
        const f = finalOf(m.toString('latin1'));
        if (f) resolve(f);
      });
      s.send(text, sipPort, '127.0.0.1');
    });
  }
  return new Promise((resolve) => {
    let got = '';
    const c = connect({ port: sipPort, host: '127.0.0.1', localAddress: address }, () => c.write(text));
    c.on('data', (d) => {
      got += d.toString('latin1');
      const f = finalOf(got);
      if (f) {
        c.destroy();
        resolve(f);
      }
    });
  });
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
function digest(nonce: string, uri: string): string {
  const response = md5(`${md5('pbx:wa:pbx-secret')}:${nonce}:00000001:abc:auth:${md5(`INVITE:${uri}`)}`);
  return `Digest username="pbx", realm="wa", nonce="${nonce}", uri="${uri}", qop=auth, nc=00000001, cnonce="abc", response="${response}", algorithm=MD5`;
}
const header = (msg: string, name: string): string | undefined => new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(msg)?.[1];
const refusalReasons = (): string[] =>
  logLines.map((l) => JSON.parse(l) as { msg: string; reason?: string }).filter((l) => l.msg.startsWith('INVITE refused')).map((l) => l.reason ?? '');

/**
 * A WhatsApp call answered by the desk phone whose audio reaches WhatsApp: the precondition of
 * the flood test. On this loaded machine the embedded engine's DTLS with the simulator
 * sometimes fails before any packet flows (a media issue, logged as "WhatsApp DTLS failed",
 * before any attack starts); such a call is hung up and one more is placed.
 */
async function callWithAudio(desk: BaresipHandle) {
  for (let attempt = 1; ; attempt++) {
    const call = await sim.userCalls({ userWaId: CALLER, userName: 'Ana', toneHz: 1000 });
    await call.waitFor('accept');
    await desk.events.waitFor('CALL_ESTABLISHED');
    await call.peer.waitConnected(5000);
    // Bounded wait: audio starts within a second when the media legs are up.
    for (let i = 0; i < 100 && call.peer.stats.rtpIn < 25; i++) await new Promise((r) => setTimeout(r, 50));
    if (call.peer.stats.rtpIn >= 25 || attempt === 2) return call;
    await desk.hangup();
    await call.waitFor('terminate');
    await desk.events.waitFor('CALL_CLOSED');
  }
}

describeWithPeers('the SIP port under attack (simulator + bridge + baresip)', ['baresip'], () => {
  beforeAll(async () => {
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: '13175551399', accessToken: TOKEN, appSecret: SECRET });
  });
  afterEach(async (ctx) => {
    if (flooder?.pid !== undefined && flooder.exitCode === null) flooder.kill();
    flooder = undefined;
    for (const s of sockets.splice(0)) s.close();
    await app?.close();
    app = undefined;
    await phone?.stop();
    phone = undefined;
    if (ctx.task.result?.state === 'fail') process.stderr.write(logLines.slice(-40).join(''));
    logLines.length = 0;
  });
  afterAll(async () => {
    await sim?.close();
  });

  it('a whitespace-datagram flood and an endless-Content-Length TCP stream: audio keeps flowing, /healthz answers in time', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    const a = await startBridge();
    const call = await callWithAudio(phone);
    const before = await call.peer.rtpInRate(1500);

    const child = startFlood(6);
    const report = new Promise<{ sent: number; cut: number }>((resolve) => {
      let out = '';
      child.stdout!.on('data', (d) => (out += String(d)));
      child.once('exit', () => resolve(JSON.parse(out || '{"sent":0,"cut":0}')));
    });
    await new Promise((r) => setTimeout(r, 1000)); // let the flood get going before measuring
    call.peer.clearReceived();
    const [during, health] = await Promise.all([call.peer.rtpInRate(3000), healthLatencies(10)]);
    const heard = call.peer.toneWindows(440);
    const flood = await report;

    const st = (a.sip as unknown as { frontDoorStats(): { dropped: Record<string, number> } }).frontDoorStats();
    expect(flood.sent, 'the flooder sent its datagrams').toBeGreaterThan(200);
    expect((st.dropped['too-large'] ?? 0) + (st.dropped['no-header-end'] ?? 0), 'whitespace datagrams reached the front door').toBeGreaterThan(100);
    expect(st.dropped['bad-content-length'] ?? 0, 'endless TCP streams were cut off').toBeGreaterThan(2);
    // 50 packets/s is one 20 ms stream; the band is the one the keep-alive test uses on a busy machine.
    expect(before).toBeGreaterThan(45);
    expect(during, 'RTP toward WhatsApp during the flood').toBeGreaterThan(45);
    expect(heard.share, 'the WhatsApp user still hears the agent (440 Hz)').toBeGreaterThan(0.7);
    // Before the front door one 65,000-byte datagram blocked the loop for 250-740 ms, so at this
    // rate every request waited seconds. The test process also runs the simulator's WebRTC peer
    // and the media engine on a shared 2-core machine, where a lone 500 ms hiccup happens without
    // any flood: the typical request must be quick, and none may wait a second.
    const sorted = [...health].sort((x, y) => x - y);
    const shown = `/healthz latencies ${health.map((h) => h.toFixed(0)).join(', ')} ms`;
    expect(sorted[Math.floor(sorted.length / 2)], shown).toBeLessThan(100);
    expect(sorted.at(-1), shown).toBeLessThan(1000);
    await phone.hangup();
    await call.waitFor('terminate');
  });

  it('digest: an answer replayed from another source, or against another number, gets 403', async () => {
    await startBridge({ outbound: { allowFrom: [], auth: { username: 'pbx', password: 'pbx-secret', realm: 'wa' } } });
    const uriA = `sip:9+${CALLER}@127.0.0.1:${sipPort}`;
    const uriB = `sip:9+5511900000002@127.0.0.1:${sipPort}`;
    const challenge = await invite('127.0.0.2', uriA, 'udp');
    expect(challenge.split('\r\n')[0]).toBe('SIP/2.0 401 Unauthorized');
    const nonce = /nonce="([^"]+)"/.exec(header(challenge, 'WWW-Authenticate')!)![1]!;
    const answerForA = digest(nonce, uriA);

    const fromElsewhere = await invite('127.0.0.4', uriA, 'udp', answerForA);
    expect(fromElsewhere.split('\r\n')[0]).toBe('SIP/2.0 403 Forbidden');
    const otherNumber = await invite('127.0.0.2', uriB, 'udp', answerForA);
    expect(otherNumber.split('\r\n')[0]).toBe('SIP/2.0 403 Forbidden');
    expect(refusalReasons()).toEqual([
      'digest authentication failed: nonce not issued to this source',
      `digest authentication failed: digest uri "${uriA}" is not the Request-URI`,
    ]);
    // Control: a correct answer through the same real parser is admitted (the number is not
    // one, so it ends in 484 without placing a call); replayed as is, it is refused.
    const notANumber = `sip:9abc@127.0.0.1:${sipPort}`;
    const fresh = await invite('127.0.0.2', notANumber, 'udp');
    const nonce2 = /nonce="([^"]+)"/.exec(header(fresh, 'WWW-Authenticate')!)![1]!;
    const good = digest(nonce2, notANumber);
    expect((await invite('127.0.0.2', notANumber, 'udp', good)).split('\r\n')[0]).toBe('SIP/2.0 484 Address Incomplete');
    expect((await invite('127.0.0.2', notANumber, 'udp', good)).split('\r\n')[0]).toBe('SIP/2.0 403 Forbidden');
    expect(refusalReasons().at(-1)).toBe('digest authentication failed: replayed digest (nc 00000001 already used)');
    expect(sim.graph.actions.filter((x) => x.action === 'connect')).toEqual([]);
  });

  it('with outbound.requireTcp, an INVITE over UDP from an allowed address is refused; over TCP it is admitted', async () => {
    await startBridge({ outbound: { allowFrom: ['127.0.0.2/32'], requireTcp: true } });
    const overUdp = await invite('127.0.0.2', `sip:9+${CALLER}@127.0.0.1:${sipPort}`, 'udp');
    expect(overUdp.split('\r\n')[0]).toBe('SIP/2.0 403 Forbidden');
    expect(header(overUdp, 'Warning')).toBe('399 wa-sip-bridge "outbound calls are taken only over TCP"');
    // Over TCP the same source passes admission: a number that is not one then gets 484, not 403.
    const overTcp = await invite('127.0.0.2', `sip:9abc@127.0.0.1:${sipPort}`, 'tcp');
    expect(overTcp.split('\r\n')[0]).toBe('SIP/2.0 484 Address Incomplete');
  });
});
