/**
 * Inbound call set-up latency through the real stack on loopback: WhatsApp simulator → bridge
 * → rtpengine → SIPp (answers at once). Reports, per call, webhook → INVITE sent and
 * PBX 200 OK → `accept` sent, as medians and p90 over N calls, next to the ng round trip
 * measured in the same run as a baseline.
 *
 *   npx tsx bench/call-setup.ts [calls=20]
 */
import { startApp } from '../src/app.js';
import { buildConfig } from '../src/config/load.js';
import { WhatsAppSimulator } from '../src/simulator/whatsapp.js';
import { createLogger } from '../src/util/log.js';
import { randomMediaRange, startRtpengine } from '../test/harness/rtpengine.js';
import { freeDualPort, startSipp } from '../test/harness/sipp.js';
import { createRtpengineEngine } from '../src/media/rtpengine/index.js';

const N = Number(process.argv[2] ?? 20);
const log = createLogger({ level: 'silent' });
const rtpengine = await startRtpengine(randomMediaRange());
const sim = await WhatsAppSimulator.start({ phoneNumberId: '1', businessNumber: '13175551399', accessToken: 't', appSecret: 's' });
const port = await freeDualPort('127.0.0.3');
const sipp = startSipp({ scenario: 'sip-uas-answer-wait-bye.xml', ip: '127.0.0.3', port, timeoutSec: 120, args: ['-m', String(N)] });
const sipPort = await freeDualPort('127.0.0.1');
const app = await startApp(
  buildConfig({
    http: { host: '127.0.0.1', port: 0 },
    whatsapp: { provider: 'meta', graphBaseUrl: sim.graphUrl, graphVersion: 'v23.0', accessToken: 't', appSecret: 's' },
    sip: { udp: { host: '127.0.0.1', port: sipPort }, tcp: { host: '127.0.0.1', port: sipPort } },
    media: { rtpengine: { ng: [rtpengine.ng] } },
    routing: { default: `sip:bench@127.0.0.3:${port}` },
  }),
  log,
);
sim.setWebhookUrl(`${app.url}/webhook`);

// Baseline: the ng `ping` round trip to the same rtpengine.
const probe = await createRtpengineEngine({ ng: [rtpengine.ng], logger: log });
const pings: number[] = [];
for (let i = 0; i < 50; i++) {
  const t = performance.now();
  await probe.listSessions();
  pings.push(performance.now() - t);
}

const toInvite: number[] = [];
const toAccept: number[] = [];
for (let i = 0; i < N; i++) {
  const call = await sim.userCalls({ userWaId: `55119876543${String(i).padStart(2, '0')}` });
  await call.waitFor('accept');
  const c = app.bridge.call(call.callId);
  if (c?.timings.inviteSent !== undefined && c.timings.acceptSent !== undefined && c.timings.pbxAnswered !== undefined) {
    toInvite.push(c.timings.inviteSent - c.timings.connectReceived);
    toAccept.push(c.timings.acceptSent - c.timings.pbxAnswered);
  }
  await call.hangUp();
  await c?.ended;
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const fmt = (xs: number[]) => `median ${q(xs, 0.5).toFixed(2)} ms, p90 ${q(xs, 0.9).toFixed(2)} ms`;
console.log(`calls: ${toInvite.length}/${N}`);
console.log(`baseline ng list round trip: ${fmt(pings)}`);
console.log(`webhook received -> INVITE sent: ${fmt(toInvite)} (${(q(toInvite, 0.5) / q(pings, 0.5)).toFixed(1)}x ng round trip)`);
console.log(`PBX 200 OK -> accept sent:      ${fmt(toAccept)} (${(q(toAccept, 0.5) / q(pings, 0.5)).toFixed(1)}x ng round trip)`);

await probe.close();
await app.close();
sipp.stop();
await sim.close();
await rtpengine.stop();
process.exit(0);
