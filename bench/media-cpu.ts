/**
 * Media CPU per call, packet loss and added latency: the embedded engine vs rtpengine, in one
 * run, for 10 and 50 concurrent calls, Opus<->PCMU and Opus<->G.722 (both directions carry audio).
 * Not a timed test. Run: `npx tsx bench/media-cpu.ts` (about 2 minutes on 2 cores).
 * Calls per process before/after the worker threads: bench/media-capacity.ts.
 *
 * - The embedded engine runs in a child process (bench/embedded-worker.ts, process.cpuUsage());
 *   rtpengine runs in userspace (test/harness/rtpengine.ts, CPU from /proc/<pid>/stat). The load
 *   generator (bench/media-load.ts: WhatsApp-like werift peers and plain RTP endpoints) is this
 *   process, not counted.
 * - Each direction sends a 1 s cycle of 500 ms loud tone + 500 ms quiet tone in 20 ms frames,
 *   pre-encoded (Opus 20 kbit/s; PCMU/G.722 with our codecs). Loss = 1 - received/sent per
 *   direction over the window. Latency = onset of each loud burst at the receiver minus its send
 *   time, on one call per run (includes codec look-ahead and filter delays: that is what an
 *   engine adds to the path).
 * Options: BENCH_CALLS=10,50  BENCH_CODECS=PCMU,G722  BENCH_WINDOW_S=8  BENCH_ENGINES=embedded,rtpengine
 *          BENCH_WORKERS=<n> (the embedded engine on n worker threads; default 0, in-process)
 *          BENCH_PROF=<dir> (V8 CPU profile of the embedded worker over the measured window,
 *          one .cpuprofile per run; see bench/embedded-worker.ts)
 *          BENCH_NO_OPUS_COST=1 (skip the opusscript micro-benchmark)
 *          BENCH_OPUS_COMPLEXITY=<0..10> (the embedded engine's Opus encoder complexity; default 5)
 */
import { ToneSource } from '../src/media/audio/tone.js';
import { OpusCodec } from '../src/media/codecs/opus.js';
import { rtpengineSkipReason } from '../test/harness/rtpengine.js';
import { checkEngine, enginesToMeasure } from './harness.js';
import { SATURATED_MS, embeddedUnderTest, opusCycle, plainCycle, rtpengineUnderTest, run, type Codec, type RunResult } from './media-load.js';

const CALLS = (process.env.BENCH_CALLS ?? '10,50').split(',').map(Number);
const CODECS = (process.env.BENCH_CODECS ?? 'PCMU,G722').split(',') as Codec[];
const ENGINES = enginesToMeasure(['embedded', 'rtpengine']);
const WINDOW_S = Number(process.env.BENCH_WINDOW_S ?? 8);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 0);

// ------------------------------------------------------------------ opusscript cost

function opusCost(): string {
  const lines: string[] = [];
  for (const [rate, ch] of [
    [16000, 1],
    [48000, 1],
    [48000, 2],
  ] as const) {
    const enc = new OpusCodec(rate, ch);
    enc.setBitrate(20000);
    const dec = new OpusCodec(rate, ch);
    const tone = new ToneSource(1000, rate, 0.3);
    const frame = rate / 50;
    const frames: Buffer[] = [];
    const N = 1000;
    const pcms = Array.from({ length: 50 }, () => {
      const mono = tone.next(20);
      if (ch === 1) return mono;
      const st = new Int16Array(mono.length * 2);
      for (let i = 0; i < mono.length; i++) st[2 * i] = st[2 * i + 1] = mono[i]!;
      return st;
    });
    let t0 = performance.now();
    for (let i = 0; i < N; i++) frames.push(enc.encode(pcms[i % 50]!, frame));
    const encUs = ((performance.now() - t0) * 1000) / N;
    t0 = performance.now();
    for (let i = 0; i < N; i++) dec.decode(frames[i]!);
    const decUs = ((performance.now() - t0) * 1000) / N;
    enc.delete();
    dec.delete();
    lines.push(
      `  ${rate / 1000} kHz ${ch === 1 ? 'mono' : 'stereo'}: encode ${encUs.toFixed(0)} µs, decode ${decUs.toFixed(0)} µs per 20 ms frame ` +
        `= ${(((encUs + decUs) * 50) / 1e4).toFixed(2)} % of a core per call (both directions)`,
    );
  }
  return lines.join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const started = performance.now();
  if (!process.env.BENCH_NO_OPUS_COST) {
    console.log("Opus cost (libopus from opusscript's WebAssembly build, our wrapper), this machine:");
    console.log(opusCost());
  }
  const waFrames = opusCycle();
  const pbxFrames: Record<Codec, Buffer[]> = { PCMU: plainCycle('PCMU'), G722: plainCycle('G722') };
  const results: RunResult[] = [];
  const rtpSkip = rtpengineSkipReason();
  for (const name of ENGINES) {
    if (name === 'rtpengine' && rtpSkip) {
      console.log(`rtpengine skipped: ${rtpSkip}`);
      continue;
    }
    for (const codec of CODECS) {
      for (const calls of CALLS) {
        // A fresh engine per run, so one run's leftovers cannot load the next.
        const eut = name === 'embedded' ? await embeddedUnderTest(WORKERS) : await rtpengineUnderTest();
        try {
          checkEngine(`media-cpu ${codec} ${calls} calls`, name, eut.engineName);
          const r = await run(eut, calls, codec, waFrames, pbxFrames[codec], WINDOW_S);
          results.push(r);
          console.log(
            `${r.engine.padEnd(9)} ${String(r.calls).padStart(3)} calls Opus<->${codec.padEnd(4)}: CPU ${r.cpuPerCallPct.toFixed(2)} % of a core per call; ` +
              `loss to PBX ${(r.lossToPbx * 100).toFixed(2)} %, to WA ${(r.lossToWa * 100).toFixed(2)} %; ` +
              `latency WA->PBX ${r.latToPbxMs.toFixed(1)} ms, PBX->WA ${r.latToWaMs.toFixed(1)} ms` +
              (r.setupFailed ? `; ${r.setupFailed} setups failed` : ''),
          );
        } finally {
          await eut.stop();
        }
      }
    }
  }
  console.log('\nembedded / rtpengine CPU per call (target <= 1.5):');
  for (const codec of CODECS) {
    for (const calls of CALLS) {
      const e = results.find((r) => r.engine === 'embedded' && r.codec === codec && r.calls === calls);
      const r = results.find((x) => x.engine === 'rtpengine' && x.codec === codec && x.calls === calls);
      if (!e || !r) continue;
      // A saturated engine (CPU-bound: audio late or lost) shows a low CPU per call because it
      // cannot do more; its ratio says nothing about efficiency.
      const sat = [e, r].filter((x) => x.lossToPbx > 0.01 || x.lossToWa > 0.01 || x.latToPbxMs > SATURATED_MS || x.latToWaMs > SATURATED_MS);
      const note = sat.length ? ` (not comparable: ${sat.map((x) => x.engine).join(' and ')} saturated, audio late or lost)` : '';
      console.log(`  ${calls} calls Opus<->${codec}: ${(e.cpuPerCallPct / r.cpuPerCallPct).toFixed(2)}x${note}`);
    }
  }
  console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  process.exit(0);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
