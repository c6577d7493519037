/**
 * Test harness: a private rtpengine daemon in userspace on loopback. Ports for ng and CLI are
 * picked free at start; the media port range is the caller's (use `randomMediaRange()` so
 * parallel test files do not collide). Stopped by PID (SIGTERM, then SIGKILL after 8 s).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RtpengineDaemon {
  readonly pid: number;
  readonly ng: { host: string; port: number };
  readonly cliPort: number;
  readonly portMin: number;
  readonly portMax: number;
  /** Everything rtpengine wrote to stderr so far (its log). */
  log(): string;
  stop(): Promise<void>;
}

/** Why rtpengine tests cannot run here, or undefined when they can. */
export function rtpengineSkipReason(): string | undefined {
  const r = spawnSync('rtpengine', ['--version'], { encoding: 'utf8' });
  if (r.error) return `rtpengine binary not available (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
  if (r.status !== 0) return `rtpengine --version failed: ${r.stderr}`;
  return undefined;
}

/** A random 1000-port slice in 20000-39999. */
export function randomMediaRange(): { portMin: number; portMax: number } {
  const slice = Math.floor(Math.random() * 20);
  const portMin = 20000 + slice * 1000;
  return { portMin, portMax: portMin + 999 };
}

/** A UDP port that is free right now on 127.0.0.1. */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => {
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => res());
  });
  const { port } = s.address();
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

/** One raw ng `ping` (bencode written by hand: no dependency on the client under test). */
async function ngPing(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  const cookie = randomBytes(6).toString('hex');
  try {
    return await new Promise<boolean>((res) => {
      const t = setTimeout(() => res(false), timeoutMs);
      s.on('error', () => {
        clearTimeout(t);
        res(false);
      });
      s.on('message', (m) => {
        const txt = m.toString('latin1');
        if (txt.startsWith(cookie + ' ') && txt.includes('pong')) {
          clearTimeout(t);
          res(true);
        }
      });
      s.send(Buffer.from(`${cookie} d7:command4:pinge`), port, host);
    });
  } finally {
    s.close();
  }
}

export interface StartOptions {
  portMin: number;
  portMax: number;
  logLevel?: number;
  /** Extra command-line arguments. */
  args?: string[];
  startTimeoutMs?: number;
}

const running = new Set<RtpengineDaemon>();
process.once('exit', () => {
  for (const d of running) {
    try {
      process.kill(d.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export async function startRtpengine(opts: StartOptions): Promise<RtpengineDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'rtpengine-'));
  const pidfile = join(dir, 'rtpengine.pid');
  let lastErr = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const ngPort = await freeUdpPort();
    const cliPort = await freeUdpPort();
    const args = [
      '--config-file=none',
      '--table=-1',
      '--interface=127.0.0.1',
      `--listen-ng=127.0.0.1:${ngPort}`,
      `--listen-cli=127.0.0.1:${cliPort}`,
      `--port-min=${opts.portMin}`,
      `--port-max=${opts.portMax}`,
      '--foreground',
      '--log-stderr',
      `--log-level=${opts.logLevel ?? 5}`,
      `--pidfile=${pidfile}`,
      ...(opts.args ?? []),
    ];
    const child: ChildProcess = spawn('rtpengine', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      log += d;
      if (log.length > 2_000_000) log = log.slice(-1_000_000);
    });
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    let exitedEarly = false;
    void exited.then(() => (exitedEarly = true));
    const pid = child.pid;
    if (pid === undefined) {
      lastErr = 'spawn failed';
      continue;
    }
    const daemon: RtpengineDaemon = {
      pid,
      ng: { host: '127.0.0.1', port: ngPort },
      cliPort,
      portMin: opts.portMin,
      portMax: opts.portMax,
      log: () => log,
      stop: async () => {
        running.delete(daemon);
        if (!exitedEarly) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            /* gone */
          }
          const killTimer = setTimeout(() => {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* gone */
            }
          }, 8000);
          await exited;
          clearTimeout(killTimer);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
    running.add(daemon);
    const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
    let up = false;
    while (Date.now() < deadline && !exitedEarly) {
      if (await ngPing('127.0.0.1', ngPort, 200)) {
        up = true;
        break;
      }
    }
    if (up) return daemon;
    lastErr = `rtpengine did not answer ng ping on ${ngPort}: ${log.slice(-2000)}`;
    await daemon.stop();
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(lastErr);
}
