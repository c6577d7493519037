/**
 * Outbound call set-up latency through the real stack on loopback: SIPp (the PBX) INVITEs the
 * bridge → permission check + media offer → Graph `connect` on the WhatsApp simulator → the
 * simulated user answers (connect webhook) → media answer → 200 OK. Reports the PBX INVITE →
 * `connect` request and connect webhook → 200 OK, per media engine, as medians and p90 over N
 * calls (one at a time).
 *
 *   npx tsx bench/outbound-setup.ts [calls=10]
 */
import { startApp } from '../src/app.js';
import { buildConfig } from '../src/config/load.js';
import { WhatsAppSimulator } from '../src/simulator/whatsapp.js';
import { createLogger } from '../src/util/log.js';
import { randomMediaRange, startRtpengine } from '../test/harness/rtpengine.js';
import { freeDualPort, startSipp } from '../test/harness/sipp.js';

const N = Number(process.argv[2] ?? 10);
const USER = '5511987654321';
const log = createLogger({ level: 'silent' });
const rtpengine = await startRtpengine(randomMediaRange());
const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const fmt = (xs: number[]) => `median ${q(xs, 0.5).toFixed(2)} ms, p90 ${q(xs, 0.9).toFixed(2)} ms`;

for (const engine of ['rtpengine', 'embedded'] as const) {
  const sim = await WhatsAppSimulator.start({ phoneNumberId: '1', businessNumber: '13175551399', accessToken: 't', appSecret: 's' });
  sim.user(USER, { kind: 'answer', afterMs: 50 });
  const sipPort = await freeDualPort('127.0.0.1');
  const app = await startApp(
    buildConfig({
      http: { host: '127.0.0.1', port: 0 },
      whatsapp: { provider: 'meta', graphBaseUrl: sim.graphUrl, graphVersion: 'v23.0', accessToken: 't', appSecret: 's' },
      sip: { udp: { host: '127.0.0.1', port: sipPort }, tcp: { host: '127.0.0.1', port: sipPort } },
      media: { engine, rtpengine: { ng: [rtpengine.ng] }, embedded: { rtpHost: '127.0.0.1', rtpAdvertiseHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...randomMediaRange() } },
      outbound: { enabled: true, allowFrom: ['127.0.0.3/32'], dialPrefix: '9', phoneNumberId: '1', permissionCacheSec: 0 },
    }),
    log,
  );
  sim.setWebhookUrl(`${app.url}/webhook`);
  const toConnect: number[] = [];
  const toOk: number[] = [];
  app.bridge.onCallEnded(() => undefined);
  for (let i = 0; i < N; i++) {
    const port = await freeDualPort('127.0.0.3');
    const sipp = startSipp({ scenario: 'sip-uac-call-bye.xml', ip: '127.0.0.3', port, remote: `127.0.0.1:${sipPort}`, args: ['-s', `9${USER}`] });
    // Read the call's timings while it is up (SIPp hangs up 200 ms after the 200 OK).
    let done = false;
    void sipp.exited.then(() => (done = true));
    while (!done) {
      const c = [...((app.bridge as any).outbound as Map<string, any>).values()][0];
      if (c?.timings.okSent !== undefined) {
        toConnect.push(c.timings.connectSent - c.timings.inviteReceived);
        toOk.push(c.timings.okSent - c.timings.answerReceived);
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await sipp.exited;
  }
  console.log(`[${engine}] calls measured: ${toConnect.length}/${N}`);
  console.log(`[${engine}] PBX INVITE -> connect request: ${fmt(toConnect)}`);
  console.log(`[${engine}] connect webhook -> 200 OK:     ${fmt(toOk)}`);
  await app.close();
  await sim.close();
}
await rtpengine.stop();
process.exit(0);
