import { parseArgs, type ParseArgsConfig } from 'node:util';
import { buildConfig, ConfigError, ENV, readConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';

/** What every subcommand prints to: stdout for the report, stderr for usage errors. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

export const stdio: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** Exit codes of the subcommands. */
export const EXIT = { ok: 0, failed: 1, badConfig: 2, usage: 64 } as const;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with `--config` and `--help` added; unknown options are a UsageError. */
export function parseCliArgs<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The config file the user meant: `--config`, else WA_SIP_BRIDGE_CONFIG (as the bridge reads it). */
export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return flag ?? env[ENV.configFile];
}

/** The parsed config file (before validation), `{}` without one. Throws ConfigError. */
export function readRawConfig(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  const raw = readConfigFile(path);
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(['config must be an object']);
  return raw as Record<string, unknown>;
}

/**
 * Load and validate as the bridge does (file + environment secrets); on failure print every
 * problem at once and return undefined.
 */
export function loadForCli(path: string | undefined, io: CliIo, env: NodeJS.ProcessEnv = process.env): Readonly<Config> | undefined {
  try {
    return buildConfig(readRawConfig(path), env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.out(`${MARK.bad} config ${path ?? '(none: built-in defaults)'}: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}`);
    for (const p of err.problems) io.out(`    - ${p}`);
    io.out(`    fix: correct the keys above (config/example.yaml documents each one)`);
    return undefined;
  }
}

export const MARK = { ok: '✓', bad: '✗', skip: '–' } as const;

/** ms to a short human figure. */
export function ms(n: number): string {
  return n < 10 ? `${n.toFixed(1)} ms` : n < 10_000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(1)} s`;
}

/** Resolve when `p` settles or after `timeoutMs` (then with `undefined`): bounded waits. */
export async function within<T>(p: Promise<T>, timeoutMs: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `cond` every 10 ms until true or `timeoutMs`; resolves with whether it became true. */
export async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}
