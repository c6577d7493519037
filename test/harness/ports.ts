/**
 * Loopback ports for test daemons: free ones to hand out (bind, read, release), whether one is
 * free, and waiting until a daemon listens on one (read from the kernel's socket table, so that
 * looking cannot take the port from the daemon).
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { waitFor } from '../support/wait.js';

/** Bind `port` (0: any) on `host` for `transport`, read the port, release it; rejects if taken. */
async function bindOnce(host: string, port: number, transport: 'udp' | 'tcp'): Promise<number> {
  if (transport === 'udp') {
    const s = createSocket('udp4');
    try {
      await new Promise<void>((ok, ko) => {
        s.once('error', ko);
        s.bind(port, host, () => ok());
      });
    } catch (err) {
      s.close();
      throw err;
    }
    const bound = s.address().port;
    await new Promise<void>((ok) => s.close(() => ok()));
    return bound;
  }
  const srv = createServer();
  await new Promise<void>((ok, ko) => {
    srv.once('error', ko);
    srv.listen(port, host, () => ok());
  });
  const addr = srv.address();
  await new Promise<void>((ok) => srv.close(() => ok()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

/** A free port on `host` for `transport` (bind port 0, read it, close). */
export function freePort(host: string, transport: 'udp' | 'tcp' = 'udp'): Promise<number> {
  return bindOnce(host, 0, transport);
}

/** Whether `port` on `host` can be bound right now for `transport` (i.e. nobody holds it). */
export function portFree(host: string, port: number, transport: 'udp' | 'tcp' = 'udp'): Promise<boolean> {
  return bindOnce(host, port, transport).then(
    () => true,
    () => false,
  );
}

/** A port free on `host` for both UDP and TCP. */
export async function freeDualPort(host: string): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freePort(host, 'udp');
    if (await portFree(host, p, 'tcp')) return p;
  }
  throw new Error('no free dual port');
}

/**
 * Whether a socket is bound (UDP) or listening (TCP) on `host`:`port`, read from the kernel's
 * table (/proc/net/udp, /proc/net/tcp) so that looking cannot take the port from the daemon.
 */
export function portListening(host: string, port: number, transport: 'udp' | 'tcp' = 'udp'): boolean {
  const ipHex = host
    .split('.')
    .map((o) => Number(o).toString(16).toUpperCase().padStart(2, '0'))
    .reverse()
    .join('');
  const local = `${ipHex}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const table = readFileSync(`/proc/net/${transport}`, 'utf8').split('\n').slice(1);
  return table.some((line) => {
    const f = line.trim().split(/\s+/);
    return f[1] === local && (transport === 'udp' || f[3] === '0A'); // 0A: TCP_LISTEN
  });
}

/** Resolve once a daemon (SIPp) holds `port` on `host`: a UDP request sent before that is lost. */
export async function waitListening(host: string, port: number, transport: 'udp' | 'tcp' = 'udp', timeoutMs = 10_000): Promise<void> {
  await waitFor(() => portListening(host, port, transport), { what: `a listener on ${host}:${port}/${transport}`, timeoutMs });
}
