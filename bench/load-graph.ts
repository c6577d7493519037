/**
 * The Graph client's own CPU per action, against a baseline in the same run: the same request
 * (POST of a call action with an SDP, JSON answer) sent with `fetch`, the way the client sent
 * it before it moved to undici's `request` on a keep-alive Agent (src/whatsapp/graph-client.ts).
 * The server is a minimal HTTP server in its own process answering `{"success":true}`, so the
 * CPU measured here (process.cpuUsage) is the client side's alone. Rounds alternate between the
 * two so that a neighbour's load hits both alike.
 *
 *   npx tsx bench/load-graph.ts [--actions 3000] [--concurrency 8] [--rounds 3]
 */
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { createCallsApi } from '../src/whatsapp/graph-client.js';
import { silentLogger } from '../src/util/log.js';
import { quantile } from './harness.js';
import { loopbackOffer } from './load-baseline.js';

const { values: a } = parseArgs({
  options: {
    actions: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    server: { type: 'boolean', default: false },
  },
});

if (a.server) {
  const { createServer } = await import('node:http');
  const body = JSON.stringify({ success: true });
  const srv = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body));
  });
  srv.keepAliveTimeout = 30_000;
  srv.listen(0, '127.0.0.1', () => process.send!({ port: (srv.address() as import('node:net').AddressInfo).port }));
} else {
  const child = fork(new URL(import.meta.url).pathname, ['--server'], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  const port = await new Promise<number>((r) => child.once('message', (m: { port: number }) => r(m.port)));
  const base = `http://127.0.0.1:${port}`;
  const N = Number(a.actions);
  const C = Number(a.concurrency);
  const sdp = loopbackOffer();
  const token = 'EAAG'.padEnd(200, 'x');
  const api = createCallsApi({ provider: 'meta', baseUrl: base, version: 'v23.0', accessToken: token, logger: silentLogger(), retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });

  /** What the client did per action before: fetch, AbortSignal.timeout, text(), JSON.parse. */
  const viaFetch = async (i: number): Promise<void> => {
    const res = await fetch(`${base}/v23.0/1/calls`, {
      method: 'POST',
      headers: { accept: 'application/json', authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messaging_product: 'whatsapp', call_id: `wacid.${i}`, action: 'accept', session: { sdp_type: 'answer', sdp } }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok || (JSON.parse(text) as { success?: boolean }).success !== true) throw new Error(`HTTP ${res.status}`);
  };
  const viaClient = (i: number): Promise<void> => api.accept('1', `wacid.${i}`, sdp);

  const measure = async (fn: (i: number) => Promise<void>): Promise<{ cpuUs: number; p50: number; p99: number; perSec: number }> => {
    const ms: number[] = [];
    let next = 0;
    global.gc?.();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next < N) {
          const i = next++;
          const s = performance.now();
          await fn(i);
          ms.push(performance.now() - s);
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { cpuUs: (cpu.user + cpu.system) / N, p50: quantile(ms, 0.5), p99: quantile(ms, 0.99), perSec: N / wall };
  };

  // Warm both paths (JIT, connections) before measuring.
  await measure(viaFetch);
  await measure(viaClient);
  const rows: Record<string, Array<{ cpuUs: number; p50: number; p99: number; perSec: number }>> = { fetch: [], client: [] };
  for (let r = 0; r < Number(a.rounds); r++) {
    rows['fetch']!.push(await measure(viaFetch));
    rows['client']!.push(await measure(viaClient));
  }
  const med = (xs: number[]): number => quantile(xs, 0.5);
  for (const [name, rs] of Object.entries(rows)) {
    console.log(
      `[${name === 'fetch' ? 'baseline: fetch, as before' : 'graph client (undici request, keep-alive Agent)'}] ${N} accepts x ${rs.length} rounds, ${C} in flight: ` +
        `CPU ${rs.map((x) => (x.cpuUs / 1000).toFixed(3)).join(' / ')} ms per action (median ${(med(rs.map((x) => x.cpuUs)) / 1000).toFixed(3)}); ` +
        `round trip p50 ${med(rs.map((x) => x.p50)).toFixed(2)} ms, p99 ${med(rs.map((x) => x.p99)).toFixed(2)} ms; ${med(rs.map((x) => x.perSec)).toFixed(0)} actions/s`,
    );
  }
  const ratio = med(rows['client']!.map((x) => x.cpuUs)) / med(rows['fetch']!.map((x) => x.cpuUs));
  console.log(`[ratio] the client's CPU per action is ${ratio.toFixed(2)}x fetch's in the same run`);
  child.kill();
  process.exit(0);
}
