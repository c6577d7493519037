/**
 * The cluster e2e tests' instances: A as the real process (`node --import tsx src/main.ts`,
 * config file and secrets from the environment), to be killed with SIGKILL; B in the test's
 * own process, with its logs kept.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startApp, type RunningApp } from '../../src/app.js';
import { buildConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/util/log.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../support/wait.js';

const ROOT = resolve(import.meta.dirname, '../..');
export const APP_SECRET = 'kill-app-secret';
export const CLUSTER_SECRET = 'kill-cluster-secret-0123456789';

export interface ClusterSpec {
  redisUrl: string;
  instanceId: string;
  internalPort: number;
}

/** The cluster section: lease 2 s, heartbeat 0.5 s (the tests' times depend on them). */
export function clusterSection(c: ClusterSpec) {
  return { redisUrl: c.redisUrl, instanceId: c.instanceId, internal: { host: '127.0.0.1', port: c.internalPort }, advertiseUrl: `http://127.0.0.1:${c.internalPort}`, heartbeatMs: 500, leaseMs: 2000 };
}

export interface ProcessInstance {
  child: ChildProcess;
  httpPort: number;
  output(): string;
  kill(): void;
  /** Kill if still running, remove the config dir. */
  cleanup(): void;
}

/** Start A as the real process with `config` (its http section is added); resolves once /readyz says 200. */
export async function spawnInstance(config: Record<string, unknown>): Promise<ProcessInstance> {
  const httpPort = await freePort('127.0.0.1', 'tcp');
  const dir = mkdtempSync(join(tmpdir(), 'wa-cluster-proc-'));
  writeFileSync(join(dir, 'a.json'), JSON.stringify({ http: { host: '127.0.0.1', port: httpPort }, ...config }));
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, WA_SIP_BRIDGE_CONFIG: join(dir, 'a.json'), WA_ACCESS_TOKEN: 'tok', WA_APP_SECRET: APP_SECRET, WA_VERIFY_TOKEN: 'vt', WA_SIP_BRIDGE_CLUSTER_SECRET: CLUSTER_SECRET },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const running = () => child.exitCode === null && child.signalCode === null;
  const inst: ProcessInstance = {
    child,
    httpPort,
    output: () => out,
    kill: () => void (child.pid && running() && process.kill(child.pid, 'SIGKILL')),
    cleanup: () => {
      inst.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    // Bounded wait: A starts up (tsx compiles on the fly; slow on a busy machine).
    await waitFor(async () => running() && (await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined))?.status === 200, { what: `A ready:\n${out.slice(-3000)}`, timeoutMs: 60_000 });
  } catch (err) {
    inst.cleanup();
    throw err;
  }
  return inst;
}

/** B, in this process, its pino lines kept in `logs`. */
export async function startSurvivor(config: Record<string, unknown>, logs: string[]): Promise<RunningApp> {
  const log = createLogger({ level: 'info', destination: { write: (s: string) => (logs.push(s), true) } as unknown as NodeJS.WritableStream });
  const cluster = config['cluster'] as Record<string, unknown>;
  return startApp(
    buildConfig({
      http: { host: '127.0.0.1', port: 0 },
      ...config,
      whatsapp: { accessToken: 'tok', appSecret: APP_SECRET, verifyToken: 'vt', ...(config['whatsapp'] as object) },
      cluster: { ...cluster, secret: CLUSTER_SECRET },
    }),
    log,
  );
}

/** B's log lines with message `msg`. */
export function logged(logs: string[], msg: string): Array<Record<string, unknown>> {
  return logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);
}
