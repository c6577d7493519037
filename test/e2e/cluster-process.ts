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
import { freeDualPort, freePort } from '../harness/ports.js';
import { randomMediaRange } from '../harness/rtpengine.js';
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

export interface InstancePair {
  /** The real process. */
  a: ProcessInstance;
  /** The in-process instance, its pino lines in `bLogs`. */
  b: RunningApp;
  bLogs: string[];
  idA: string;
  idB: string;
  sipA: number;
  sipB: number;
}

/**
 * A (the real process) and B (this process), each with its own SIP port (UDP), internal port and
 * embedded media range, both in one cluster on `redisUrl`, routing every inbound call to `pbxUri`.
 * `outbound`: the outbound section both get. If B cannot start, A is stopped.
 */
export async function startPair(o: { redisUrl: string; graphUrl: string; pbxUri: string; tag: string; outbound?: Record<string, unknown> }): Promise<InstancePair> {
  const [internalA, internalB, sipA, sipB] = [await freePort('127.0.0.1', 'tcp'), await freePort('127.0.0.1', 'tcp'), await freeDualPort('127.0.0.1'), await freeDualPort('127.0.0.1')];
  const mediaA = randomMediaRange();
  const bMin = mediaA.portMin >= 39_000 ? mediaA.portMin - 1000 : mediaA.portMin + 1000;
  const suffix = Math.random().toString(36).slice(2, 8);
  const [idA, idB] = [`${o.tag}-a-${suffix}`, `${o.tag}-b-${suffix}`];
  const common = {
    whatsapp: { provider: 'meta', graphBaseUrl: o.graphUrl },
    routing: { default: o.pbxUri },
    ...(o.outbound ? { outbound: o.outbound } : {}),
  };
  const embedded = (range: { portMin: number; portMax: number }) => ({ engine: 'embedded', embedded: { rtpHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...range } });
  const a = await spawnInstance({
    ...common,
    sip: { udp: { host: '127.0.0.1', port: sipA }, tcp: null },
    media: embedded(mediaA),
    cluster: clusterSection({ redisUrl: o.redisUrl, instanceId: idA, internalPort: internalA }),
  });
  const bLogs: string[] = [];
  try {
    const b = await startSurvivor(
      {
        ...common,
        sip: { udp: { host: '127.0.0.1', port: sipB }, tcp: null },
        media: embedded({ portMin: bMin, portMax: bMin + 999 }),
        cluster: clusterSection({ redisUrl: o.redisUrl, instanceId: idB, internalPort: internalB }),
      },
      bLogs,
    );
    return { a, b, bLogs, idA, idB, sipA, sipB };
  } catch (err) {
    a.cleanup();
    throw err;
  }
}

/** Run every cleanup step on its own: one failing must not leave the daemons after it running. */
export async function cleanUp(steps: Array<() => unknown>): Promise<void> {
  for (const step of steps) await Promise.resolve().then(step).catch((err: unknown) => process.stderr.write(`cleanup: ${String(err)}\n`));
}

/** What A printed and B logged last, for a failed test's output. */
export function dumpPair(a: ProcessInstance | undefined, bLogs: string[]): void {
  process.stderr.write(`--- A:\n${a?.output().slice(-4000)}\n--- B:\n${bLogs.slice(-40).join('')}`);
}
