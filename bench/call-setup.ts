/**
 * Inbound call set-up latency through the real stack on loopback: WhatsApp simulator → bridge
 * → media engine → SIPp (answers at once). Reports, per media engine, webhook → INVITE sent and
 * PBX 200 OK → `accept` sent, as medians and p90 over N calls, next to the rtpengine ng round
 * trip measured in the same run as a baseline.
 *
 *   npx tsx bench/call-setup.ts [calls=20]        BENCH_ENGINES=embedded,rtpengine (default both)
 */
import { createRtpengineEngine } from '../src/media/rtpengine/index.js';
import { silentLogger } from '../src/util/log.js';
import { randomMediaRange, startRtpengine } from '../test/harness/rtpengine.js';
import { freeDualPort, startSipp } from '../test/harness/sipp.js';
import { enginesToMeasure, quantile, startBenchBridge, summary } from './harness.js';

const N = Number(process.argv[2] ?? 20);
const rtpengine = await startRtpengine(randomMediaRange());

// Baseline: the ng round trip to the same rtpengine.
const probe = await createRtpengineEngine({ ng: [rtpengine.ng], logger: silentLogger() });
const pings: number[] = [];
for (let i = 0; i < 50; i++) {
  const t = performance.now();
  await probe.listSessions();
  pings.push(performance.now() - t);
}
await probe.close();
console.log(`baseline ng list round trip: ${summary(pings)}`);

for (const engine of enginesToMeasure()) {
  const port = await freeDualPort('127.0.0.3');
  const sipp = startSipp({ scenario: 'sip-uas-answer-wait-bye.xml', ip: '127.0.0.3', port, timeoutSec: 120, args: ['-m', String(N)] });
  const b = await startBenchBridge({ label: `call-setup ${engine}`, engine, rtpengine, config: { routing: { default: `sip:bench@127.0.0.3:${port}` } } });
  const toInvite: number[] = [];
  const toAccept: number[] = [];
  for (let i = 0; i < N; i++) {
    const call = await b.sim.userCalls({ userWaId: `55119876543${String(i).padStart(2, '0')}` });
    await call.waitFor('accept');
    const c = b.app.bridge.call(call.callId);
    if (c?.timings.inviteSent !== undefined && c.timings.acceptSent !== undefined && c.timings.pbxAnswered !== undefined) {
      toInvite.push(c.timings.inviteSent - c.timings.connectReceived);
      toAccept.push(c.timings.acceptSent - c.timings.pbxAnswered);
    }
    await call.hangUp();
    await c?.ended;
  }
  const ratio = (xs: number[]): string => `${(quantile(xs, 0.5) / quantile(pings, 0.5)).toFixed(1)}x ng round trip`;
  console.log(`[${engine}] calls: ${toInvite.length}/${N}`);
  console.log(`[${engine}] webhook received -> INVITE sent: ${summary(toInvite)} (${ratio(toInvite)})`);
  console.log(`[${engine}] PBX 200 OK -> accept sent:      ${summary(toAccept)} (${ratio(toAccept)})`);
  await b.stop();
  sipp.stop();
}
await rtpengine.stop();
process.exit(0);
