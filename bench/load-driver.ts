/**
 * The load bench's WhatsApp side, in its own process (forked by bench/load.ts) so that its
 * HTTP work does not count against the bridge's event loop: the Graph API simulator, and
 * signed webhooks sent at a set rate. No WebRTC peer: inbound offers are a WhatsApp-shaped SDP
 * whose ICE never completes (rtpengine accepts it); outbound answers are built from the
 * bridge's offer the same way.
 *
 * IPC (parent → driver): {type:'inbound', url, cps, calls} | {type:'outbound', url} | {type:'stats'}
 *   (driver → parent): {type:'ready', graphUrl} | {type:'inbound-done', ...} | {type:'stats', ...}
 */
import { randomBytes } from 'node:crypto';
import { parse, write } from 'sdp-transform';
import { createGraphSimulator, type ConnectHookEvent } from '../src/simulator/graph-server.js';
import { createWebhookSender, type WebhookSender } from '../src/simulator/webhook-sender.js';
import { loopbackOffer } from './load-baseline.js';

export const DRIVER = { phoneNumberId: '1', businessNumber: '13175551399', accessToken: 't', appSecret: 's' } as const;

const fingerprint = (): string => [...randomBytes(32)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');

/** WhatsApp's answer to the bridge's offer: Opus + telephone-event, ICE-lite, DTLS active, loopback. */
export function whatsAppAnswer(offer: string): string {
  const o = parse(offer);
  const m = o.media[0]!;
  const keep = new Set(m.rtp.filter((r) => /^(opus|telephone-event)$/i.test(r.codec)).map((r) => r.payload));
  return write({
    version: 0,
    origin: { username: '-', sessionId: Date.now(), sessionVersion: 2, netType: 'IN', ipVer: 4, address: '127.0.0.1' },
    name: '-',
    timing: { start: 0, stop: 0 },
    icelite: 'ice-lite',
    groups: [{ type: 'BUNDLE', mids: String(m.mid ?? '0') }],
    media: [
      {
        type: 'audio',
        port: 9,
        protocol: m.protocol,
        payloads: [...keep].join(' '),
        connection: { version: 4, ip: '127.0.0.1' },
        rtp: m.rtp.filter((r) => keep.has(r.payload)),
        fmtp: m.fmtp.filter((f) => keep.has(f.payload)),
        ...(m.mid !== undefined ? { mid: m.mid } : {}),
        iceUfrag: randomBytes(3).toString('hex'),
        icePwd: randomBytes(12).toString('hex'),
        fingerprint: { type: 'sha-256', hash: fingerprint() },
        setup: 'active',
        direction: 'sendrecv',
        rtcpMux: 'rtcp-mux',
        ...(process.env.BENCH_ICE === '1' ? { candidates: [{ foundation: '1', component: 1, transport: 'udp', priority: 2122260223, ip: '127.0.0.1', port: 9, type: 'host' }] } : {}),
      },
    ],
  } as Parameters<typeof write>[0]);
}

const graph = createGraphSimulator({ accessToken: DRIVER.accessToken, apiKey: DRIVER.accessToken });
const graphUrl = await graph.listen('127.0.0.1', 0);
let sender: WebhookSender | undefined;
const statuses = new Map<string, number>();
const count = (k: string): void => void statuses.set(k, (statuses.get(k) ?? 0) + 1);

const senderFor = (url: string): WebhookSender =>
  (sender ??= createWebhookSender({ url, appSecret: DRIVER.appSecret, phoneNumberId: DRIVER.phoneNumberId, businessNumber: DRIVER.businessNumber, simulator: graph }));

async function inbound(url: string, cps: number, calls: number): Promise<void> {
  const s = senderFor(url);
  const sdp = loopbackOffer();
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < calls; i++) {
    const due = started + (i * 1000) / cps;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(
      s.userCall({ userWaId: `55${String(100_000_000 + i)}`, sdp }).then(
        (r) => count(`webhook ${r.status}`),
        (err: unknown) => count(`webhook error ${(err as Error).name}`),
      ),
    );
  }
  const sendSec = (performance.now() - started) / 1000;
  await Promise.all(inFlight);
  process.send!({ type: 'inbound-done', sendSec, statuses: Object.fromEntries(statuses) });
}

/** Outbound: every Graph `connect` (after its 200) is answered by a connect webhook. */
function answerConnects(url: string): void {
  const s = senderFor(url);
  graph.on('connect', (c: ConnectHookEvent) => {
    void s.businessConnect({ callId: c.callId, userWaId: c.to, sdp: whatsAppAnswer(c.sdp) }).then(
      (st) => count(`answer webhook ${st}`),
      (err: unknown) => count(`answer webhook error ${(err as Error).name}`),
    );
  });
}

process.on('message', (m: { type: string; url?: string; cps?: number; calls?: number }) => {
  if (m.type === 'inbound') void inbound(m.url!, m.cps!, m.calls!);
  else if (m.type === 'outbound') answerConnects(m.url!);
  else if (m.type === 'stats') {
    const actions: Record<string, number> = {};
    for (const a of graph.actions) actions[`${a.action} ${a.response.status}`] = (actions[`${a.action} ${a.response.status}`] ?? 0) + 1;
    const cpu = process.cpuUsage();
    process.send!({ type: 'stats', statuses: Object.fromEntries(statuses), actions, cpuSec: (cpu.user + cpu.system) / 1e6 });
  } else if (m.type === 'exit') void graph.close().then(() => process.exit(0));
});
process.send!({ type: 'ready', graphUrl });
