/**
 * Run the `wa-sip-bridge` binary as a user does (`npx tsx src/main.ts <command> ...`: the real
 * process, its argv dispatch, stdout and exit code), independent of the build layout.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

const ROOT = resolve(import.meta.dirname, '../..');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Env for the child: the caller's secrets only (nothing inherited from the test's own env). */
const BASE_ENV_KEYS = ['PATH', 'HOME', 'TMPDIR', 'NODE_OPTIONS', 'LANG'];

export function runCli(args: string[], env: Record<string, string>, timeoutMs = 90_000, onStdout?: (soFar: string) => void): Promise<CliRun> {
  const childEnv: Record<string, string> = { LOG_LEVEL: 'warn' };
  for (const k of BASE_ENV_KEYS) if (process.env[k] !== undefined) childEnv[k] = process.env[k]!;
  Object.assign(childEnv, env);
  const child = spawn('npx', ['tsx', 'src/main.ts', ...args], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    onStdout?.(stdout);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((done) => {
    // A bound, not a sleep: a hung command is killed (by its PID) and reported as such.
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      stderr += `\n[killed after ${timeoutMs} ms]`;
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** Write `config` as YAML into a fresh temp dir; returns its path. */
export function writeConfig(config: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'cli-config-')), 'bridge.yaml');
  writeFileSync(path, stringify(config));
  return path;
}

/** The output line about `subject` (the table's rows start with ✓, ✗ or –). */
export function row(stdout: string, subject: string): string | undefined {
  return stdout.split('\n').find((l) => /^[✓✗–] /.test(l) && l.slice(2).startsWith(subject));
}

/** The `fix:` line printed under the row about `subject`. */
export function fixOf(stdout: string, subject: string): string | undefined {
  const lines = stdout.split('\n');
  const i = lines.findIndex((l) => /^[✓✗–] /.test(l) && l.slice(2).startsWith(subject));
  const next = i >= 0 ? lines[i + 1] : undefined;
  return next && /^\s+fix: /.test(next) ? next.trim() : undefined;
}
