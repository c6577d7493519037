/**
 * Calls per process for the embedded engine on this machine, before (in-process: workers 0) and
 * after (worker threads: `auto`, one per core), measured in the same run with the same limits:
 *
 *   - packet loss < 1 % in each direction over the window;
 *   - added latency < 60 ms in each direction (the median per probe call, the worse of 2 probe
 *     calls; the idle embedded engine adds well under 20 ms here: codec look-ahead, filters);
 *   - every call set up (ICE + DTLS within 15 s).
 *
 * The search steps the call count up by BENCH_STEP from BENCH_START until a limit breaks, the
 * modes back to back at each count (the same load from the machine's other tenants); a failure
 * is confirmed by a second run at the same count, then the count halfway back to the last pass
 * is tried. The capacity is the highest count that passed.
 * Each step gets a fresh engine process (bench/embedded-worker.ts) and the same load generator
 * (bench/media-load.ts, this process; its own CPU is printed: it shares the 2 cores).
 *
 * Run: npx tsx bench/media-capacity.ts (heavy: several minutes with both cores busy; run nothing else beside it)
 * Options: BENCH_MODES=0,auto  BENCH_CODEC=PCMU|G722  BENCH_WINDOW_S=6  BENCH_START=10
 *          BENCH_STEP=10  BENCH_MAX=200
 */
import { availableParallelism } from 'node:os';
import { embeddedWorkerCount } from '../src/media/embedded/index.js';
import { checkEngine } from './harness.js';
import { SATURATED_MS, embeddedUnderTest, opusCycle, plainCycle, run, type Codec, type RunResult } from './media-load.js';

const MODES = (process.env.BENCH_MODES ?? '0,auto').split(',').map((m) => (m === 'auto' ? 'auto' : Number(m)));
const CODEC = (process.env.BENCH_CODEC ?? 'PCMU') as Codec;
const WINDOW_S = Number(process.env.BENCH_WINDOW_S ?? 6);
const START = Number(process.env.BENCH_START ?? 10);
const STEP = Number(process.env.BENCH_STEP ?? 10);
const MAX = Number(process.env.BENCH_MAX ?? 200);
const MAX_LOSS = 0.01;
const PROBES = 2;

/** Why a run breaks the limits, or undefined if it passes. */
function broken(r: RunResult, asked: number): string | undefined {
  const why: string[] = [];
  if (r.setupFailed > 0 || r.calls < asked) why.push(`${r.setupFailed} set-ups failed`);
  if (!(r.lossToPbx < MAX_LOSS)) why.push(`loss to PBX ${(r.lossToPbx * 100).toFixed(2)} %`);
  if (!(r.lossToWa < MAX_LOSS)) why.push(`loss to WA ${(r.lossToWa * 100).toFixed(2)} %`);
  if (!(r.latToPbxMs < SATURATED_MS)) why.push(`latency WA->PBX ${r.latToPbxMs.toFixed(0)} ms`);
  if (!(r.latToWaMs < SATURATED_MS)) why.push(`latency PBX->WA ${r.latToWaMs.toFixed(0)} ms`);
  return why.length ? why.join(', ') : undefined;
}

interface Step {
  calls: number;
  result: RunResult;
  failure: string | undefined;
}

async function step(workers: number, calls: number, wa: Buffer[], pbx: Buffer[]): Promise<Step> {
  const eut = await embeddedUnderTest(workers);
  try {
    checkEngine(`media-capacity ${calls} calls, ${workers} workers`, 'embedded', eut.engineName);
    const result = await run(eut, calls, CODEC, wa, pbx, WINDOW_S, PROBES);
    const failure = broken(result, calls);
    console.log(
      `  ${String(calls).padStart(3)} calls: engine CPU ${result.engineCpuPct.toFixed(0).padStart(3)} % of a core (main-thread loop p99 ${result.engineLoopP99Ms?.toFixed(0) ?? '?'} ms), generator ${result.generatorCpuPct.toFixed(0).padStart(3)} % (loop p99 ${result.generatorLagP99Ms.toFixed(0)} ms); ` +
        `loss to PBX ${(result.lossToPbx * 100).toFixed(2)} %, to WA ${(result.lossToWa * 100).toFixed(2)} %; ` +
        `latency WA->PBX ${result.latToPbxMs.toFixed(1)} ms, PBX->WA ${result.latToWaMs.toFixed(1)} ms (probes ${result.probeLatencies})  ${failure ? `FAIL (${failure})` : 'pass'}`,
    );
    return { calls, result, failure };
  } finally {
    await eut.stop();
  }
}

/** A failing count is run twice: a one-off stall of the shared machine is not the engine's limit. */
async function confirmedStep(workers: number, calls: number, wa: Buffer[], pbx: Buffer[]): Promise<Step> {
  const first = await step(workers, calls, wa, pbx);
  if (!first.failure) return first;
  console.log('    (failed: run again to confirm)');
  return step(workers, calls, wa, pbx);
}

interface Search {
  mode: 'auto' | number;
  workers: number;
  pass: number;
  fail: number | undefined;
}

/**
 * Step the count up for every mode together: at each count the modes run back to back, so they
 * see the same load from the machine's other tenants. A mode drops out at its first confirmed
 * failure; then each gets one refinement halfway back to its last pass.
 */
async function search(modes: Search[], wa: Buffer[], pbx: Buffer[]): Promise<void> {
  for (let n = START; n <= MAX && modes.some((m) => m.fail === undefined); n += STEP) {
    for (const m of modes.filter((x) => x.fail === undefined)) {
      console.log(`${label(m)}:`);
      const s = await confirmedStep(m.workers, n, wa, pbx);
      if (s.failure) m.fail = n;
      else m.pass = n;
    }
  }
  for (const m of modes) {
    if (m.fail === undefined || m.fail - m.pass <= 2) continue;
    const mid = m.pass + Math.round((m.fail - m.pass) / 2);
    console.log(`${label(m)}, refining:`);
    if (!(await confirmedStep(m.workers, mid, wa, pbx)).failure) m.pass = mid;
  }
}

const label = (m: Search): string => (m.workers === 0 ? 'in-process (workers 0)' : `${m.workers} worker threads (workers ${m.mode})`);

async function main(): Promise<void> {
  const started = performance.now();
  const cores = availableParallelism();
  console.log(`embedded engine capacity, Opus<->${CODEC}, ${cores} cores; limits: loss < ${MAX_LOSS * 100} % each way, added latency < ${SATURATED_MS} ms each way (worse of ${PROBES} probe calls), every set-up; window ${WINDOW_S} s`);
  const wa = opusCycle();
  const pbx = plainCycle(CODEC);
  const modes: Search[] = MODES.map((mode) => ({ mode, workers: embeddedWorkerCount(mode, cores), pass: 0, fail: undefined }));
  await search(modes, wa, pbx);
  console.log('\ncalls per process at the limits:');
  for (const m of modes) console.log(`  ${label(m)}: ${m.pass}${m.fail === undefined ? ` (no failure up to ${MAX})` : ''}`);
  const before = modes.find((m) => m.workers === 0);
  for (const m of modes.filter((x) => x.workers > 0)) {
    if (before && before.pass > 0) console.log(`  ${label(m)} / in-process: ${(m.pass / before.pass).toFixed(2)}x`);
  }
  console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  process.exit(0);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
