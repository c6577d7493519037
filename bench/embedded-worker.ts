/**
 * The embedded engine in a child process, driven over IPC by bench/media-load.ts (media-cpu,
 * media-capacity), so its CPU can be measured apart from the load generator (process.cpuUsage()
 * here: every thread of the process). BENCH_WORKERS=n runs it on n worker threads (0: in-process).
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createEmbeddedEngine } from '../src/media/embedded/index.js';
import type { MediaSession } from '../src/media/types.js';
import { silentLogger } from '../src/util/log.js';

interface Req {
  id: number;
  op: 'offer' | 'answer' | 'close' | 'cpu' | 'list' | 'quit';
  callId?: string;
  sdp?: string;
}

const portMin = Number(process.env.BENCH_PORT_MIN ?? 42000);
const workers = Number(process.env.BENCH_WORKERS ?? 0);
const engine = await createEmbeddedEngine({
  rtpHost: '127.0.0.1',
  rtpAdvertiseHost: '127.0.0.1',
  iceAddresses: ['127.0.0.1'],
  // As the app splits its range: plain RTP in the lower half, ICE in the upper (sliced per worker).
  portMin,
  portMax: portMin + 999,
  icePortRange: [portMin + 1000, portMin + 1999],
  workers,
  logger: silentLogger(),
  pbxCodecs: ['G722', 'PCMU', 'PCMA'], // the bench measures transcoding, not passthrough
  // BENCH_OPUS_COMPLEXITY=n: try another encoder complexity (the engine's default is 5).
  ...(process.env.BENCH_OPUS_COMPLEXITY ? { opusComplexity: Number(process.env.BENCH_OPUS_COMPLEXITY) } : {}),
});
const sessions = new Map<string, MediaSession>();
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

// BENCH_PROF=<dir>: profile the measured window (between the bench's two 'cpu' requests).
const profDir = process.env.BENCH_PROF;
let profiler: Session | undefined;
let cpuCalls = 0;
async function profileWindow(): Promise<void> {
  if (!profDir) return;
  cpuCalls++;
  if (cpuCalls === 1) {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 500 });
    await profiler.post('Profiler.start');
  } else if (cpuCalls === 2 && profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(join(profDir, `embedded-${process.pid}.cpuprofile`), JSON.stringify(profile));
    profiler.disconnect();
  }
}

process.on('message', (m: Req) => {
  void (async () => {
    try {
      let result: unknown;
      switch (m.op) {
        case 'offer': {
          const s = engine.createSession(m.callId!);
          sessions.set(m.callId!, s);
          result = await s.offerFromWhatsApp(m.sdp!);
          break;
        }
        case 'answer':
          result = await sessions.get(m.callId!)!.answerFromPbx(m.sdp!);
          break;
        case 'close':
          await sessions.get(m.callId!)?.close();
          sessions.delete(m.callId!);
          break;
        case 'cpu': {
          const u = process.cpuUsage();
          // This process's main-thread event-loop delay since the last 'cpu' (the thread the
          // bridge's signalling shares with the media when there are no workers).
          result = { user: u.user, system: u.system, rss: process.memoryUsage().rss, loopP99Ms: loop.percentile(99) / 1e6 };
          loop.reset();
          await profileWindow();
          break;
        }
        case 'list':
          result = await engine.listSessions();
          break;
        case 'quit':
          await engine.close();
          process.send!({ id: m.id, result: null });
          process.exit(0);
      }
      process.send!({ id: m.id, result });
    } catch (err) {
      process.send!({ id: m.id, error: (err as Error).message });
    }
  })();
});
// Ready, and which engine runs (the bench checks it): `embedded` in-process, `embedded/<n> workers` on threads.
process.send!({ id: 0, result: workers > 0 ? `${engine.name}/${workers} workers` : engine.name });
