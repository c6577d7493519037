import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { randomMediaRange } from '../harness/rtpengine.js';
import { firstLines, headerOf, sippMessages, startSipp, stopAllSipp, type SippHandle } from '../harness/sipp.js';
import { freePort } from '../harness/ports.js';
import { describeWithPeers } from '../support/peers.js';

/**
 * Stopping and ending calls on the REAL process (`node --import tsx src/main.ts`, the same
 * entry point `npm start` builds), with SIPp as the PBX and the WhatsApp simulator:
 * - SIGTERM with a call in progress: the call carries on, /readyz says draining, a new WhatsApp
 *   call is rejected without ringing the PBX, a new PBX INVITE gets 503; when shutdown.drainSec
 *   passes the WhatsApp leg gets `terminate` and the PBX a BYE naming the cause, and the
 *   process exits 0.
 * - A PBX that never answers BYE: when the bridge ends the call (calls.maxDurationSec), WhatsApp
 *   still gets `terminate` at once, not after Timer F (32 s).
 */
const ROOT = resolve(import.meta.dirname, '../..');
const SECRET = 'drain-secret';
const PNID = '436666719526789';
/** The PBX's address: not the bridge's own listen address (the `sip` library takes that for a flow token). */
const PBX = '127.0.0.2';

interface Bridge {
  proc: ChildProcess;
  http: string;
  sipPort: number;
  output: () => string;
  exited: Promise<number | null>;
}

let bridge: Bridge | undefined;
let sim: WhatsAppSimulator | undefined;
let dir: string | undefined;
const sipps: SippHandle[] = [];

async function startBridge(pbxPort: number, extra: string): Promise<Bridge> {
  const httpPort = await freePort('127.0.0.1', 'tcp');
  const sipPort = await freePort('127.0.0.1', 'udp');
  const { portMin, portMax } = randomMediaRange();
  dir = mkdtempSync(join(tmpdir(), 'wa-drain-'));
  const yaml = [
    `http: { host: 127.0.0.1, port: ${httpPort} }`,
    `whatsapp: { provider: meta, graphBaseUrl: "${sim!.graphUrl}", phoneNumberIds: ["${PNID}"] }`,
    `sip: { udp: { host: 127.0.0.1, port: ${sipPort} }, tcp: null }`,
    `media: { engine: embedded, embedded: { rtpHost: 127.0.0.1, iceAddresses: [127.0.0.1], portMin: ${portMin}, portMax: ${portMax} } }`,
    `routing: { default: "sip:whatsapp@${PBX}:${pbxPort}" }`,
    `outbound: { enabled: true, allowFrom: [127.0.0.0/8], phoneNumberId: "${PNID}" }`,
    extra,
  ].join('\n');
  writeFileSync(join(dir, 'bridge.yaml'), yaml);
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, WA_SIP_BRIDGE_CONFIG: join(dir, 'bridge.yaml'), WA_ACCESS_TOKEN: 'tok', WA_APP_SECRET: SECRET, WA_VERIFY_TOKEN: 'vt', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const b: Bridge = { proc, http: `http://127.0.0.1:${httpPort}`, sipPort, output: () => out, exited };
  // Bounded wait for start-up (tsx compiles on the fly; slow on a busy machine).
  const end = performance.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${b.http}/readyz`)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (performance.now() > end || proc.exitCode !== null) throw new Error(`bridge did not become ready:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  sim!.setWebhookUrl(`${b.http}/webhook`);
  return b;
}

/** `p`, or its error with the end of the bridge's log appended. */
async function logged<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- bridge log ---\n${bridge?.output().slice(-6000)}`);
  }
}

async function readyz(b: Bridge): Promise<{ status: number; body: any }> {
  const r = await fetch(`${b.http}/readyz`);
  return { status: r.status, body: await r.json() };
}

/** The bridge's log records (pino JSON lines). */
function logRecords(b: Bridge): any[] {
  return b
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

/** Log records with this msg. */
function logLines(b: Bridge, msg: string): any[] {
  return logRecords(b).filter((l) => l.msg === msg);
}

/** /readyz once it answers 503 "draining" (bounded wait for the signal to be handled). */
async function untilDraining(b: Bridge): Promise<{ status: number; body: any }> {
  let r = await readyz(b);
  for (const end = performance.now() + 5000; r.status === 200 && performance.now() < end; r = await readyz(b)) await new Promise((x) => setTimeout(x, 50));
  return r;
}

/** The simulator, SIPp as the PBX running `scenario`, and the bridge with `extra` config; resolves once /readyz is 200. */
async function setup(scenario: string, extra: string): Promise<{ pbx: SippHandle; bridge: Bridge; sim: WhatsAppSimulator }> {
  sim = await WhatsAppSimulator.start({ phoneNumberId: PNID, businessNumber: '13175551399', accessToken: 'tok', appSecret: SECRET });
  const pbxPort = await freePort(PBX, 'udp');
  const pbx = startSipp({ scenario, ip: PBX, port: pbxPort, timeoutSec: 120 });
  sipps.push(pbx);
  bridge = await startBridge(pbxPort, extra);
  return { pbx, bridge, sim };
}

/** Kill what a test left running, by PID: the bridge, SIPp; close the simulator. */
async function cleanup(): Promise<void> {
  if (bridge && bridge.proc.exitCode === null) {
    bridge.proc.kill('SIGKILL');
    await bridge.exited;
  }
  bridge = undefined;
  for (const s of sipps.splice(0)) s.stop();
  stopAllSipp();
  await sim?.close();
  sim = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** A WhatsApp user calls: the bridge rejects the call, and does nothing else with it. */
async function newWhatsAppCallRejected(sim: WhatsAppSimulator): Promise<Awaited<ReturnType<WhatsAppSimulator['userCalls']>>> {
  const refused = await sim.userCalls({ userWaId: '5511900000002' });
  expect(refused.webhookStatus).toBe(200);
  await logged(refused.waitFor('reject', 10_000));
  expect(refused.actions()).toEqual(['reject']);
  return refused;
}

/** An agent dials through the bridge (SIPp UAC): the INVITE gets 503, ACKed; resolves with the 503. */
async function newPbxInviteRefused(b: Bridge): Promise<string> {
  const uac = startSipp({ scenario: 'bridge-uac-503.xml', ip: '127.0.0.3', port: await freePort('127.0.0.3', 'udp'), remote: `127.0.0.1:${b.sipPort}`, args: ['-s', '+5511987654321'], timeoutSec: 20 });
  sipps.push(uac);
  const result = await uac.exited;
  expect(result.code, result.errors + result.stderr).toBe(0);
  return sippMessages(result.messages).received.find((m) => m.startsWith('SIP/2.0 503'))!;
}

/** Wait (bounded) until the bridge has logged `msg`. */
async function waitLog(b: Bridge, msg: string, timeoutMs = 5000): Promise<any[]> {
  const end = performance.now() + timeoutMs;
  while (logLines(b, msg).length === 0) {
    if (performance.now() > end) throw new Error(`bridge did not log "${msg}" within ${timeoutMs} ms:\n${b.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return logLines(b, msg);
}

describeWithPeers('stopping the real process: drain, and a PBX that never answers BYE', ['sipp'], () => {
  afterEach(cleanup);

  it('SIGTERM drains: the call in progress carries on, new calls are refused both ways, at drainSec both legs end', async () => {
    const DRAIN_SEC = 8;
    const { pbx, bridge, sim } = await setup('sip-uas-answer-wait-bye.xml', `shutdown: { drainSec: ${DRAIN_SEC} }`);

    const call = await sim.userCalls({ userWaId: '5511987654321' });
    expect(call.webhookStatus).toBe(200);
    await logged(call.waitFor('accept', 20_000));
    await call.peer.waitConnected(10_000);

    // Liveness names the state and the last media probe; it never lists sessions.
    const live = await fetch(`${bridge.http}/healthz`);
    expect(live.status).toBe(200);
    expect(await live.json()).toMatchObject({ ok: true, state: 'running', activeCalls: 1, media: { engine: 'embedded', ok: true } });

    const sentAt = performance.now();
    bridge.proc.kill('SIGTERM');
    const r = await untilDraining(bridge);
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ ready: false, state: 'draining' });
    expect(r.body.reasons).toContain('bridge: draining');
    // Liveness is unaffected.
    expect((await fetch(`${bridge.http}/healthz`)).status).toBe(200);

    // A new WhatsApp call: rejected, and the PBX is not rung (SIPp takes one call; its log is checked below).
    await newWhatsAppCallRejected(sim);
    // A new INVITE from the PBX: 503 with Retry-After.
    const refusal = await newPbxInviteRefused(bridge);
    expect(headerOf(refusal, 'Retry-After')).toBe('30');
    expect(headerOf(refusal, 'Warning')).toContain('bridge shutting down');

    // The call in progress carried on through all of that: nothing was sent to end it.
    expect(call.actions()).toEqual(['pre_accept', 'accept']);

    // At drainSec: WhatsApp terminate, BYE with the cause to the PBX, exit 0.
    await logged(call.waitFor('terminate', (DRAIN_SEC + 20) * 1000));
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(DRAIN_SEC * 1000 - 50);
    expect(await bridge.exited).toBe(0);
    const pbxResult = await pbx.exited;
    expect(pbxResult.code, pbxResult.errors).toBe(0);
    const { received } = sippMessages(pbxResult.messages);
    expect(firstLines(received).filter((l) => l.startsWith('INVITE'))).toHaveLength(1);
    const bye = received.find((m) => m.startsWith('BYE'))!;
    expect(headerOf(bye, 'Reason')).toBe('Q.850;cause=41;text="shutdown"');
    expect(logLines(bridge, 'call ended').map((l) => l.cause)).toEqual(['shutdown']);
  }, 150_000);

  it('a PBX that never answers BYE: at calls.maxDurationSec WhatsApp gets terminate at once, not after Timer F', async () => {
    const MAX_SEC = 3;
    const { pbx, bridge, sim } = await setup('sip-uas-answer-ignore-bye.xml', `calls: { maxDurationSec: ${MAX_SEC} }\nshutdown: { drainSec: 5 }`);

    const call = await sim.userCalls({ userWaId: '5511987654321' });
    const t0 = performance.now();
    await logged(call.waitFor('accept', 20_000));
    // Timer F would hold a BYE-first teardown 32 s; the bound here is the maximum duration plus slack for a busy machine.
    await logged(call.waitFor('terminate', (MAX_SEC + 12) * 1000));
    expect(performance.now() - t0).toBeLessThan((MAX_SEC + 12) * 1000);
    // The call is released (media closed, record written) while the BYE is still unanswered.
    const ended = await waitLog(bridge, 'call ended');
    expect(ended.map((l) => l.cause)).toEqual(['max-duration']);

    const pbxResult = await pbx.exited;
    const bye = sippMessages(pbxResult.messages).received.find((m) => m.startsWith('BYE'))!;
    expect(headerOf(bye, 'Reason')).toBe('Q.850;cause=102;text="max-duration"');

    bridge.proc.kill('SIGTERM');
    expect(await bridge.exited).toBe(0);
  }, 120_000);
});

describeWithPeers('stopping the real process: a second signal', ['sipp'], () => {
  afterEach(cleanup);

  it('a second SIGTERM while draining ends every call at once: terminate, BYE, exit 0', async () => {
    const { pbx, bridge, sim } = await setup('sip-uas-answer-wait-bye.xml', 'shutdown: { drainSec: 600 }');
    const call = await sim.userCalls({ userWaId: '5511987654321' });
    await logged(call.waitFor('accept', 20_000));
    bridge.proc.kill('SIGTERM');
    await untilDraining(bridge);
    const t0 = performance.now();
    bridge.proc.kill('SIGTERM');
    await logged(call.waitFor('terminate', 10_000));
    expect(performance.now() - t0).toBeLessThan(10_000); // drainSec is 600
    expect(await bridge.exited).toBe(0);
    const bye = sippMessages((await pbx.exited).messages).received.find((m) => m.startsWith('BYE'))!;
    expect(headerOf(bye, 'Reason')).toBe('Q.850;cause=41;text="shutdown"');
  }, 120_000);
});

describeWithPeers('the capacity guard on the real process', ['sipp'], () => {
  afterEach(cleanup);

  it('beyond calls.maxConcurrent: a new WhatsApp call is rejected without an INVITE, a PBX INVITE gets 503 Retry-After', async () => {
    const { pbx, bridge, sim } = await setup('sip-uas-answer-wait-bye.xml', 'calls: { maxConcurrent: 1 }\nshutdown: { drainSec: 0 }');
    const call = await sim.userCalls({ userWaId: '5511987654321' });
    await logged(call.waitFor('accept', 20_000));

    const refused = await newWhatsAppCallRejected(sim);
    const refusal = await newPbxInviteRefused(bridge);
    expect(headerOf(refusal, 'Retry-After')).toBe('5');
    expect(headerOf(refusal, 'Warning')).toContain('concurrent call limit');
    // Being full is not being unready.
    expect((await readyz(bridge)).body).toMatchObject({ ready: true, bridge: { activeCalls: 1, maxConcurrent: 1 } });

    // The call in progress was never disturbed; the user hangs up and the PBX gets its BYE.
    expect(call.actions()).toEqual(['pre_accept', 'accept']);
    await call.hangUp();
    const pbxResult = await pbx.exited;
    expect(pbxResult.code, pbxResult.errors).toBe(0);
    expect(firstLines(sippMessages(pbxResult.messages).received).filter((l) => l.startsWith('INVITE'))).toHaveLength(1);
    // The refusal is logged with the call's id and its cause.
    expect(logRecords(bridge).filter((l) => l.refusal === 'over-capacity').map((l) => l.waCallId ?? l.sipCallId)).toHaveLength(2);
    expect(logRecords(bridge).some((l) => l.refusal === 'over-capacity' && l.waCallId === refused.callId)).toBe(true);
  }, 120_000);
});
