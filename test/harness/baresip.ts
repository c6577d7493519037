/**
 * (Over 400 lines on purpose: the one desk-phone harness: config, process, recording and
 *  control of a real baresip.)
 * Test harness: a real SIP desk phone (baresip 1.0.0) run headless, e.g. as the agent's phone
 * behind a PBX in end-to-end tests.
 *
 * Each instance gets a fresh config folder (`baresip -f DIR`) holding:
 * - `config`: `sip_listen ADDR:PORT`, `net_interface ADDR` (an IP literal: makes the SDP `c=`
 *   line carry ADDR instead of the host's default interface), `rtp_ports`, modules g711 (+ other
 *   codec modules on request), aufile (audio source), sndfile (records both directions as WAV
 *   into DIR), menu (provides the dial/accept/hangup commands) and ctrl_tcp (driven here over a
 *   loopback TCP port with netstring-framed JSON).
 * - `accounts`: one line `<sip:USER@ADDR:PORT;transport=udp>;regint=0;answermode=...;audio_codecs=...`.
 * - `source.wav`: the harness-generated sine played as microphone. aufile in 1.0.0 does not
 *   loop: at the end of the file baresip closes the call ("end of file"), so the file is long
 *   (`sourceDurationSec`, default 300 s).
 *
 * sndfile names its files `dump-YYYY-MM-DD-hh-mm-ss-dec.wav` (received/decoded audio) and
 * `...-enc.wav` (sent audio); the file opens at the first frame (for `dec`: the first RTP
 * packet received), so it starts around CALL_ESTABLISHED and holds only what was received.
 *
 * Ports are picked free at start (bind port 0, release); a start that loses a port race is
 * retried. `stop()` kills by PID (SIGTERM, then SIGKILL) and removes the folder; processes
 * still alive when the test process exits are SIGKILLed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sine } from '../../src/media/audio/tone.js';
import { Ctrl, createEventLog, type BaresipCommandResult, type BaresipEvents } from './baresip-ctrl.js';
import { freeDualPort, freePort, portFree } from './ports.js';
import { encodeWav, readWavFile } from './wav.js';

export type { BaresipCommandResult, BaresipEvent, BaresipEventType, BaresipEvents } from './baresip-ctrl.js';

export interface StartBaresipOptions {
  /** Loopback address to listen on, e.g. 127.0.0.2 (also used for media / SDP). */
  sipAddress: string;
  /** Default: a free port. */
  sipPort?: number;
  /** RTP/RTCP ports. Default: a free 40-port range in 40000-59999. */
  rtpPortRange?: [number, number];
  /** Default '1001'. */
  user?: string;
  answerMode: 'auto' | 'manual';
  /** Default ['PCMU']. Known: PCMU, PCMA, G722, opus, GSM, L16, G726-*, AMR, codec2. */
  codecs?: string[];
  /** Tone of the generated source WAV (rate of the first codec). Default: silence. */
  toneHz?: number;
  /** Peak amplitude of the tone, 0..1 (default 0.3). */
  toneAmplitude?: number;
  /** Length of the source WAV; the call ends when it runs out. Default 300 s. */
  sourceDurationSec?: number;
  /** With answerMode 'auto': answer after this delay (the harness accepts on CALL_INCOMING). */
  answerDelayMs?: number;
  /**
   * Echo: send back what it receives (an echo extension), via the aubridge module (player and
   * source of one virtual device); the tone options are then unused.
   */
  echo?: boolean;
  /** Startup timeout (default 15 s). */
  startTimeoutMs?: number;
}

export interface BaresipHandle {
  readonly pid: number;
  /** e.g. `sip:1001@127.0.0.2:40123` */
  readonly sipUri: string;
  readonly sipAddress: string;
  readonly sipPort: number;
  readonly user: string;
  readonly ctrlPort: number;
  readonly rtpPortRange: [number, number];
  /** The temp config folder (also holds the source WAV and the recordings). */
  readonly dir: string;
  /** Sample rate of the generated source WAV. */
  readonly sourceSampleRate: number;
  readonly events: BaresipEvents;
  /** Any ctrl_tcp command line (`command` + optional `params`); resolves with its response. */
  command(command: string, params?: string, timeoutMs?: number): Promise<BaresipCommandResult>;
  /** Start an outgoing call; throws if baresip refuses the command. */
  dial(uri: string): Promise<void>;
  /** Answer the ringing incoming call. */
  accept(): Promise<void>;
  /** Hang up the current call. */
  hangup(): Promise<void>;
  /** Received (decoded) audio of the latest call, mono, as recorded so far. */
  recordedPcm(): Promise<{ samples: Int16Array; sampleRate: number }>;
  /** Sent (encoded) audio of the latest call, mono, as recorded so far. */
  sentPcm(): Promise<{ samples: Int16Array; sampleRate: number }>;
  /** Paths of the sndfile recordings so far, oldest first. */
  recordings(): Promise<{ received: string[]; sent: string[] }>;
  /** stdout + stderr of baresip so far. */
  log(): string;
  /** Kill (SIGTERM, then SIGKILL after 3 s) and remove the temp folder. Idempotent. */
  stop(): Promise<void>;
}

const MODULE_PATH = '/usr/lib/baresip/modules';

/** Why baresip tests cannot run here, or undefined when they can. */
export function baresipSkipReason(): string | undefined {
  const r = spawnSync('baresip', ['-h'], { encoding: 'utf8', timeout: 5000 });
  if (r.error) return `baresip binary not available (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
  if (!/baresip/i.test(`${r.stdout}${r.stderr}`)) return 'baresip -h did not identify as baresip';
  const mods = MODULE_PATH;
  const missing = ['ctrl_tcp.so', 'sndfile.so', 'aufile.so', 'g711.so', 'menu.so'].filter((m) => !existsSync(join(mods, m)));
  if (missing.length) return `baresip modules missing in ${mods}: ${missing.join(', ')}`;
  return undefined;
}

const CODEC_MODULE: Record<string, string> = {
  pcmu: 'g711.so',
  pcma: 'g711.so',
  g722: 'g722.so',
  opus: 'opus.so',
  gsm: 'gsm.so',
  l16: 'l16.so',
  amr: 'amr.so',
  codec2: 'codec2.so',
};

function codecModule(codec: string): string | undefined {
  const c = codec.toLowerCase();
  if (c.startsWith('g726')) return 'g726.so';
  return CODEC_MODULE[c];
}

function codecRate(codec: string): number {
  const c = codec.toLowerCase();
  if (c === 'opus') return 48000;
  if (c === 'g722') return 16000;
  return 8000;
}

// ---- free ports -----------------------------------------------------------------------------

/** A port free for SIP on `host`: UDP and TCP on p, TCP on p+1 (baresip's TLS listener). */
async function freeSipPort(host: string): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freeDualPort(host);
    if (p <= 65000 && (await portFree(host, p + 1, 'tcp'))) return p;
  }
  throw new Error(`no free SIP port on ${host}`);
}

/** A range of 40 UDP ports in 40000-59999 that are all free on 0.0.0.0 right now. */
async function freeRtpRange(): Promise<[number, number]> {
  for (let i = 0; i < 30; i++) {
    const min = 40000 + 2 * Math.floor(Math.random() * 9980);
    const max = min + 39;
    if (max > 59999) continue;
    let ok = true;
    for (let p = min; p <= max && ok; p++) ok = await portFree('0.0.0.0', p, 'udp');
    if (ok) return [min, max];
  }
  throw new Error('no free RTP port range');
}

// ---- process bookkeeping --------------------------------------------------------------------

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const p of live) {
      try {
        if (p.pid) process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

function waitExit(p: ChildProcess, ms: number): Promise<boolean> {
  if (exited(p)) return Promise.resolve(true);
  return new Promise((res) => {
    const t = setTimeout(() => {
      p.off('exit', onExit);
      res(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(t);
      res(true);
    };
    p.once('exit', onExit);
  });
}

// ---- ctrl_tcp (netstring JSON) --------------------------------------------------------------

// ---- start ----------------------------------------------------------------------------------

const MAX_LOG = 1_000_000;
// menu prints a call status line several times a second; keep it out of the log.
const STATUS_RE = /\[\d+:\d\d:\d\d\] audio=\S+ \(bit\/s\)\s*/g;

export async function startBaresip(opts: StartBaresipOptions): Promise<BaresipHandle> {
  let lastErr: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      lastErr = e as Error;
      // Only port races are worth retrying; a fixed port cannot change.
      if (opts.sipPort && opts.rtpPortRange) break;
    }
  }
  throw lastErr ?? new Error('baresip did not start');
}

async function startOnce(opts: StartBaresipOptions): Promise<BaresipHandle> {
  installExitHook();
  const user = opts.user ?? '1001';
  const codecs = opts.codecs?.length ? opts.codecs : ['PCMU'];
  const addr = opts.sipAddress;
  const sipPort = opts.sipPort ?? (await freeSipPort(addr));
  const ctrlPort = await freePort('127.0.0.1', 'tcp');
  const rtpPortRange = opts.rtpPortRange ?? (await freeRtpRange());
  const delayedAnswer = opts.answerMode === 'auto' && (opts.answerDelayMs ?? 0) > 0;
  const answermode = opts.answerMode === 'manual' || delayedAnswer ? 'manual' : 'auto';

  const dir = mkdtempSync(join(tmpdir(), 'baresip-'));
  const sourceSampleRate = codecRate(codecs[0]!);
  const sourcePath = join(dir, 'source.wav');
  const durMs = (opts.sourceDurationSec ?? 300) * 1000;
  const pcm =
    opts.toneHz && opts.toneHz > 0
      ? sine(opts.toneHz, sourceSampleRate, durMs, opts.toneAmplitude ?? 0.3)
      : new Int16Array(Math.round((sourceSampleRate * durMs) / 1000));
  writeFileSync(sourcePath, encodeWav(pcm, sourceSampleRate));

  const codecMods = [...new Set(['g711.so', ...codecs.map(codecModule).filter((m): m is string => !!m)])];
  const config = [
    'poll_method\t\tepoll',
    `sip_listen\t\t${addr}:${sipPort}`,
    // An IP literal (not an interface name: `lo` fails) makes SDP carry this address.
    `net_interface\t\t${addr}`,
    'call_local_timeout\t120',
    'call_max_calls\t\t4',
    ...(opts.echo ? ['audio_source\t\taubridge,echo', 'audio_player\t\taubridge,echo'] : [`audio_source\t\taufile,${sourcePath}`]),
    'ausrc_format\t\ts16',
    'auplay_format\t\ts16',
    'auenc_format\t\ts16',
    'audec_format\t\ts16',
    'audio_buffer\t\t20-160',
    `rtp_ports\t\t${rtpPortRange[0]}-${rtpPortRange[1]}`,
    'rtcp_mux\t\tno',
    'jitter_buffer_delay\t5-10',
    'rtp_stats\t\tno',
    `module_path\t\t${MODULE_PATH}`,
    ...codecMods.map((m) => `module\t\t\t${m}`),
    'module\t\t\taufile.so',
    ...(opts.echo ? ['module\t\t\taubridge.so'] : []),
    'module\t\t\tsndfile.so',
    'module_tmp\t\taccount.so',
    'module_app\t\tmenu.so',
    'module_app\t\tctrl_tcp.so',
    `snd_path\t\t${dir}`,
    `ctrl_tcp_listen\t\t127.0.0.1:${ctrlPort}`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'config'), config);
  writeFileSync(
    join(dir, 'accounts'),
    `<sip:${user}@${addr}:${sipPort};transport=udp>;regint=0;answermode=${answermode};audio_codecs=${codecs.join(',')}\n`,
  );
  writeFileSync(join(dir, 'contacts'), '');

  const logChunks: string[] = [];
  let logLen = 0;
  const appendLog = (s: string): void => {
    const clean = s.replace(STATUS_RE, '');
    if (!clean || logLen > MAX_LOG) return;
    logChunks.push(clean);
    logLen += clean.length;
  };
  const log = (): string => logChunks.join('');

  const proc = spawn('baresip', ['-f', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let readyResolve: (() => void) | undefined;
  const ready = new Promise<void>((res) => (readyResolve = res));
  let outText = '';
  proc.stdout!.setEncoding('utf8');
  proc.stderr!.setEncoding('utf8');
  proc.stdout!.on('data', (d: string) => {
    appendLog(d);
    if (readyResolve) {
      outText += d;
      if (outText.includes('baresip is ready')) {
        readyResolve();
        readyResolve = undefined;
        outText = '';
      }
    }
  });
  proc.stderr!.on('data', (d: string) => appendLog(d));
  proc.on('exit', () => live.delete(proc));
  let spawnError: Error | undefined;
  proc.on('error', (e) => {
    spawnError = e;
    live.delete(proc);
  });

  let ctrl: Ctrl | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    ctrl?.close();
    if (proc.pid && !exited(proc)) {
      try {
        process.kill(proc.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      if (!(await waitExit(proc, 3000))) {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await waitExit(proc, 3000);
      }
    }
    live.delete(proc);
    rmSync(dir, { recursive: true, force: true });
  };

  // ---- events ----
  const { events, onRawEvent } = createEventLog(() => `baresip ${addr}:${sipPort}`, () => log());

  try {
    const exitedEarly = new Promise<never>((_, rej) => {
      proc.once('exit', (code, sig) => rej(new Error(`baresip exited during start (code ${code}, signal ${sig})`)));
      proc.once('error', (e) => rej(e));
    });
    exitedEarly.catch(() => undefined);
    const startTimeout = opts.startTimeoutMs ?? 15_000;
    await Promise.race([
      ready,
      exitedEarly,
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`baresip not ready within ${startTimeout} ms`)), startTimeout)),
    ]);
    if (spawnError) throw spawnError;
    if (/address already in use|failed to listen|could not (open|bind)/i.test(log())) {
      throw new Error('baresip could not bind a port');
    }
    const sock = await Promise.race([Ctrl.connect(ctrlPort, 5000), exitedEarly]);
    ctrl = new Ctrl(sock, onRawEvent);
    // ctrl_tcp accepts one client; make sure it is us that is connected and it answers.
    await ctrl.send('help', undefined, 5000);
  } catch (e) {
    const err = e as Error;
    await stop();
    err.message = `${err.message}\n--- baresip log ---\n${log().slice(-4000)}`;
    throw err;
  }

  if (delayedAnswer) {
    events.on((ev) => {
      if (ev.type !== 'CALL_INCOMING') return;
      setTimeout(() => {
        if (!stopped && ctrl && !ctrl.closed) ctrl.send('accept', undefined, 5000).catch(() => undefined);
      }, opts.answerDelayMs);
    });
  }

  const mustOk = async (command: string, params?: string): Promise<void> => {
    const r = await handle.command(command, params);
    if (!r.ok) throw new Error(`baresip '${command}${params ? ' ' + params : ''}' failed: ${r.data}`);
  };

  const recordings = async (): Promise<{ received: string[]; sent: string[] }> => {
    const names = await readdir(dir).catch(() => [] as string[]);
    const withTime = await Promise.all(
      names
        .filter((n) => /^dump-.*-(dec|enc)\.wav$/.test(n))
        .map(async (n) => ({ n, m: (await stat(join(dir, n))).mtimeMs })),
    );
    // Names carry a second-resolution timestamp; order by name, then mtime.
    withTime.sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : a.m - b.m));
    return {
      received: withTime.filter((x) => x.n.endsWith('-dec.wav')).map((x) => join(dir, x.n)),
      sent: withTime.filter((x) => x.n.endsWith('-enc.wav')).map((x) => join(dir, x.n)),
    };
  };
  const latest = async (which: 'received' | 'sent'): Promise<{ samples: Int16Array; sampleRate: number }> => {
    const files = (await recordings())[which];
    const f = files[files.length - 1];
    if (!f) throw new Error(`baresip ${addr}:${sipPort}: no ${which} recording yet (no audio frames ${which === 'received' ? 'received' : 'sent'})`);
    const w = await readWavFile(f);
    return { samples: w.samples, sampleRate: w.sampleRate };
  };

  const handle: BaresipHandle = {
    pid: proc.pid!,
    sipUri: `sip:${user}@${addr}:${sipPort}`,
    sipAddress: addr,
    sipPort,
    user,
    ctrlPort,
    rtpPortRange,
    dir,
    sourceSampleRate,
    events,
    command(command, params, timeoutMs = 10_000) {
      if (!ctrl) return Promise.reject(new Error('baresip not connected'));
      return ctrl.send(command, params, timeoutMs);
    },
    dial: (uri) => mustOk('dial', uri),
    accept: () => mustOk('accept'),
    hangup: () => mustOk('hangup'),
    recordedPcm: () => latest('received'),
    sentPcm: () => latest('sent'),
    recordings,
    log,
    stop,
  };
  return handle;
}
