/**
 * The load bench's baselines, measured in the same run as the bridge: SIPp calling SIPp
 * directly (the same scenarios, rate and hold, no bridge between), rtpengine's own ng
 * offer/answer/delete rate with the bridge's flags (no bridge code in the loop), and rtpengine
 * alone holding sessions the way the bridge run does (`rtpengineHolding`).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parse, write } from 'sdp-transform';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NgClient } from '../src/media/rtpengine/ng-client.js';
import { DELETE_NOW, PBX_ANSWER_TO_WHATSAPP, WHATSAPP_OFFER_TO_PBX } from '../src/media/rtpengine/flags.js';
import { iceLiteIntoMedia } from '../src/media/rtpengine/sdp-post.js';
import { silentLogger } from '../src/util/log.js';
import type { NgMessage } from 'rtpengine-client';
import type { RtpengineDaemon } from '../test/harness/rtpengine.js';
import { startSipp, type SippResult } from '../test/harness/sipp.js';
import { freeDualPort } from '../test/harness/ports.js';
import { quantile } from './harness.js';

export const SCENARIO_DIR = new URL('./scenarios/', import.meta.url).pathname;

const FIXTURE = new URL('../test/fixtures/whatsapp/offer-user-initiated.sdp', import.meta.url);

/**
 * The inbound offer the bench's WhatsApp sends: the fixture's offer on loopback, without ICE
 * candidates (BENCH_ICE=1: one host candidate on the discard port). With a candidate that never
 * answers, rtpengine keeps sending connectivity checks for every call (a real WhatsApp peer
 * completes ICE in well under a second): at 1,000 such calls its ng replies slowed to over a
 * second.
 */
export function loopbackOffer(): string {
  const s = parse(readFileSync(FIXTURE, 'utf8'));
  const m = s.media[0]!;
  m.port = 9;
  m.connection = { version: 4, ip: '127.0.0.1' };
  m.candidates = process.env.BENCH_ICE === '1' ? [{ foundation: '1', component: 1, transport: 'udp', priority: 2122260223, ip: '127.0.0.1', port: 9, type: 'host' }] : [];
  return write(s);
}

/** The answer the bench's PBX (bench/scenarios/load-uas-hold.xml) gives. */
export const SIPP_PBX_ANSWER = 'v=0\r\no=sipp 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

/** A SIPp -inf file: one distinct WhatsApp user (the dialled number) per call. */
export function usersFile(dir: string, calls: number, prefix = ''): string {
  const f = join(dir, 'users.csv');
  writeFileSync(f, ['SEQUENTIAL', ...Array.from({ length: calls }, (_, i) => `${prefix}55${100_000_000 + i};`)].join('\n') + '\n');
  return f;
}

/** Successful and failed calls from SIPp's exit: its statistics file's last line. */
export function sippCounts(statFile: string): { ok: number; failed: number } {
  const lines = readFileSync(statFile, 'utf8').trim().split('\n');
  const head = lines[0]!.split(';');
  const last = lines.at(-1)!.split(';');
  const col = (name: string): number => Number(last[head.indexOf(name)] ?? NaN);
  return { ok: col('SuccessfulCall(C)'), failed: col('FailedCall(C)') };
}

/** A SIPp UAC placing `calls` at `cps`, each held `holdSec`; resolves when it is done. */
export async function sippCaller(opts: { remote: string; cps: number; calls: number; holdSec: number; prefix?: string }): Promise<{
  exited: Promise<SippResult & { ok: number; failed: number; sec: number }>;
  stop(): void;
}> {
  const port = await freeDualPort('127.0.0.3');
  const dir = mkdtempSync(join(tmpdir(), 'load-uac-'));
  const stat = join(dir, 'stat.csv');
  const started = performance.now();
  const p = startSipp({
    scenario: join(SCENARIO_DIR, 'load-uac-hold-bye.xml'),
    ip: '127.0.0.3',
    port,
    remote: opts.remote,
    timeoutSec: Math.ceil(opts.calls / opts.cps + opts.holdSec + 60),
    args: ['-r', String(opts.cps), '-m', String(opts.calls), '-l', String(opts.calls), '-d', String(opts.holdSec * 1000),
      '-inf', usersFile(dir, opts.calls, opts.prefix), '-trace_stat', '-stf', stat, '-fd', '1', '-max_socket', '5000'],
  });
  return {
    exited: p.exited.then((r) => {
      const sec = (performance.now() - started) / 1000;
      let counts = { ok: NaN, failed: NaN };
      try {
        counts = sippCounts(stat);
      } catch {
        /* no stat file: SIPp failed to start (its stderr is in r) */
      }
      rmSync(dir, { recursive: true, force: true });
      return { ...r, ...counts, sec };
    }),
    stop: () => p.stop(),
  };
}

/**
 * A SIPp UAS on 127.0.0.3 answering at once and holding each call `holdSec` (then BYE), or with
 * `waitBye`, answering and waiting for the caller's BYE.
 */
export async function sippPbx(calls: number, holdSec: number, waitBye = false): Promise<{ port: number; pid: number | undefined; stop(): void; exited: Promise<SippResult> }> {
  const port = await freeDualPort('127.0.0.3');
  const p = startSipp({
    scenario: waitBye ? 'sip-uas-answer-wait-bye.xml' : join(SCENARIO_DIR, 'load-uas-hold.xml'),
    ip: '127.0.0.3',
    port,
    timeoutSec: 600,
    args: ['-m', String(calls), '-d', String(holdSec * 1000), '-max_socket', '5000'],
  });
  return { port, pid: p.pid, stop: () => p.stop(), exited: p.exited };
}

/** SIPp → SIPp directly at the bench's rate: what the PBX side costs without the bridge. */
export async function sippToSipp(cps: number, calls: number, holdSec: number): Promise<{ cps: number; ok: number; failed: number }> {
  const pbx = await sippPbx(calls, holdSec, true);
  const uac = await sippCaller({ remote: `127.0.0.3:${pbx.port}`, cps, calls, holdSec });
  const r = await uac.exited;
  pbx.stop();
  return { cps: r.ok / Math.max(0.001, r.sec - holdSec), ok: r.ok, failed: r.failed };
}

/**
 * rtpengine's own rate: offer (WhatsApp's SDP, the bridge's flags) + answer (a plain PBX SDP)
 * + delete, `concurrency` at a time for `sec` seconds, straight over ng.
 */
export async function rtpengineRate(daemon: RtpengineDaemon, whatsappOffer: string, sec = 3, concurrency = 16): Promise<{ perSec: number; rttP50: number; rttP99: number }> {
  const ng = new NgClient(2000, silentLogger());
  const rtts: number[] = [];
  ng.observer = (cmd, _id, ms) => cmd !== 'delete' && rtts.push(ms);
  const pbxAnswer = 'v=0\r\no=pbx 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
  const offer = iceLiteIntoMedia(whatsappOffer);
  let done = 0;
  let n = 0;
  const end = performance.now() + sec * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const id = `ngbase-${n++}`;
        await ng.request(daemon.ng, 'offer', { ...WHATSAPP_OFFER_TO_PBX, 'call-id': id, 'from-tag': 'a', sdp: offer });
        await ng.request(daemon.ng, 'answer', { ...PBX_ANSWER_TO_WHATSAPP, 'call-id': id, 'from-tag': 'a', 'to-tag': 'b', sdp: pbxAnswer });
        await ng.request(daemon.ng, 'delete', { 'call-id': id, 'from-tag': 'a', ...DELETE_NOW });
        done++;
      }
    }),
  );
  ng.close();
  return { perSec: done / ((performance.now() - started) / 1000), rttP50: quantile(rtts, 0.5), rttP99: quantile(rtts, 0.99) };
}

export interface HoldingResult {
  /** Calls whose offer and answer both succeeded. */
  ok: number;
  failed: number;
  /** Offers started per second over the sending time. */
  perSec: number;
  offer: { p50: number; p90: number; p99: number };
  /** Offer round trips of the calls started while at least 80 % of the peak was held. */
  offerAtPeak: { p50: number; p99: number };
  peakHeld: number;
  queries: number;
}

/**
 * rtpengine alone, holding sessions as the bridge run does, with no bridge code: at `cps` for
 * `calls` calls, each an ng offer (the bench's WhatsApp offer, the bridge's flags and its
 * ICE-lite rewrite), an answer (the bench PBX's SDP, the bridge's flags), a `query` every
 * `queryEveryMs` while held (the bridge's watchdog does one per session every 5 s by default;
 * 0: none), and a delete after `holdSec`. What rtpengine costs at this rate with this many
 * sessions up: the bridge run's ng offer times are to be read against this.
 * `offerFlags` / `answerFlags` override the bridge's (for trying rtpengine options).
 */
export async function rtpengineHolding(
  daemon: RtpengineDaemon,
  opts: { cps: number; calls: number; holdSec: number; queryEveryMs?: number; offerFlags?: NgMessage; answerFlags?: NgMessage; timeoutMs?: number },
): Promise<HoldingResult> {
  const ng = new NgClient(opts.timeoutMs ?? 2000, silentLogger());
  const offer = iceLiteIntoMedia(loopbackOffer());
  const offerFlags = opts.offerFlags ?? WHATSAPP_OFFER_TO_PBX;
  const answerFlags = opts.answerFlags ?? PBX_ANSWER_TO_WHATSAPP;
  const queryEvery = opts.queryEveryMs ?? 5000;
  const offers: Array<{ ms: number; held: number }> = [];
  let held = 0;
  let peakHeld = 0;
  let ok = 0;
  let queries = 0;
  const runId = Math.random().toString(36).slice(2, 8);
  const one = async (i: number): Promise<void> => {
    const id = `hold-${runId}-${i}`;
    const ids = { 'call-id': id, 'from-tag': 'wa' };
    const heldAtStart = held;
    const t0 = performance.now();
    let holding = false;
    try {
      await ng.request(daemon.ng, 'offer', { ...offerFlags, ...ids, sdp: offer });
      offers.push({ ms: performance.now() - t0, held: heldAtStart });
      held++;
      holding = true;
      peakHeld = Math.max(peakHeld, held);
      await ng.request(daemon.ng, 'answer', { ...answerFlags, ...ids, 'to-tag': 'pbx', sdp: SIPP_PBX_ANSWER });
      ok++;
      const until = performance.now() + opts.holdSec * 1000;
      while (queryEvery > 0 && performance.now() + queryEvery < until) {
        await new Promise((r) => setTimeout(r, queryEvery));
        await ng.request(daemon.ng, 'query', { 'call-id': id }).catch(() => undefined);
        queries++;
      }
      const left = until - performance.now();
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    } catch {
      /* counted as failed below; the delete still goes */
    }
    if (holding) held--;
    await ng.request(daemon.ng, 'delete', { ...ids, ...DELETE_NOW }).catch(() => undefined);
  };
  const started = performance.now();
  const all: Promise<void>[] = [];
  for (let i = 0; i < opts.calls; i++) {
    const wait = started + (i * 1000) / opts.cps - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    all.push(one(i));
  }
  const sendSec = (performance.now() - started) / 1000;
  await Promise.all(all);
  ng.close();
  const ms = offers.map((o) => o.ms);
  const atPeak = offers.filter((o) => o.held >= 0.8 * peakHeld).map((o) => o.ms);
  return {
    ok,
    failed: opts.calls - ok,
    perSec: opts.calls / Math.max(sendSec, 0.001),
    offer: { p50: quantile(ms, 0.5), p90: quantile(ms, 0.9), p99: quantile(ms, 0.99) },
    offerAtPeak: { p50: quantile(atPeak, 0.5), p99: quantile(atPeak, 0.99) },
    peakHeld,
    queries,
  };
}
