/**
 * Load: call set-ups at a set rate through the real stack on loopback, signalling and media
 * control only (no WebRTC peer per call). Inbound: signed connect webhooks from a driver process
 * (bench/load-driver.ts, which also serves the Graph API) → bridge → rtpengine → SIPp (the PBX,
 * answering at once, holding each call --hold-sec, then BYE). Outbound: SIPp (the agents)
 * INVITEs the bridge → Graph connect → the driver answers with a connect webhook → 200 OK.
 *
 * Reports per run: achieved CPS, failures by cause, set-up latency p50/p90/p99 with the bridge's
 * own share separated from rtpengine's ng round trips, peak concurrent calls, RSS per 1,000
 * calls, event-loop delay, ng requests per call, and what was still up 10 s after the last
 * webhook; against baselines measured in the same run (SIPp → SIPp directly, rtpengine's own
 * ng offer/answer rate).
 *
 *   npx tsx bench/load.ts [--cps 100] [--calls 1000] [--hold-sec 2] [--direction inbound|outbound|both]
 *                         [--engine rtpengine|embedded|both]   (embedded: a smaller run, ≤10/s, ≤60 calls)
 *                         [--guard N]   keep calls.maxSetupsPerSec at N (overload: --cps 2N --guard N)
 *                         [--baseline-only]   the baselines alone (rtpengine holding sessions included)
 *                         [--rtpengine-args "--num-threads=4 ..."]   extra rtpengine daemon options
 *
 * Baselines: rtpengine alone holding sessions (`rtpengineHolding`: the bridge's offer/answer
 * flags and SDPs, the same rate and hold, the watchdog's queries, no bridge code) is the one
 * the bridge run's ng offer times compare with. CPU: the bridge process's own (process.cpuUsage,
 * the bench's bookkeeping included) and rtpengine's (/proc/<pid>/stat) over each run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { busyPercent, clockTicks, machineTicks, processCpuSec } from './load-cpu.js';
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
import type { EndedCallRecord } from '../src/bridge/bridge.js';
import type { NgClient } from '../src/media/rtpengine/ng-client.js';
import { startRtpengine, type RtpengineDaemon } from '../test/harness/rtpengine.js';
import { stopAllSipp } from '../test/harness/sipp.js';
import { quantile, startBridgeOnly, type EngineName } from './harness.js';
import { rtpengineHolding, rtpengineRate, sippCaller, sippPbx, sippToSipp } from './load-baseline.js';

const { values: a } = parseArgs({
  options: {
    cps: { type: 'string', default: '100' },
    calls: { type: 'string', default: '1000' },
    'hold-sec': { type: 'string', default: '2' },
    direction: { type: 'string', default: 'both' },
    engine: { type: 'string', default: 'both' },
    /** calls.maxSetupsPerSec as in production (the overload check), instead of lifting it. */
    guard: { type: 'string' },
    'baseline-only': { type: 'boolean', default: false },
    /** No baselines (a CPU profile of the bridge run alone); figures without them are not to be quoted. */
    'skip-baselines': { type: 'boolean', default: false },
    'rtpengine-args': { type: 'string', default: '' },
    /** media.whatsappMediaTimeoutSec (default 20; the watchdog queries each session every quarter of it, at most every 10 s; 0: off). */
    'wa-media-timeout': { type: 'string' },
  },
});
const CPS = Number(a.cps);
const CALLS = Number(a.calls);
const HOLD = Number(a['hold-sec']);
if (HOLD >= 20) throw new Error('--hold-sec must be under 20 (the WhatsApp media timeout ends calls with no media)');
const directions = a.direction === 'both' ? (['inbound', 'outbound'] as const) : [a.direction as 'inbound' | 'outbound'];
const engines: EngineName[] = a.engine === 'both' ? ['rtpengine', 'embedded'] : [a.engine as EngineName];

interface Driver {
  child: ChildProcess;
  graphUrl: string;
  request<T>(msg: Record<string, unknown>, reply: string): Promise<T>;
}

async function startDriver(): Promise<Driver> {
  const child = fork(new URL('./load-driver.ts', import.meta.url).pathname, [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  const next = (type: string) =>
    new Promise<any>((resolve) => {
      const on = (m: { type: string }) => m.type === type && (child.off('message', on), resolve(m));
      child.on('message', on);
    });
  const ready = await next('ready');
  return {
    child,
    graphUrl: ready.graphUrl,
    request: (msg, reply) => {
      const p = next(reply);
      child.send(msg);
      return p;
    },
  };
}

const fmt = (xs: number[]): string =>
  xs.length ? `p50 ${quantile(xs, 0.5).toFixed(2)} / p90 ${quantile(xs, 0.9).toFixed(2)} / p99 ${quantile(xs, 0.99).toFixed(2)} ms` : 'n/a';

async function run(engine: EngineName, direction: 'inbound' | 'outbound', cps: number, calls: number, rtpengine: RtpengineDaemon): Promise<void> {
  const label = `load ${engine} ${direction} ${cps}/s x ${calls}, hold ${HOLD}s`;
  const driver = await startDriver();
  const pbx = direction === 'inbound' ? await sippPbx(calls, HOLD) : undefined;
  // The capacity guard and the SIP front door, lifted as far as the bench needs (2x its rate and
  // its concurrency), so that what limits the run is the bridge's own capacity.
  const guard = { maxSetupsPerSec: a.guard ? Number(a.guard) : cps * 2, maxConcurrent: Math.max(1000, Math.ceil(cps * (HOLD + 2) * 2)) };
  const sipLimits = { ratePerSec: Math.max(200, cps * 10), rateBurst: Math.max(400, cps * 20) };
  const b = await startBridgeOnly({
    label,
    engine,
    graphUrl: driver.graphUrl,
    rtpengine,
    // The default WhatsApp media timeout (20 s) stays on, as in production: no media flows here
    // (ICE never completes), so --hold-sec must stay under it.
    sip: { limits: sipLimits },
    ...(a['wa-media-timeout'] !== undefined ? { media: { whatsappMediaTimeoutSec: Number(a['wa-media-timeout']) } } : {}),
    config: {
      // Stopping the bench ends what is left at once (the default drain waits up to 300 s).
      shutdown: { drainSec: 0 },
      calls: guard,
      ...(pbx ? { routing: { default: `sip:pbx@127.0.0.3:${pbx.port}` } } : {}),
      outbound: { enabled: true, allowFrom: ['127.0.0.3/32'], dialPrefix: '9', phoneNumberId: '1', permissionCacheSec: 3600 },
    },
  });
  console.log(`[${label}] capacity guard ${a.guard ? 'set' : 'lifted'}: calls.maxSetupsPerSec=${guard.maxSetupsPerSec}, calls.maxConcurrent=${guard.maxConcurrent}; sip.limits.ratePerSec=${sipLimits.ratePerSec}, rateBurst=${sipLimits.rateBurst}`);
  const app = b.app;
  const webhookUrl = `${app.url}/webhook`;
  driver.child.send({ type: 'outbound', url: webhookUrl });

  // rtpengine's share: every ng round trip, and each call's offer time (bridge call-id → ms).
  const ng = (app.media as unknown as { ng?: NgClient }).ng;
  const ngCount = new Map<string, number>();
  const offerMs = new Map<string, number>();
  if (ng) {
    ng.observer = (cmd, id, ms) => {
      ngCount.set(cmd, (ngCount.get(cmd) ?? 0) + 1);
      if (cmd === 'offer' && id) offerMs.set(id, ms);
    };
  }
  // Where an offer's time goes inside this process: its datagram's send (libuv done) and the
  // reply's arrival on the ng socket ('message', first listener), per ng cookie.
  const wire: number[] = [];
  const sock = (ng as unknown as { client?: { socket?: import('node:dgram').Socket } } | undefined)?.client?.socket;
  if (sock) {
    const sentAt = new Map<string, number>();
    const send = sock.send.bind(sock) as (...args: unknown[]) => void;
    (sock as unknown as { send: (...args: unknown[]) => void }).send = (msg: unknown, ...rest: unknown[]) => {
      const b = msg as Buffer;
      if (Buffer.isBuffer(b) && b.includes('5:offer')) sentAt.set(b.subarray(0, 36).toString(), performance.now());
      send(msg, ...rest);
    };
    sock.prependListener('message', (m: Buffer) => {
      const k = m.subarray(0, 36).toString();
      const t = sentAt.get(k);
      if (t !== undefined) {
        wire.push(performance.now() - t);
        sentAt.delete(k);
      }
    });
  }
  const ended: EndedCallRecord[] = [];
  app.bridge.onCallEnded((r) => ended.push(r));

  global.gc?.();
  const rssBase = process.memoryUsage().rss;
  let peak = 0;
  const heapBase = process.memoryUsage().heapUsed;
  let rssPeak = rssBase;
  let heapAtPeak = heapBase;
  let snapped = false;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    if (app.bridge.activeCalls > peak) heapAtPeak = m.heapUsed;
    // BENCH_HEAPSNAP=<calls>: one heap snapshot when that many calls are up (finding per-call memory).
    if (process.env.BENCH_HEAPSNAP && !snapped && app.bridge.activeCalls >= Number(process.env.BENCH_HEAPSNAP)) {
      snapped = true;
      console.log(`  heap snapshot at ${app.bridge.activeCalls} calls: ${writeHeapSnapshot()}`);
    }
    peak = Math.max(peak, app.bridge.activeCalls);
    rssPeak = Math.max(rssPeak, m.rss);
  }, 50);
  // The ng probe (bench/load-probe.ts): rtpengine's offer time seen from another process, 10/s.
  const probe = engine === 'rtpengine' ? fork(new URL('./load-probe.ts', import.meta.url).pathname, [rtpengine.ng.host, String(rtpengine.ng.port)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' }) : undefined;
  if (probe) await new Promise((r) => probe.once('message', r));
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const rtpCpu0 = processCpuSec(rtpengine.pid);
  const box0 = machineTicks();
  const sippCpu0 = pbx?.pid ? processCpuSec(pbx.pid) : NaN;
  const driverCpu0 = (await driver.request<{ cpuSec: number }>({ type: 'stats' }, 'stats')).cpuSec;

  let sentSec: number;
  let sippResult: { ok: number; failed: number } | undefined;
  const t0 = performance.now();
  if (direction === 'inbound') {
    const done = await driver.request<{ sendSec: number }>({ type: 'inbound', url: webhookUrl, cps, calls }, 'inbound-done');
    sentSec = done.sendSec;
  } else {
    const uac = await sippCaller({ remote: `127.0.0.1:${b.sipPort}`, cps, calls, holdSec: HOLD, prefix: '9' });
    const r = await uac.exited;
    sippResult = r;
    sentSec = r.sec - HOLD;
  }
  const lastWebhook = performance.now();
  // Overload must end calls cleanly: nothing may be left up 10 s after the last set-up and its hold.
  const settle = lastWebhook + (HOLD + 10) * 1000;
  while (app.bridge.activeCalls > 0 && performance.now() < settle) await new Promise((r) => setTimeout(r, 100));
  loop.disable();
  clearInterval(sampler);
  const probed = probe
    ? await new Promise<{ n: number; failed: number; p50: number; p90: number; p99: number }>((r) => {
        probe.once('message', r);
        probe.send({ type: 'stop' });
      })
    : undefined;
  const cpu = process.cpuUsage(cpu0);
  const rtpCpu = processCpuSec(rtpengine.pid) - rtpCpu0;
  const boxBusy = busyPercent(box0);
  const sippCpu = pbx?.pid ? processCpuSec(pbx.pid) - sippCpu0 : NaN;
  const leftUp = app.bridge.activeCalls;
  const leftOnRtpengine = engine === 'rtpengine' ? (await app.media.listSessions()).length : 0;
  const status = app.bridge.status();
  const stats = await driver.request<{ statuses: Record<string, number>; actions: Record<string, number>; cpuSec: number }>({ type: 'stats' }, 'stats');
  const driverCpu = stats.cpuSec - driverCpu0;

  // Set-up figures, per call.
  const answered = ended.filter((r) => r.times?.answeredAt !== undefined);
  const toInvite: number[] = [];
  const bridgeShare: number[] = [];
  const ngShare: number[] = [];
  const toAnswer: number[] = [];
  for (const r of answered) {
    const s = r.times!.setupMs as Record<string, number | undefined>;
    const setup = direction === 'inbound' ? s['webhookToInvite'] : s['pbxInviteToConnect'];
    const id = direction === 'inbound' ? r.waCallId! : `out-${r.sipCallId}`;
    if (setup !== undefined) {
      toInvite.push(setup);
      const o = offerMs.get(id) ?? 0;
      ngShare.push(o);
      bridgeShare.push(Math.max(0, setup - o));
    }
    toAnswer.push(r.times!.answeredAt! - r.times!.receivedAt);
  }
  const causes = new Map<string, number>();
  for (const r of ended) if (r.times?.answeredAt === undefined) causes.set(r.label, (causes.get(r.label) ?? 0) + 1);
  for (const [k, v] of Object.entries(stats.statuses)) if (!/ 200$/.test(k)) causes.set(k, v);
  const missing = calls - ended.length - leftUp;
  if (missing > 0) causes.set('never reached the bridge (no call record)', missing);
  const failed = calls - answered.length;
  const ngTotal = [...ngCount.entries()].filter(([c]) => c !== 'ping' && c !== 'list').reduce((n, [, v]) => n + v, 0);
  const wall = (performance.now() - t0) / 1000;

  console.log(`  set up: ${answered.length}/${calls} answered, failed ${failed} (${((100 * failed) / calls).toFixed(2)} %), achieved ${(answered.length / Math.max(sentSec, 0.001)).toFixed(1)} set-ups/s over ${sentSec.toFixed(1)} s (offered ${cps}/s)`);
  console.log(`  failures by cause: ${causes.size ? [...causes].map(([k, v]) => `${k}: ${v}`).join(', ') : 'none'}`);
  console.log(`  ${direction === 'inbound' ? 'webhook -> INVITE' : 'PBX INVITE -> Graph connect'}: ${fmt(toInvite)}`);
  if (ng) console.log(`    bridge's own share: ${fmt(bridgeShare)}; rtpengine ng offer: ${fmt(ngShare)}`);
  if (wire.length) console.log(`    of which ng offer send -> its reply read off the bridge's ng socket: ${fmt(wire)}`);
  if (probed) console.log(`    the same rtpengine's offer seen meanwhile from another process (10/s, bench/load-probe.ts): p50 ${probed.p50.toFixed(2)} / p90 ${probed.p90.toFixed(2)} / p99 ${probed.p99.toFixed(2)} ms, ${probed.n} offers, ${probed.failed} failed`);
  console.log(`  ${direction === 'inbound' ? 'webhook -> accept sent' : 'PBX INVITE -> 200 OK'}: ${fmt(toAnswer)}`);
  console.log(`  peak concurrent calls ${peak}; RSS ${(rssBase / 2 ** 20).toFixed(0)} -> ${(rssPeak / 2 ** 20).toFixed(0)} MB, ${peak ? (((rssPeak - rssBase) / 2 ** 20 / peak) * 1000).toFixed(0) : 'n/a'} MB per 1,000 calls; JS heap ${(heapBase / 2 ** 20).toFixed(0)} -> ${(heapAtPeak / 2 ** 20).toFixed(0)} MB at the peak`);
  // The histogram holds whole timer periods (10 ms resolution): the delay is what exceeds it.
  const lag = (ns: number): string => Math.max(0, ns / 1e6 - 10).toFixed(1);
  console.log(`  event-loop delay (beyond the 10 ms timer): p50 ${lag(loop.percentile(50))} / p99 ${lag(loop.percentile(99))} / max ${lag(loop.max)} ms`);
  console.log(`  CPU over the run (${wall.toFixed(1)} s): bridge process ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s (user ${(cpu.user / 1e6).toFixed(1)}, system ${(cpu.system / 1e6).toFixed(1)}; ${((cpu.user + cpu.system) / 1e3 / Math.max(1, answered.length)).toFixed(2)} ms per answered call), rtpengine ${rtpCpu.toFixed(1)} s, the bench's WhatsApp (driver process) ${driverCpu.toFixed(1)} s, SIPp ${Number.isNaN(sippCpu) ? 'n/a' : `${sippCpu.toFixed(1)} s`}; the machine (2 cores, every tenant) ${boxBusy.toFixed(0)} % busy`);
  console.log(`  ng requests per call: ${(ngTotal / calls).toFixed(2)} (${[...ngCount].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'})`);
  console.log(`  left up ${HOLD + 10} s after the last ${direction === 'inbound' ? 'webhook' : 'INVITE'}: bridge ${leftUp} calls (maps ${JSON.stringify(status.maps)}), rtpengine ${leftOnRtpengine} sessions`);
  if (sippResult) console.log(`  SIPp agents: ${sippResult.ok} calls ok, ${sippResult.failed} failed`);
  console.log(`  Graph actions: ${JSON.stringify(stats.actions)}; run took ${wall.toFixed(1)} s`);

  await b.stop();
  pbx?.stop();
  stopAllSipp();
  driver.child.send({ type: 'exit' });
}

// A wide media range of its own (each call takes 3-4 ports: 2,000 calls need ~8,000), above
// the 1,000-port slices the tests take in 20000-39999; log level 4 (warnings): rtpengine's
// per-call notices would cost it CPU the bench measures.
const extraArgs = a['rtpengine-args'].split(/\s+/).filter(Boolean);
const rtpengine = await startRtpengine({ portMin: 42000, portMax: 59999, logLevel: 4, args: ['--max-sessions=-1', ...extraArgs] });
console.log(`[rtpengine] ${extraArgs.length ? extraArgs.join(' ') : 'default options'} (log level 4, userspace forwarding; clock ${clockTicks()} ticks/s)`);
try {
  const offer = readFileSync(new URL('../test/fixtures/whatsapp/offer-user-initiated.sdp', import.meta.url), 'utf8');
  if (!a['skip-baselines']) await baselines(offer);
  for (const engine of a['baseline-only'] ? [] : engines) {
    for (const direction of directions) {
      // The embedded engine runs every call's DTLS/ICE in this process: a smaller run.
      const [cps, calls] = engine === 'embedded' ? [Math.min(CPS, 10), Math.min(CALLS, 60)] : [CPS, CALLS];
      await run(engine, direction, cps, calls, rtpengine);
      await new Promise((r) => setTimeout(r, 2000)); // let the machine settle between runs
    }
  }
} finally {
  stopAllSipp();
  await rtpengine.stop();
}
process.exit(0);

async function baselines(offer: string): Promise<void> {
  const ngBase = await rtpengineRate(rtpengine, offer);
  console.log(`[baseline] rtpengine alone (ng offer+answer+delete, 16 in flight): ${ngBase.perSec.toFixed(0)} calls/s; ng round trip p50 ${ngBase.rttP50.toFixed(2)} ms, p99 ${ngBase.rttP99.toFixed(2)} ms`);
  const sipBase = await sippToSipp(CPS, Math.min(CALLS, CPS * 5), HOLD);
  console.log(`[baseline] SIPp -> SIPp directly at ${CPS}/s: ${sipBase.cps.toFixed(1)} set-ups/s, ${sipBase.ok} ok, ${sipBase.failed} failed`);
  if (engines.includes('rtpengine')) {
    const c0 = processCpuSec(rtpengine.pid);
    const box0 = machineTicks();
    const h = await rtpengineHolding(rtpengine, { cps: CPS, calls: CALLS, holdSec: HOLD });
    console.log(
      `[baseline] rtpengine alone holding sessions (${CPS}/s x ${CALLS}, hold ${HOLD}s, the bridge's flags and SDPs, a query per session every 5 s, no bridge code): ` +
        `${h.ok} ok, ${h.failed} failed (${((100 * h.failed) / CALLS).toFixed(2)} %), peak ${h.peakHeld} sessions held; ng offer p50 ${h.offer.p50.toFixed(2)} / p90 ${h.offer.p90.toFixed(2)} / p99 ${h.offer.p99.toFixed(2)} ms, ` +
        `near the peak p50 ${h.offerAtPeak.p50.toFixed(2)} / p99 ${h.offerAtPeak.p99.toFixed(2)} ms; rtpengine CPU ${(processCpuSec(rtpengine.pid) - c0).toFixed(1)} s; machine ${busyPercent(box0).toFixed(0)} % busy`,
    );
    await new Promise((r) => setTimeout(r, 2000));
  }
}
