/**
 * A real `redis-server` for one test file: its own loopback port, no persistence, stopped by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, waitListening } from './ports.js';

export interface RedisDaemon {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<RedisDaemon> {
  const port = await freePort('127.0.0.1', 'tcp');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--daemonize', 'no'];
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await waitListening('127.0.0.1', port, 'tcp', 10_000);
  } catch (err) {
    if (child.pid) process.kill(child.pid, 'SIGKILL');
    throw new Error(`redis-server did not listen on ${port}: ${stderr || (err as Error).message}`);
  }
  const pid = child.pid!;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid,
    async stop() {
      if (child.exitCode !== null) return;
      process.kill(pid, 'SIGTERM');
      const t = setTimeout(() => child.exitCode === null && process.kill(pid, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}
