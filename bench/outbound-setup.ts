/**
 * Outbound call set-up latency through the real stack on loopback: SIPp (the PBX) INVITEs the
 * bridge → permission check + media offer → Graph `connect` on the WhatsApp simulator → the
 * simulated user answers (connect webhook) → media answer → 200 OK. Reports the PBX INVITE →
 * `connect` request and connect webhook → 200 OK, per media engine, as medians and p90 over N
 * calls (one at a time).
 *
 *   npx tsx bench/outbound-setup.ts [calls=10]    BENCH_ENGINES=embedded,rtpengine (default both)
 */
import { randomMediaRange, startRtpengine } from '../test/harness/rtpengine.js';
import { startSipp } from '../test/harness/sipp.js';
import { freeDualPort } from '../test/harness/ports.js';
import { waitFor } from '../test/support/wait.js';
import { enginesToMeasure, startBenchBridge, summary } from './harness.js';

const N = Number(process.argv[2] ?? 10);
const USER = '5511987654321';
const rtpengine = await startRtpengine(randomMediaRange());

for (const engine of enginesToMeasure()) {
  const b = await startBenchBridge({
    label: `outbound-setup ${engine}`,
    engine,
    rtpengine,
    config: { outbound: { enabled: true, allowFrom: ['127.0.0.3/32'], dialPrefix: '9', phoneNumberId: '1', permissionCacheSec: 0 } },
  });
  b.sim.user(USER, { kind: 'answer', afterMs: 50 });
  const toConnect: number[] = [];
  const toOk: number[] = [];
  for (let i = 0; i < N; i++) {
    const port = await freeDualPort('127.0.0.3');
    const sipp = startSipp({ scenario: 'sip-uac-call-bye.xml', ip: '127.0.0.3', port, remote: `127.0.0.1:${b.sipPort}`, args: ['-s', `9${USER}`] });
    // Read the call's timings while it is up (SIPp hangs up 200 ms after the 200 OK).
    let done = false;
    void sipp.exited.then(() => (done = true));
    const c = await waitFor(
      () => {
        const call = [...((b.app.bridge as any).outbound as Map<string, any>).values()][0];
        return call?.timings.okSent !== undefined ? call : done ? 'gone' : undefined;
      },
      { what: 'the outbound call to send its 200 OK', intervalMs: 5, timeoutMs: 30_000 },
    );
    if (c !== 'gone') {
      toConnect.push(c.timings.connectSent - c.timings.inviteReceived);
      toOk.push(c.timings.okSent - c.timings.answerReceived);
    }
    await sipp.exited;
  }
  console.log(`[${engine}] calls measured: ${toConnect.length}/${N}`);
  console.log(`[${engine}] PBX INVITE -> connect request: ${summary(toConnect)}`);
  console.log(`[${engine}] connect webhook -> 200 OK:     ${summary(toOk)}`);
  await b.stop();
}
await rtpengine.stop();
process.exit(0);
