/**
 * The load bench's baselines, measured in the same run as the bridge: SIPp calling SIPp
 * directly (the same scenarios, rate and hold, no bridge between), and rtpengine's own ng
 * offer/answer/delete rate with the bridge's flags (no bridge code in the loop).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NgClient } from '../src/media/rtpengine/ng-client.js';
import { DELETE_NOW, PBX_ANSWER_TO_WHATSAPP, WHATSAPP_OFFER_TO_PBX } from '../src/media/rtpengine/flags.js';
import { iceLiteIntoMedia } from '../src/media/rtpengine/sdp-post.js';
import { silentLogger } from '../src/util/log.js';
import type { RtpengineDaemon } from '../test/harness/rtpengine.js';
import { startSipp, type SippResult } from '../test/harness/sipp.js';
import { freeDualPort } from '../test/harness/ports.js';
import { quantile } from './harness.js';

export const SCENARIO_DIR = new URL('./scenarios/', import.meta.url).pathname;

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
export async function sippPbx(calls: number, holdSec: number, waitBye = false): Promise<{ port: number; stop(): void; exited: Promise<SippResult> }> {
  const port = await freeDualPort('127.0.0.3');
  const p = startSipp({
    scenario: waitBye ? 'sip-uas-answer-wait-bye.xml' : join(SCENARIO_DIR, 'load-uas-hold.xml'),
    ip: '127.0.0.3',
    port,
    timeoutSec: 600,
    args: ['-m', String(calls), '-d', String(holdSec * 1000), '-max_socket', '5000'],
  });
  return { port, stop: () => p.stop(), exited: p.exited };
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
