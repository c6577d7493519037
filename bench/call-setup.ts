/**
 * Inbound call set-up latency through the real stack on loopback: WhatsApp simulator → bridge
 * → media engine → SIPp (answers at once). Reports, per media engine, webhook → INVITE sent and
 * PBX 200 OK → `accept` sent, as medians and p90 over N calls, next to the rtpengine ng round
 * trip measured in the same run as a baseline. Each engine runs twice, operations off (no
 * metrics, no call traces, no call records) and on (metrics, the call view's traces with message
 * text, a call-record file), so the cost of observing calls shows as a ratio.
 *
 *   npx tsx bench/call-setup.ts [calls=20]        BENCH_ENGINES=embedded,rtpengine (default both)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRtpengineEngine } from '../src/media/rtpengine/index.js';
import { silentLogger } from '../src/util/log.js';
import { randomMediaRange, startRtpengine } from '../test/harness/rtpengine.js';
import { startSipp } from '../test/harness/sipp.js';
import { freeDualPort } from '../test/harness/ports.js';
import { enginesToMeasure, quantile, startBenchBridge, summary, type EngineName } from './harness.js';

const N = Number(process.argv[2] ?? 20);
const rtpengine = await startRtpengine(randomMediaRange());

// Baseline: the ng round trip to the same rtpengine.
const probe = await createRtpengineEngine({ ng: [rtpengine.ng], logger: silentLogger() });
const pings: number[] = [];
for (let i = 0; i < 50; i++) {
  const t = performance.now();
  await probe.listSessions();
  pings.push(performance.now() - t);
}
await probe.close();
console.log(`baseline ng list round trip: ${summary(pings)}`);

const OPS_OFF = { ops: { metrics: { enabled: false } } };
const opsOn = (dir: string) => ({ ops: { cdr: { file: join(dir, 'calls.jsonl') }, admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789' }] } } });

async function measure(engine: EngineName, ops: Record<string, unknown>, n = N): Promise<{ toInvite: number[]; toAccept: number[] }> {
  const port = await freeDualPort('127.0.0.3');
  const sipp = startSipp({ scenario: 'sip-uas-answer-wait-bye.xml', ip: '127.0.0.3', port, timeoutSec: 120, args: ['-m', String(n)] });
  const b = await startBenchBridge({
    label: `call-setup ${engine}`,
    engine,
    rtpengine,
    // Calls follow each other faster than the default set-up rate guard (10/s) allows.
    config: { routing: { default: `sip:bench@127.0.0.3:${port}` }, calls: { maxSetupsPerSec: 1000 }, ...ops },
  });
  const toInvite: number[] = [];
  const toAccept: number[] = [];
  for (let i = 0; i < n; i++) {
    const call = await b.sim.userCalls({ userWaId: `55119876543${String(i).padStart(2, '0')}` });
    await call.waitFor('accept');
    const c = b.app.bridge.call(call.callId);
    if (c?.timings.inviteSent !== undefined && c.timings.acceptSent !== undefined && c.timings.pbxAnswered !== undefined) {
      toInvite.push(c.timings.inviteSent - c.timings.connectReceived);
      toAccept.push(c.timings.acceptSent - c.timings.pbxAnswered);
    }
    await call.hangUp();
    await c?.ended;
  }
  await b.stop();
  sipp.stop();
  return { toInvite, toAccept };
}

for (const engine of enginesToMeasure()) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-ops-'));
  await measure(engine, opsOn(dir), Math.max(5, N >> 2)); // warm-up (JIT, sockets), not reported
  const off = await measure(engine, OPS_OFF);
  const on = await measure(engine, opsOn(dir));
  rmSync(dir, { recursive: true, force: true });
  const ratio = (xs: number[]): string => `${(quantile(xs, 0.5) / quantile(pings, 0.5)).toFixed(1)}x ng round trip`;
  const opsRatio = (a: number[], b: number[]): string => `${(quantile(a, 0.5) / quantile(b, 0.5)).toFixed(2)}x`;
  console.log(`[${engine}] calls: ${off.toInvite.length}/${N} (operations off), ${on.toInvite.length}/${N} (on)`);
  console.log(`[${engine}] webhook received -> INVITE sent: off ${summary(off.toInvite)} (${ratio(off.toInvite)}); on ${summary(on.toInvite)}; on/off ${opsRatio(on.toInvite, off.toInvite)}`);
  console.log(`[${engine}] PBX 200 OK -> accept sent:      off ${summary(off.toAccept)} (${ratio(off.toAccept)}); on ${summary(on.toAccept)}; on/off ${opsRatio(on.toAccept, off.toAccept)}`);
}
await rtpengine.stop();
process.exit(0);
