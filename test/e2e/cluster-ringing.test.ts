import { afterEach, beforeAll, afterAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { RunningApp } from '../../src/app.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { freeDualPort, freePort } from '../harness/ports.js';
import { startRedis, type RedisDaemon } from '../harness/redis.js';
import { firstLines, headerOf, sippMessages, startSipp, stopAllSipp, type SippHandle } from '../harness/sipp.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';
import { APP_SECRET, cleanUp, dumpPair, logged, startPair, type ProcessInstance } from './cluster-process.js';

/**
 * A call still ringing when its instance dies: A is the real process, killed with SIGKILL; B
 * (this process) must end the call on both sides from what A kept in Redis, at once rather than
 * at a SIP timer. SIPp (127.0.0.3) is the PBX, the simulator plays WhatsApp.
 */
const PNID = '436666719526789';
const USER = '5511987654321';
const PBX = '127.0.0.3';

let redis: RedisDaemon;
let sim: WhatsAppSimulator;
let a: ProcessInstance | undefined;
let b: RunningApp | undefined;
let bLogs: string[] = [];
let sipp: SippHandle | undefined;

async function instances(opts: { pbxUri: string; outbound?: boolean }): Promise<{ sipA: number; sipB: number; idA: string; idB: string }> {
  const outbound = opts.outbound ? { enabled: true, allowFrom: [`${PBX}/32`], dialPrefix: '9', phoneNumberId: PNID, ringTimeoutSec: 60 } : undefined;
  const pair = await startPair({ redisUrl: redis.url, graphUrl: sim.graphUrl, pbxUri: opts.pbxUri, tag: 'ring', ...(outbound ? { outbound } : {}) });
  [a, b, bLogs] = [pair.a, pair.b, pair.bLogs];
  return pair;
}

/** Bounded wait: A writes its ringing INVITE to Redis at its next heartbeat (500 ms). */
async function storedInvite(idA: string, ready: (inv: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const r = new Redis(redis.url);
  try {
    return await waitFor(
      async () => {
        const all = Object.values(await r.hgetall(`wsb:inv:${idA}`)).map((v) => JSON.parse(v) as Record<string, unknown>);
        return all.length === 1 && ready(all[0]!) ? all[0] : undefined;
      },
      { what: "A's ringing INVITE in Redis" },
    );
  } finally {
    r.disconnect();
  }
}

/** The methods SIPp received, in order, a retransmission (a busy machine's) counted once. */
function methods(received: string[]): string[] {
  return [...new Set(firstLines(received).map((l) => l.split(' ')[0]!))];
}

/** The first request `method` SIPp received. */
function firstOf(received: string[], method: string): string {
  const m = received.find((r) => r.startsWith(`${method} `));
  if (!m) throw new Error(`SIPp received no ${method}`);
  return m;
}

/** When SIPp received the first message starting with `start`, by its own clock (its message log, local time). */
function sippReceivedAt(log: string, start: string): number {
  for (const m of log.matchAll(/-{5,} (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\d*\s*\nUDP message received[^\n]*\n\s*([^\n]*)/g))
    if (m[3]!.startsWith(start)) return new Date(`${m[1]}T${m[2]}`).getTime();
  return Number.NaN;
}

async function metrics(): Promise<string> {
  return (await fetch(`${b!.url}/metrics`)).text();
}

describeWithPeers('a cluster instance killed while its call rings (real process + redis + SIPp)', ['sipp'], () => {
  beforeAll(async () => {
    redis = await startRedis();
    sim = await WhatsAppSimulator.start({ phoneNumberId: PNID, businessNumber: '13175551399', accessToken: 'tok', appSecret: APP_SECRET });
  }, 30_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') dumpPair(a, bLogs);
    await cleanUp([() => a?.cleanup(), () => sipp?.stop(), () => stopAllSipp(), () => b?.close()]);
    [a, b, sipp] = [undefined, undefined, undefined];
  });

  afterAll(async () => {
    await sim?.close();
    await redis?.stop();
  });

  it('inbound: the PBX rings; A is killed; B CANCELs the INVITE with its own top Via (200, 487, ACK) and terminates WhatsApp, within seconds', async () => {
    const pbxPort = await freeDualPort(PBX);
    const { idA, idB, sipB } = await instances({ pbxUri: `sip:1001@${PBX}:${pbxPort}` });
    sipp = startSipp({ scenario: 'cluster-uas-ring-cancel.xml', ip: PBX, port: pbxPort, timeoutSec: 90, args: ['-set', 'survivorHost', '127.0.0.1', '-set', 'survivorPort', String(sipB)] });
    sim.setWebhookUrl(`http://127.0.0.1:${a!.httpPort}/webhook`);
    const call = await sim.userCalls({ userWaId: USER });
    expect(call.webhookStatus).toBe(200);
    // The 180 reached A, and A stored the INVITE with the early dialog the 180 named.
    const stored = await storedInvite(idA, (inv) => inv.kind === 'client' && inv.early !== undefined);

    const killedAt = performance.now();
    const killedWall = Date.now();
    a!.kill();
    const result = await sipp.exited;
    const sippDoneMs = performance.now() - killedAt;
    expect(result.code, `${result.errors}\n${result.stderr}\n${result.messages}`).toBe(0);
    await call.waitFor('terminate', 10_000);
    const terminatedMs = performance.now() - killedAt;

    const { received } = sippMessages(result.messages);
    expect(methods(received)).toEqual(['INVITE', 'CANCEL', 'ACK', 'BYE']);
    const [invite, cancel, ack] = [firstOf(received, 'INVITE'), firstOf(received, 'CANCEL'), firstOf(received, 'ACK')];
    // RFC 3261 section 9.1: the CANCEL carries the INVITE's top Via (branch and sent-by: A's), its Call-ID, From, CSeq number.
    const topVia = (m: string) => headerOf(m, 'Via')!.replace(/;received=[^;]*|;rport(=\d+)?/g, '');
    expect(topVia(cancel)).toBe(topVia(invite));
    expect(topVia(ack)).toBe(topVia(invite));
    expect(headerOf(cancel, 'Via')).toContain(String((stored.via as { params: { branch: string } }).params.branch));
    expect(headerOf(cancel, 'Call-ID')).toBe(headerOf(invite, 'Call-ID'));
    expect(headerOf(cancel, 'From')).toBe(headerOf(invite, 'From'));
    expect(headerOf(cancel, 'CSeq')).toBe(headerOf(invite, 'CSeq')!.replace('INVITE', 'CANCEL'));
    expect(headerOf(cancel, 'Reason')).toMatch(/Q\.850;cause=41/);
    expect(headerOf(ack, 'To')).toMatch(/;tag=/);
    expect(call.actions()).toContain('terminate');
    expect(call.actions()).not.toContain('accept');
    // The lease is 2 s and B sweeps every 500 ms: the phone stops ringing within seconds, not at Timer B / the ring timeout.
    expect(sippDoneMs).toBeLessThan(6000);
    const cancelAtMs = sippReceivedAt(result.messages, 'CANCEL ') - killedWall;
    expect(cancelAtMs).toBeLessThan(6000);
    expect(terminatedMs).toBeLessThan(6000);

    const ended = await waitFor(() => logged(bLogs, "cluster: a dead instance's call ended by this survivor").at(0), { what: "B's takeover outcome" });
    expect(ended).toMatchObject({ deadInstance: idA, waCallId: call.callId, reason: 'ringing' });
    expect(ended.outcome).toEqual(['whatsapp terminated', 'CANCEL answered 200; ACK for the 487 sent; BYE on the early dialog answered 481', 'media ran in the dead instance (embedded engine): lost with it']);
    const text = await metrics();
    expect(text).toMatch(/wasip_cluster_takeovers_total\{reason="ringing"\} 1/);
    expect(text).toMatch(/wasip_cluster_takeover_seconds_count 1/);
    process.stderr.write(`cluster ringing (inbound): CANCEL at the PBX ${cancelAtMs} ms after the kill, its scenario done (ACK, BYE) after ${Math.round(sippDoneMs)} ms, WhatsApp terminated after ${Math.round(terminatedMs)} ms (B: ${idB})\n`);
  });

  it('inbound, answered as A dies: the 200 OK never reached A; B\'s CANCEL is too late, its ACK and BYE end the call (BYE 200)', async () => {
    const pbxPort = await freeDualPort(PBX);
    const { idA, sipB } = await instances({ pbxUri: `sip:1001@${PBX}:${pbxPort}` });
    // A port nobody reads: where the PBX's 200 OK goes, as to an instance that just died.
    const lostPort = await freePort('127.0.0.1', 'udp');
    sipp = startSipp({ scenario: 'cluster-uas-answer-lost.xml', ip: PBX, port: pbxPort, timeoutSec: 90, args: ['-set', 'survivorHost', '127.0.0.1', '-set', 'survivorPort', String(sipB), '-set', 'lostPort', String(lostPort)] });
    sim.setWebhookUrl(`http://127.0.0.1:${a!.httpPort}/webhook`);
    const call = await sim.userCalls({ userWaId: USER });
    await storedInvite(idA, (inv) => inv.kind === 'client' && inv.early !== undefined);
    // The 200 OK leaves SIPp 200 ms after the 180; B's CANCEL comes at least a lease (2 s) after this kill.
    a!.kill();
    const result = await sipp.exited;
    expect(result.code, `${result.errors}\n${result.stderr}\n${result.messages}`).toBe(0);
    const { received } = sippMessages(result.messages);
    expect(methods(received)).toEqual(['INVITE', 'CANCEL', 'ACK', 'BYE']);
    // The ACK and the BYE are in the dialog the 180 and the 200 named (the PBX's tag).
    expect(headerOf(firstOf(received, 'ACK'), 'CSeq')).toBe(headerOf(firstOf(received, 'INVITE'), 'CSeq')!.replace('INVITE', 'ACK'));
    expect(headerOf(firstOf(received, 'BYE'), 'To')).toMatch(/;tag=\d+SIPpTag01/);
    await call.waitFor('terminate', 10_000);
    const ended = await waitFor(() => logged(bLogs, "cluster: a dead instance's call ended by this survivor").at(0), { what: "B's takeover outcome" });
    expect(ended.outcome).toEqual(['whatsapp terminated', 'CANCEL answered 200; ACK for the 487 sent; BYE on the early dialog answered 200', 'media ran in the dead instance (embedded engine): lost with it']);
  });

  it('outbound: WhatsApp rings for the agent\'s INVITE; A is killed; B terminates WhatsApp and answers the PBX\'s INVITE 503, within seconds', async () => {
    const { sipA, idA } = await instances({ pbxUri: `sip:1001@${PBX}:5060`, outbound: true });
    sim.setWebhookUrl(`http://127.0.0.1:${a!.httpPort}/webhook`);
    sim.user(USER, { kind: 'no-answer', giveUpAfterMs: 60_000 });
    sipp = startSipp({ scenario: 'cluster-uac-ringing.xml', ip: PBX, port: await freeDualPort(PBX), remote: `127.0.0.1:${sipA}`, args: ['-s', `9+${USER}`], timeoutSec: 90 });
    const connect = await sim.graph.waitForAction('connect', 20_000);
    const waCallId = await waitFor(() => sim.graph.actions.find((x) => x.action === 'connect')?.response.body as { calls?: Array<{ id: string }> } | undefined, { what: 'the connect answer' }).then((body) => body.calls?.[0]?.id);
    expect(waCallId).toBeDefined();
    expect(connect.phoneNumberId).toBe(PNID);
    await storedInvite(idA, (inv) => inv.kind === 'server');
    // Bounded wait: A records the WhatsApp call id (from the connect answer) with the call.
    const r = new Redis(redis.url);
    try {
      await waitFor(async () => Object.values(await r.hgetall(`wsb:calls:${idA}`)).some((v) => v.includes(waCallId!)), { what: "A's call record naming the WhatsApp call id" });
    } finally {
      r.disconnect();
    }

    const killedWall = Date.now();
    a!.kill();
    const terminate = await sim.graph.waitForAction((x) => x.action === 'terminate' && x.callId === waCallId, 10_000);
    const result = await sipp.exited;
    expect(result.code, `${result.errors}\n${result.stderr}`).toBe(0);
    const { received } = sippMessages(result.messages);
    const final = received.find((m) => m.startsWith('SIP/2.0 503'))!;
    expect(final).toBeDefined();
    const finalAtMs = sippReceivedAt(result.messages, 'SIP/2.0 503') - killedWall;
    expect(headerOf(final, 'Reason')).toMatch(/SIP;cause=503/);
    expect(headerOf(final, 'Warning')).toMatch(/bridge instance failed/);
    const ringing = received.find((m) => m.startsWith('SIP/2.0 180'));
    // The To tag of the 503 is the one of the 180 A sent (RFC 3261 section 8.2.6.2).
    if (ringing) expect(headerOf(final, 'To')).toBe(headerOf(ringing, 'To'));
    expect(terminate.at - killedWall).toBeLessThan(6000);
    expect(finalAtMs).toBeLessThan(6000);
    const ended = await waitFor(() => logged(bLogs, "cluster: a dead instance's call ended by this survivor").at(0), { what: "B's takeover outcome" });
    expect(ended).toMatchObject({ deadInstance: idA, waCallId, reason: 'ringing' });
    expect(ended.outcome).toEqual(['whatsapp terminated', "PBX's INVITE answered 503", 'media ran in the dead instance (embedded engine): lost with it']);
    process.stderr.write(`cluster ringing (outbound): WhatsApp terminated ${terminate.at - killedWall} ms, the PBX's INVITE answered 503 ${finalAtMs} ms after the kill\n`);
  });
});
