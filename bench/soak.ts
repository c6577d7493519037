/**
 * Soak: holds N concurrent inbound calls with churn (each call lasts a random 3-12 s, then the
 * WhatsApp user hangs up and a new one calls) for a set time, through the real stack on
 * loopback: WhatsApp simulator (signed webhooks, WebRTC peer per call) → bridge → media engine
 * → SIPp (answers, waits for the BYE). Every 15 s it samples RSS, heap, event-loop delay, open
 * handles, media sessions and the size of every per-call map (the bridge's, the call traces'),
 * and at the end says, per series, whether it levelled off or kept growing.
 *
 *   npx tsx bench/soak.ts [minutes=10] [calls=20]      BENCH_ENGINES=rtpengine (default) or embedded
 *
 * A map bounded by calls in progress must stay near `calls`; the de-duplication sets grow for
 * their 30-minute TTL (capped at 100,000 keys) by design, so in a soak shorter than that they
 * grow linearly with the calls placed and are reported as such.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomMediaRange, startRtpengine } from '../test/harness/rtpengine.js';
import { freeDualPort } from '../test/harness/ports.js';
import { startSipp } from '../test/harness/sipp.js';
import { enginesToMeasure, startBenchBridge } from './harness.js';

const MINUTES = Number(process.argv[2] ?? 10);
const CALLS = Number(process.argv[3] ?? 20);
const SAMPLE_MS = 15_000;
const engine = enginesToMeasure(['rtpengine'])[0]!;

const rtpengine = engine === 'rtpengine' ? await startRtpengine(randomMediaRange()) : undefined;
const port = await freeDualPort('127.0.0.3');
const sipp = startSipp({ scenario: 'sip-uas-answer-wait-bye.xml', ip: '127.0.0.3', port, timeoutSec: MINUTES * 60 + 120, args: ['-m', '1000000'] });
const dir = mkdtempSync(join(tmpdir(), 'soak-'));
const b = await startBenchBridge({
  label: `soak ${engine}`,
  engine,
  ...(rtpengine ? { rtpengine } : {}),
  config: {
    routing: { default: `sip:soak@127.0.0.3:${port}` },
    calls: { maxConcurrent: CALLS * 2, maxSetupsPerSec: 1000 },
    // Everything that keeps per-call state is on: metrics, the call view's traces, call records.
    ops: { cdr: { file: join(dir, 'calls.jsonl'), maxBytes: 1 << 20, keep: 1 }, admin: { tokens: [{ name: 'soak', token: 'soak-token-0123456789' }] } },
  },
});

const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const deadline = performance.now() + MINUTES * 60_000;
let placed = 0;
let failed = 0;

async function caller(n: number): Promise<void> {
  while (performance.now() < deadline) {
    try {
      const call = await b.sim.userCalls({ userWaId: `551198${String(n).padStart(3, '0')}${String(placed++ % 10000).padStart(4, '0')}` });
      await call.waitFor('accept', 15_000);
      await new Promise((r) => setTimeout(r, 3000 + Math.random() * 9000));
      await call.hangUp();
      await b.app.bridge.call(call.callId)?.ended;
    } catch (err) {
      failed++;
      console.error(`call failed: ${(err as Error).message}`);
    }
  }
}

interface Sample {
  min: number;
  rssMb: number;
  heapMb: number;
  loopP99Ms: number;
  handles: number;
  sessions: number;
  maps: Record<string, number>;
}
const samples: Sample[] = [];
const t0 = performance.now();
async function sample(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const m = process.memoryUsage();
  const traces: Record<string, number> = { ...b.app.ops.traces?.sizes() };
  samples.push({
    min: (performance.now() - t0) / 60_000,
    rssMb: m.rss / 2 ** 20,
    heapMb: m.heapUsed / 2 ** 20,
    loopP99Ms: loop.percentile(99) / 1e6,
    handles: (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length,
    sessions: (await b.app.media.listSessions()).length,
    maps: { ...b.app.bridge.status().maps, ...Object.fromEntries(Object.entries(traces).map(([k, v]) => [`traces.${k}`, v])) },
  });
  loop.reset();
  const s = samples.at(-1)!;
  console.log(
    `${s.min.toFixed(1)} min: rss ${s.rssMb.toFixed(0)} MB, heap ${s.heapMb.toFixed(0)} MB, loop p99 ${s.loopP99Ms.toFixed(1)} ms, handles ${s.handles}, sessions ${s.sessions}, calls placed ${placed} (${failed} failed), maps ${JSON.stringify(s.maps)}`,
  );
}

console.log(`soak: ${CALLS} concurrent calls with churn for ${MINUTES} min on ${engine}${(globalThis as { gc?: unknown }).gc ? '' : ' (run with node --expose-gc for steadier memory figures)'}`);
const timer = setInterval(() => void sample(), SAMPLE_MS);
await Promise.all(Array.from({ length: CALLS }, (_, i) => caller(i)));
clearInterval(timer);
await sample();

/** Growth over the second half of the run against the first sample of it, per series. */
function verdict(name: string, series: number[], bound?: number): string {
  const half = series.slice(Math.floor(series.length / 2));
  const first = half[0] ?? 0;
  const last = half.at(-1) ?? 0;
  const max = Math.max(...series);
  const grew = last - first;
  const state = bound !== undefined ? (max <= bound ? `bounded (max ${max} ≤ ${bound})` : `OVER BOUND (max ${max} > ${bound})`) : `second half ${first.toFixed(1)} → ${last.toFixed(1)} (${grew >= 0 ? '+' : ''}${grew.toFixed(1)})`;
  return `  ${name.padEnd(24)} ${state}`;
}
console.log(`\nsoak result: ${placed} calls placed, ${failed} failed, ${MINUTES} min, ${CALLS} concurrent, engine ${engine}`);
console.log(verdict('rss MB', samples.map((s) => s.rssMb)));
console.log(verdict('heap MB', samples.map((s) => s.heapMb)));
console.log(verdict('event-loop p99 ms', samples.map((s) => s.loopP99Ms)));
console.log(verdict('open handles', samples.map((s) => s.handles)));
console.log(verdict('media sessions', samples.map((s) => s.sessions), CALLS + 2));
for (const k of Object.keys(samples[0]!.maps)) {
  const perCall = ['inbound', 'outbound', 'outboundByWaId', 'traces.live', 'traces.aliases'].includes(k);
  console.log(verdict(`map ${k}`, samples.map((s) => s.maps[k] ?? 0), perCall ? CALLS + 2 : k === 'traces.recent' ? 500 : undefined));
}
await b.stop();
sipp.stop();
await rtpengine?.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
