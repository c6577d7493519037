import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { sippMessages, startSipp, type SippHandle } from '../harness/sipp.js';
import { freeDualPort, freePort } from '../harness/ports.js';
import { describeWithPeers } from '../support/peers.js';
import { runCli, writeConfig } from './cli-helpers.js';

/**
 * `wa-sip-bridge simulate` run as a user runs it (a real process with its in-process bridge and
 * simulator) against real PBX stand-ins: SIPp answering with RTP echo (`-rtp_echo`), SIPp
 * answering but sending nothing, SIPp busy, and baresip as an echo extension (aubridge). The
 * bridge listens on 127.0.0.1, SIPp on 127.0.0.3, baresip on 127.0.0.2; media through a real
 * rtpengine, and once through the embedded engine.
 */

let sipp: SippHandle | undefined;
let phone: BaresipHandle | undefined;
let rtpengine: RtpengineDaemon | undefined;

async function configFor(pbx: string, extra: Record<string, unknown> = {}): Promise<{ path: string; sipPort: number }> {
  const sipPort = await freeDualPort('127.0.0.1');
  const path = writeConfig({
    sip: { udp: { host: '127.0.0.1', port: sipPort }, tcp: null },
    media: { engine: 'rtpengine', rtpengine: { ng: [rtpengine!.ng] } },
    routing: { default: pbx },
    ...extra,
  });
  return { path, sipPort };
}

/** SIPp as the PBX on 127.0.0.3; with `echo`, it sends every RTP packet back (an echo extension). */
async function sippPbx(scenario: string, echo: boolean): Promise<string> {
  const port = await freeDualPort('127.0.0.3');
  const mediaPort = await freePort('127.0.0.3');
  sipp = startSipp({ scenario, ip: '127.0.0.3', port, timeoutSec: 60, args: ['-mi', '127.0.0.3', '-mp', String(mediaPort), ...(echo ? ['-rtp_echo'] : [])] });
  return `sip:pbx@127.0.0.3:${port}`;
}

/** The set-up lines "<ms> ms  <text>", in printed order. */
function steps(out: string): string[] {
  return out.split('\n').flatMap((l) => /^\s+\d+ ms {2}(.*)$/.exec(l)?.[1] ?? []);
}

function expectOrdered(lines: string[], patterns: RegExp[]): void {
  const idx = patterns.map((p) => lines.findIndex((l) => p.test(l)));
  expect(idx.every((i) => i >= 0), `${patterns.join(', ')} in:\n${lines.join('\n')}`).toBe(true);
  expect([...idx].sort((a, b) => a - b)).toEqual(idx);
}

describeWithPeers('wa-sip-bridge simulate (real process; SIPp, baresip, rtpengine)', ['sipp', 'baresip', 'rtpengine'], () => {
  afterEach(async () => {
    sipp?.stop();
    sipp = undefined;
    await phone?.stop();
    phone = undefined;
  });
  beforeAll(async () => {
    rtpengine = await startRtpengine(randomMediaRange());
  });
  afterAll(async () => {
    await rtpengine?.stop();
  });

  it('into SIPp echoing RTP: every step timed, PCMU, audio both ways, DTMF echoed, the user hangs up → BYE', async () => {
    const pbx = await sippPbx('cli-uas-echo.xml', true);
    const { path } = await configFor(pbx);
    const run = await runCli(['simulate', '--config', path, '--to', '600', '--duration', '4', '--tone', '800'], {});
    const out = run.stdout;
    expect(run.code, `${out}\n${run.stderr}`).toBe(0);
    expect(out).toMatch(/Graph API → the built-in WhatsApp simulator .*webhook secret → the simulator's/);
    expectOrdered(steps(out), [
      /^connect webhook delivered \(signed; the bridge answered HTTP 200\)$/,
      /^INVITE sent → sip:600@127\.0\.0\.3:\d+ \(Call-ID /,
      /^ringing: 180 Ringing$/,
      /^PBX answered 200 OK, codec PCMU\/8000$/,
      /^pre_accept → WhatsApp \(Graph answered 200\)$/,
      /^accept → WhatsApp \(Graph answered 200\)$/,
    ]);
    expect(steps(out)).toEqual(expect.arrayContaining([expect.stringMatching(/^DTLS up/), expect.stringMatching(/^first audio bridge → WhatsApp/)]));
    expect(out).toMatch(/✓ both ways: our 800 Hz tone came back from the PBX in \d+% of \d+ windows/);
    expect(out).toMatch(/✓ sent "5" as RFC 4733 telephone-event; the call survived/);
    expect(out).toContain('✓ the PBX received it: the event came back (echo)');
    expect(out).toMatch(/the simulated WhatsApp user hung up after \d+\.\d s; the bridge: caller-hung-up \(to WhatsApp: none, to the PBX: bye\)/);
    expect(out).toMatch(/^result: ✓ answered; audio crosses both ways$/m);
    // The PBX saw the call the way the report says: INVITE to extension 600, then the BYE.
    const result = await sipp!.exited;
    expect(result.code, result.errors).toBe(0);
    const received = sippMessages(result.messages).received;
    expect(received[0]).toMatch(/^INVITE sip:600@127\.0\.0\.3:\d+ SIP\/2\.0/);
    expect(received.some((m) => m.startsWith('BYE '))).toBe(true);
  });

  // The embedded engine (the default) has a known intermittent failure on a loaded machine: when
  // pre_accept reaches WhatsApp more than ~300 ms after ICE connected, the bridge's DTLS client
  // ends 'failed' although the WhatsApp peer completes its handshake (seen 2 in 4 runs at load
  // 15; rtpengine 0 in 8). simulate reports it ("! WhatsApp DTLS failed"); one retry keeps this
  // test about the command, and a second failure is still a failure.
  it('with media.engine embedded (the default): the same call, audio both ways', { retry: 1 }, async () => {
    const pbx = await sippPbx('cli-uas-echo.xml', true);
    const { path } = await configFor(pbx, { media: { engine: 'embedded', embedded: { rtpHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...randomMediaRange() } } });
    const run = await runCli(['simulate', '--config', path, '--duration', '3'], {});
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/PBX answered 200 OK, codec PCMU\/8000/);
    expect(run.stdout).toMatch(/✓ both ways: our 1000 Hz tone came back/);
  });

  it('into a PBX that answers but sends no audio: no audio back, exit code 1', async () => {
    const pbx = await sippPbx('sip-uas-answer-wait-bye.xml', false);
    const { path } = await configFor(pbx);
    const run = await runCli(['simulate', '--config', path, '--duration', '3', '--dtmf', 'none'], {});
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(1);
    // The bridge may fill WhatsApp's stream with silence (keep-alive) while the PBX sends nothing.
    expect(run.stdout).toMatch(/✗ PBX → WhatsApp: (no RTP at all|\d+ packets of silence)/);
    expect(run.stdout).not.toMatch(/both ways/);
    expect(run.stdout).toMatch(/^result: ✗ answered, but no audio came back from the PBX$/m);
  });

  it('into a PBX that answers 486: "rejected: busy", reject to WhatsApp, exit code 1', async () => {
    const pbx = await sippPbx('sip-uas-busy.xml', false);
    const { path } = await configFor(pbx);
    const run = await runCli(['simulate', '--config', path], {});
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(1);
    expectOrdered(steps(run.stdout), [/^INVITE sent/, /^ringing: 180 Ringing$/, /^PBX answered 486 Busy Here$/, /^reject → WhatsApp \(Graph answered 200\)$/]);
    expect(run.stdout).toMatch(/^result: ✗ rejected: busy \(486 Busy Here\)$/m);
  });

  it('into baresip as an echo extension: audio both ways, and baresip receives the DTMF digit', async () => {
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', echo: true, user: '600' });
    const { path } = await configFor(phone.sipUri);
    const run = await runCli(['simulate', '--config', path, '--duration', '4', '--dtmf', '7'], {});
    const out = run.stdout;
    expect(run.code, `${out}\n${run.stderr}`).toBe(0);
    expect(out).toMatch(/PBX answered 200 OK, codec PCMU\/8000/);
    expect(out).toMatch(/✓ both ways: our 1000 Hz tone came back from the PBX/);
    expect(out).toMatch(/✓ sent "7" as RFC 4733 telephone-event; the call survived/);
    // Where the PBX's side is observable, it got the digit (baresip logs received events).
    expect(phone.log()).toMatch(/received event: '7'/);
    expect(out).toMatch(/^result: ✓ answered; audio crosses both ways$/m);
  });

  it('--outbound: an echoing agent phone (SIPp) dials the printed URI; the simulated user answers; audio both ways', async () => {
    // baresip's aubridge echo does not loop audio when baresip places the call (its early
    // player never starts the bridge thread), so the agent here is SIPp with -rtp_echo.
    const { path } = await configFor('sip:unused@127.0.0.9', {
      outbound: { enabled: true, allowFrom: ['127.0.0.3/32'], dialPrefix: '9', phoneNumberId: '436666719526789' },
    });
    const agentPort = await freeDualPort('127.0.0.3');
    const mediaPort = await freePort('127.0.0.3');
    const run = await runCli(['simulate', '--outbound', '--config', path, '--to', '5511987654321', '--wait', '30', '--duration', '4'], {}, 90_000, (soFar) => {
      const m = /^dial sip:(\d+)@([\d.]+:\d+) from an agent phone/m.exec(soFar);
      if (m && !sipp) {
        sipp = startSipp({ scenario: 'cli-uac-echo.xml', ip: '127.0.0.3', port: agentPort, remote: m[2], timeoutSec: 60, args: ['-s', m[1]!, '-mi', '127.0.0.3', '-mp', String(mediaPort), '-rtp_echo'] });
      }
    });
    const out = run.stdout;
    expect(out).toMatch(/^dial sip:95511987654321@127\.0\.0\.1:\d+ from an agent phone within 30 s$/m);
    expect(run.code, `${out}\n${run.stderr}`).toBe(0);
    expectOrdered(steps(out), [/^INVITE from the agent \(offers PCMU\/8000 first\)$/, /^connect → WhatsApp \(Graph answered 200\)$/, /^WhatsApp → bridge: status RINGING webhook/, /^WhatsApp → bridge: connect webhook/]);
    expect(out).toMatch(/200 OK to the agent, codec PCMU\/8000/);
    expect(out).toMatch(/✓ both ways: our 1000 Hz tone came back/);
    expect(out).toMatch(/the simulated WhatsApp user hung up after \d+\.\d s; the bridge: user-hung-up/);
    expect(out).toMatch(/^result: ✓ answered; audio crosses both ways$/m);
    const result = await sipp!.exited;
    expect(result.code, result.errors).toBe(0);
  });
});
