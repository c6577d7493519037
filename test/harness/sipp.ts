/**
 * Run SIPp with an XML scenario as a test peer. SIPp writes every message it sent and received
 * to a temp dir (`-trace_msg`); `exited` resolves with its exit code and that log, so a test can
 * assert on the wire. `stop()` kills by PID; `stopAllSipp()` (in afterEach) kills any left over.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const SCENARIOS = resolve(import.meta.dirname, '../scenarios');

export interface SippOptions {
  /** Scenario file name in test/scenarios, or an absolute path. */
  scenario: string;
  /** Local address and port SIPp binds. */
  ip: string;
  port: number;
  transport?: 'udp' | 'tcp';
  /** Remote host:port for UAC scenarios. */
  remote?: string;
  /** Extra args, e.g. `['-s', '1001', '-set', 'k', 'v']`. */
  args?: string[];
  /** Global timeout in seconds (SIPp fails when reached); default 20. */
  timeoutSec?: number;
}

export interface SippResult {
  /** 0: the call succeeded; 1: it failed; others: SIPp error. */
  code: number | null;
  /** Messages SIPp sent and received (its -trace_msg log). */
  messages: string;
  /** Unexpected messages (its -trace_err log). */
  errors: string;
  stderr: string;
}

export interface SippHandle {
  readonly pid: number | undefined;
  readonly exited: Promise<SippResult>;
  stop(): void;
}

const running = new Set<ChildProcess>();

export function sippAvailable(): boolean {
  return spawnSync('sipp', ['-v'], { stdio: 'ignore' }).error === undefined;
}

export function startSipp(opts: SippOptions): SippHandle {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  const messageFile = join(dir, 'messages.log');
  const errorFile = join(dir, 'errors.log');
  const scenario = opts.scenario.startsWith('/') ? opts.scenario : join(SCENARIOS, opts.scenario);
  const args = [
    ...(opts.remote ? [opts.remote] : []),
    '-sf', scenario,
    '-i', opts.ip,
    '-p', String(opts.port),
    '-t', opts.transport === 'tcp' ? 't1' : 'u1',
    '-m', '1',
    '-nostdin',
    '-timeout', `${opts.timeoutSec ?? 20}s`,
    '-timeout_error',
    '-trace_msg', '-message_file', messageFile,
    '-trace_err', '-error_file', errorFile,
    ...(opts.args ?? []),
  ];
  const child = spawn('sipp', args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const read = (f: string): string => (existsSync(f) ? readFileSync(f, 'utf8') : '');
  const exited = new Promise<SippResult>((done) => {
    const finish = (code: number | null): void => {
      running.delete(child);
      const result = { code, messages: read(messageFile), errors: read(errorFile), stderr };
      rmSync(dir, { recursive: true, force: true });
      done(result);
    };
    child.once('error', (err) => {
      stderr += String(err);
      finish(null);
    });
    child.once('exit', (code) => finish(code));
  });
  return {
    pid: child.pid,
    exited,
    stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    },
  };
}

/** Kill every SIPp this module started that is still running (call in afterEach). */
export function stopAllSipp(): void {
  for (const c of running) {
    if (c.pid !== undefined && c.exitCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

// Where these lived before test/harness/ports.ts; kept so existing imports work.

/** Split SIPp's message log into the messages it received (`received`) and sent (`sent`). */
export function sippMessages(log: string): { received: string[]; sent: string[] } {
  const received: string[] = [];
  const sent: string[] = [];
  // Blocks start with "----- <date>" then "UDP message received [n] bytes :" / "message sent".
  const blocks = log.split(/^-{5,}.*$/m);
  for (const b of blocks) {
    const m = /message (received|sent)[^\n]*:\s*\n([\s\S]*)/i.exec(b);
    if (!m?.[1] || m[2] === undefined) continue;
    (m[1].toLowerCase() === 'received' ? received : sent).push(m[2].trim());
  }
  return { received, sent };
}

/** The first line of each message (e.g. `INVITE sip:...`, `SIP/2.0 200 OK`). */
export function firstLines(msgs: string[]): string[] {
  return msgs.map((m) => m.split(/\r?\n/)[0]?.trim() ?? '');
}

/** The value of header `name` in a raw message. */
export function headerOf(msg: string, name: string): string | undefined {
  const re = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'im');
  return re.exec(msg)?.[1]?.trim();
}
