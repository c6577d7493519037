/**
 * The media benches' load generator (bench/media-cpu.ts, bench/media-capacity.ts): WhatsApp-like
 * werift peers and plain RTP endpoints sending a 1 s cycle of 500 ms loud + 500 ms quiet tone in
 * pre-encoded 20 ms frames both ways; the engines under test (the embedded engine in a child
 * process, bench/embedded-worker.ts, in-process or on worker threads; rtpengine in userspace);
 * and one measured run: CPU, loss per direction, added latency on probe calls.
 *
 * Loss = 1 - received/sent per direction over the window. Latency = onset of each loud burst at
 * the receiver minus its send time (the median per probe call; the worst probe is reported).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { RtpHeader } from 'werift';
import { ToneSource, rms } from '../src/media/audio/tone.js';
import { G722Encoder } from '../src/media/codecs/g722.js';
import { encodePcmu } from '../src/media/codecs/g711.js';
import { OpusCodec } from '../src/media/codecs/opus.js';
import { createRtpengineEngine } from '../src/media/rtpengine/index.js';
import type { MediaEngine } from '../src/media/types.js';
import { WhatsAppMediaPeer } from '../src/simulator/webrtc-peer.js';
import { silentLogger } from '../src/util/log.js';
import { RtpEndpoint } from '../test/harness/rtp-endpoint.js';
import { startRtpengine } from '../test/harness/rtpengine.js';
import { sleep } from '../test/support/wait.js';
import { median } from './harness.js';

export type Codec = 'PCMU' | 'G722';
const CLK_TCK = 100;

// ------------------------------------------------------------------ load generator

export const CYCLE = 50; // frames per 1 s cycle; frames 0..24 loud, 25..49 quiet
const loud = (k: number): boolean => k % CYCLE < 25;

function cyclePcm(rate: number, toneHz: number): Int16Array[] {
  const a = new ToneSource(toneHz, rate, 0.3);
  const b = new ToneSource(toneHz, rate, 0.003);
  return Array.from({ length: CYCLE }, (_, k) => (loud(k) ? a.next(20) : b.next(20)));
}

export function opusCycle(): Buffer[] {
  const enc = new OpusCodec(48000, 1);
  enc.setBitrate(20000);
  const out = cyclePcm(48000, 1000).map((p) => enc.encode(p, 960));
  enc.delete();
  return out;
}

export function plainCycle(codec: Codec): Buffer[] {
  if (codec === 'PCMU') return cyclePcm(8000, 440).map((p) => Buffer.from(encodePcmu(p)));
  const enc = new G722Encoder();
  return cyclePcm(16000, 440).map((p) => Buffer.from(enc.encode(p)));
}

/** Loud-burst onsets in a decoded stream (latency probe): the times a frame turned loud. */
export class Onsets {
  readonly at: number[] = [];
  private wasLoud = false;
  frame(pcm: Int16Array, at: number): void {
    const isLoud = rms(pcm) > 0.05;
    if (isLoud && !this.wasLoud) this.at.push(at);
    this.wasLoud = isLoud;
  }
}

/** The PBX side of one call: the shared endpoint, sending pre-encoded frames, not recording. */
const benchPbx = (codec: Codec): Promise<RtpEndpoint> => RtpEndpoint.create({ codec, record: false });

/** Probe a PBX endpoint's received audio for onsets. */
function probePbx(pbx: RtpEndpoint): Onsets {
  const o = new Onsets();
  pbx.onAudio = (pcm, at) => o.frame(pcm, at);
  return o;
}

/** The WhatsApp side of one call: the simulator's peer for signalling, our own sender/counter. */
class BenchWa {
  readonly peer = new WhatsAppMediaPeer({ toneHz: 1000 });
  constructor() {
    // The simulator peer decodes everything it receives with opusscript's own wrapper, which
    // corrupts its WebAssembly heap with dozens of instances (see src/media/codecs/opus.ts) and
    // would load the generator: counting and probing happen here instead.
    (this.peer as unknown as { onRtp: (rtp: unknown) => void }).onRtp = () => undefined;
  }
  seq = randomInt(0, 0xffff);
  ts = randomInt(0, 0xffffffff);
  received = 0;
  probe = false;
  readonly onsets = new Onsets();
  private dec: OpusCodec | undefined;
  private closed = false;
  private unsub: (() => void) | undefined;

  hook(): void {
    const dtls = this.peer.pc.dtlsTransports[0]!;
    this.unsub = dtls.onRtp.subscribe((rtp) => {
      if (this.closed || rtp.header.payloadType !== 111) return;
      this.received++;
      if (!this.probe) return;
      this.dec ??= new OpusCodec(16000, 1);
      this.onsets.frame(this.dec.decode(rtp.payload), performance.now());
    }).unSubscribe;
  }

  send(payload: Buffer): void {
    const dtls = this.peer.pc.dtlsTransports[0];
    if (!dtls || dtls.state !== 'connected') return;
    const ssrc = this.peer.pc.getTransceivers()[0]!.sender.ssrc;
    const h = new RtpHeader({ payloadType: 111, sequenceNumber: this.seq, timestamp: this.ts >>> 0, ssrc });
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + 960) >>> 0;
    dtls.sendRtp(payload, h).catch(() => undefined);
  }

  async close(): Promise<void> {
    // Unsubscribe before freeing the decoder: a decode on a deleted opusscript instance
    // corrupts the shared WebAssembly heap (libopus assertions, then every instance aborts).
    this.closed = true;
    this.unsub?.();
    await this.peer.close();
    this.dec?.delete();
    this.dec = undefined;
  }
}

// ------------------------------------------------------------------ engines under test

export interface EngineUnderTest {
  name: string;
  /** The name the engine itself reports (checked against `name`). */
  engineName: string;
  offer(callId: string, sdp: string): Promise<string>;
  answer(callId: string, sdp: string): Promise<string>;
  close(callId: string): Promise<void>;
  /** CPU seconds used so far by the engine's process; the embedded engine's process also tells its main-thread event-loop delay p99 since the last call. */
  cpu(): Promise<{ seconds: number; loopP99Ms?: number }>;
  stop(): Promise<void>;
}

export async function embeddedUnderTest(workers = 0): Promise<EngineUnderTest> {
  const worker = fileURLToPath(new URL('./embedded-worker.ts', import.meta.url));
  const child: ChildProcess = fork(worker, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, BENCH_PORT_MIN: String(44000 + randomInt(0, 10) * 2000), BENCH_WORKERS: String(workers) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let next = 1;
  const pending = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();
  const ready = new Promise<string>((res) => {
    child.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      if (m.id === 0) return res(String(m.result));
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (!p) return;
      if (m.error) p.rej(new Error(m.error));
      else p.res(m.result);
    });
  });
  // `embedded` in-process, `embedded/<n> workers` on threads: the count must be the one asked for.
  const reported = await ready;
  const [engineName = '', threads] = reported.split('/');
  if ((threads ?? '') !== (workers > 0 ? `${workers} workers` : '')) throw new Error(`asked for the embedded engine on ${workers} worker threads, got ${reported}`);
  const call = <T>(op: string, callId?: string, sdp?: string): Promise<T> =>
    new Promise<T>((res, rej) => {
      const id = next++;
      pending.set(id, { res: res as (v: unknown) => void, rej });
      child.send({ id, op, callId, sdp });
    });
  return {
    name: 'embedded',
    engineName,
    offer: (c, s) => call<string>('offer', c, s),
    answer: (c, s) => call<string>('answer', c, s),
    close: (c) => call<void>('close', c),
    cpu: async () => {
      const u = await call<{ user: number; system: number; loopP99Ms: number }>('cpu');
      return { seconds: (u.user + u.system) / 1e6, loopP99Ms: u.loopP99Ms };
    },
    stop: async () => {
      await call('quit').catch(() => undefined);
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    },
  };
}

function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
}

export async function rtpengineUnderTest(): Promise<EngineUnderTest> {
  const portMin = 30000 + randomInt(0, 5) * 2000;
  const daemon = await startRtpengine({ portMin, portMax: portMin + 1999, logLevel: 3 });
  const engine: MediaEngine = await createRtpengineEngine({ ng: [daemon.ng], logger: silentLogger() });
  const sessions = new Map<string, ReturnType<MediaEngine['createSession']>>();
  return {
    name: 'rtpengine',
    engineName: engine.name,
    offer: async (c, s) => {
      const sess = engine.createSession(c);
      sessions.set(c, sess);
      return sess.offerFromWhatsApp(s);
    },
    answer: (c, s) => sessions.get(c)!.answerFromPbx(s),
    close: async (c) => {
      await sessions.get(c)?.close();
      sessions.delete(c);
    },
    cpu: async () => ({ seconds: procCpuSeconds(daemon.pid) }),
    stop: async () => {
      await engine.close();
      await daemon.stop();
    },
  };
}

// ------------------------------------------------------------------ one run

/** Added latency past which a run counts as saturated (rtpengine adds ~30 ms when idle). */
export const SATURATED_MS = 60;

export interface RunResult {
  engine: string;
  calls: number;
  codec: Codec;
  cpuPerCallPct: number;
  /** The engine process's CPU over the window, in % of one core (200 = both cores of this machine). */
  engineCpuPct: number;
  /** The load generator's own CPU (this process), in % of one core: it shares the machine. */
  generatorCpuPct: number;
  /** The load generator's event-loop delay p99 over the window (ms): high means the generator itself lags. */
  generatorLagP99Ms: number;
  /** The engine process's main-thread event-loop delay p99 over the window (ms; embedded only). */
  engineLoopP99Ms: number | undefined;
  lossToPbx: number;
  lossToWa: number;
  latToPbxMs: number;
  latToWaMs: number;
  /** Each probe call's medians, WA->PBX/PBX->WA in ms. */
  probeLatencies: string;
  setupFailed: number;
}


/** Median of (first onset at the receiver after each loud send) - (that send). */
function latencies(sendTimes: number[], onsets: number[]): number {
  const lat: number[] = [];
  for (const t of sendTimes) {
    const o = onsets.find((x) => x >= t);
    if (o !== undefined && o - t < 500) lat.push(o - t);
  }
  return median(lat);
}

export async function run(eut: EngineUnderTest, calls: number, codec: Codec, waFrames: Buffer[], pbxFrames: Buffer[], windowS: number, probes = 1): Promise<RunResult> {
  const legs: Array<{ id: string; wa: BenchWa; pbx: RtpEndpoint }> = [];
  let setupFailed = 0;
  // Set up in batches of 10 (each needs ICE + DTLS).
  for (let b = 0; b < calls; b += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, calls - b) }, async (_, i) => {
        const id = `bench-${eut.name}-${codec}-${calls}-${b + i}-${Date.now()}`;
        const wa = new BenchWa();
        const pbx = await benchPbx(codec);
        try {
          const plain = await eut.offer(id, await wa.peer.createOffer());
          const answer = await eut.answer(id, pbx.answer(plain));
          await wa.peer.applyAnswer(answer);
          await wa.peer.waitConnected(15_000);
          wa.hook();
          return { id, wa, pbx };
        } catch (err) {
          setupFailed++;
          console.error(`  setup of ${id} failed: ${(err as Error).message}`);
          await wa.close();
          await pbx.close();
          await eut.close(id).catch(() => undefined);
          return undefined;
        }
      }),
    );
    for (const l of batch) if (l) legs.push(l);
  }
  // Latency probes: the first `probes` calls (with workers, the first calls land on different workers).
  const probed = legs.slice(0, probes).map((l) => ((l.wa.probe = true), { wa: l.wa, pbxOnsets: probePbx(l.pbx) }));

  // Media: one clock for every call, 20 ms frames, drift-corrected.
  let k = 0;
  let counting = false;
  let sentToPbx = 0;
  let sentToWa = 0;
  const loudSentToPbx: number[] = []; // WA -> engine -> PBX
  const loudSentToWa: number[] = [];
  const t0 = performance.now();
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - t0) / 20) + 1;
    for (let n = 0; k < due && n < 5; n++, k++) {
      const f = k % CYCLE;
      const now = performance.now();
      if (f === 0 && counting) {
        loudSentToPbx.push(now);
        loudSentToWa.push(now);
      }
      for (const l of legs) {
        l.wa.send(waFrames[f]!);
        l.pbx.sendPayload(pbxFrames[f]!);
      }
      if (counting) {
        sentToPbx += legs.length;
        sentToWa += legs.length;
      }
    }
    if (k < due) k = due;
  }, 10);

  await sleep(1500); // settle: every call's codecs and jitter past their start before counting
  for (const l of legs) {
    l.wa.received = 0;
    l.pbx.audioIn = 0;
  }
  counting = true;
  const cpu0 = (await eut.cpu()).seconds;
  const gen0 = process.cpuUsage();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const w0 = performance.now();
  await sleep(windowS * 1000); // the measurement window (CPU and loss over it, against the clock)
  const { seconds: cpu1, loopP99Ms: engineLoopP99Ms } = await eut.cpu();
  const gen1 = process.cpuUsage(gen0);
  lag.disable();
  const w1 = performance.now();
  counting = false;
  await sleep(300); // in-flight packets
  clearInterval(timer);

  const recvPbx = legs.reduce((n, l) => n + l.pbx.audioIn, 0);
  const recvWa = legs.reduce((n, l) => n + l.wa.received, 0);
  const result: RunResult = {
    engine: eut.name,
    calls: legs.length,
    codec,
    cpuPerCallPct: legs.length ? (((cpu1 - cpu0) / ((w1 - w0) / 1000)) * 100) / legs.length : NaN,
    engineCpuPct: ((cpu1 - cpu0) / ((w1 - w0) / 1000)) * 100,
    generatorCpuPct: ((gen1.user + gen1.system) / 1e6 / ((w1 - w0) / 1000)) * 100,
    generatorLagP99Ms: lag.percentile(99) / 1e6,
    engineLoopP99Ms,
    lossToPbx: sentToPbx ? Math.max(0, 1 - recvPbx / sentToPbx) : NaN,
    lossToWa: sentToWa ? Math.max(0, 1 - recvWa / sentToWa) : NaN,
    // The worst probe's median.
    latToPbxMs: probed.length ? Math.max(...probed.map((p) => latencies(loudSentToPbx, p.pbxOnsets.at))) : NaN,
    latToWaMs: probed.length ? Math.max(...probed.map((p) => latencies(loudSentToWa, p.wa.onsets.at))) : NaN,
    probeLatencies: probed.map((p) => `${latencies(loudSentToPbx, p.pbxOnsets.at).toFixed(0)}/${latencies(loudSentToWa, p.wa.onsets.at).toFixed(0)}`).join(' '),
    setupFailed,
  };
  for (const l of legs) {
    await eut.close(l.id);
    await l.wa.close();
    await l.pbx.close();
  }
  return result;
}

