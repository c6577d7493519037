import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app.js';
import { buildConfig } from '../../src/config/load.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { silentLogger } from '../../src/util/log.js';
import { freeUdpPort, randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { sippMessages, startSipp, type SippHandle } from '../harness/sipp.js';
import { freeDualPort } from '../harness/ports.js';
import { describeWithPeers } from '../support/peers.js';
import { fixOf, row, runCli, writeConfig } from './cli-helpers.js';

/**
 * `wa-sip-bridge check` run as a user runs it (a real process), against real peers: a PBX
 * (SIPp answering OPTIONS on 127.0.0.3), rtpengine down (a port nobody listens on) or up (a
 * real daemon), the simulator's Graph API for the token, and a running bridge for the webhook.
 */

const PHONE_NUMBER_ID = '436666719526789';
const TOKEN = 'check-e2e-token';
const SECRETS = { WA_ACCESS_TOKEN: TOKEN, WA_APP_SECRET: 'check-e2e-secret', WA_VERIFY_TOKEN: 'check-e2e-verify' };

let sim: WhatsAppSimulator;
let sipp: SippHandle | undefined;
let rtpengine: RtpengineDaemon | undefined;
let bridge: RunningApp | undefined;

async function pbxUp(): Promise<string> {
  const port = await freeDualPort('127.0.0.3');
  sipp = startSipp({ scenario: 'cli-uas-options.xml', ip: '127.0.0.3', port, timeoutSec: 60 });
  return `sip:queue@127.0.0.3:${port}`;
}

async function configFor(pbx: string, ng: { host: string; port: number }, extra: Record<string, unknown> = {}): Promise<string> {
  return writeConfig({
    whatsapp: { provider: 'meta', graphBaseUrl: sim.graphUrl, phoneNumberIds: [PHONE_NUMBER_ID] },
    sip: { udp: { host: '127.0.0.1', port: await freeDualPort('127.0.0.1') }, tcp: null },
    media: { engine: 'rtpengine', rtpengine: { ng: [ng], timeoutMs: 1000 } },
    routing: { default: pbx },
    check: { timeoutMs: 3000 },
    ...extra,
  });
}

/** A running bridge behind the "public" URL, for the verify handshake from outside in. */
async function startBridge(verifyToken: string): Promise<RunningApp> {
  return startApp(
    buildConfig({
      http: { host: '127.0.0.1', port: 0 },
      whatsapp: { provider: 'meta', graphBaseUrl: sim.graphUrl, accessToken: TOKEN, appSecret: SECRETS.WA_APP_SECRET, verifyToken },
      sip: { udp: { host: '127.0.0.1', port: await freeDualPort('127.0.0.1') }, tcp: null },
      media: { engine: 'embedded', embedded: { rtpHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...randomMediaRange() } },
    }),
    silentLogger(),
  );
}

describeWithPeers('wa-sip-bridge check (real process; SIPp, rtpengine, simulator Graph API)', ['sipp', 'rtpengine'], () => {
  beforeAll(async () => {
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: '13175551399', accessToken: TOKEN, appSecret: SECRETS.WA_APP_SECRET });
  });
  afterEach(async () => {
    sipp?.stop();
    sipp = undefined;
    await rtpengine?.stop();
    rtpengine = undefined;
    await bridge?.close();
    bridge = undefined;
  });
  afterAll(async () => {
    await sim?.close();
  });

  it('PBX up, rtpengine down: ✓ PBX, ✗ rtpengine with its fix, exit code 1', async () => {
    const pbx = await pbxUp();
    const deadNg = { host: '127.0.0.1', port: await freeUdpPort() }; // nobody listens there
    const run = await runCli(['check', '--config', await configFor(pbx, deadNg)], SECRETS);
    const out = run.stdout;
    expect(run.code, `${out}\n${run.stderr}`).toBe(1);
    expect(out).toMatch(/^✓ config: valid/m);
    expect(row(out, `PBX ${pbx} (default)`)).toMatch(/OPTIONS answered 200 OK in \d+ ms by SIPp-PBX/);
    expect(row(out, `rtpengine ${deadNg.host}:${deadNg.port}`)).toMatch(/^✗ .*no reply within 1000 ms/);
    expect(fixOf(out, `rtpengine ${deadNg.host}:${deadNg.port}`)).toBe(
      `fix: start rtpengine with --listen-ng=127.0.0.1:${deadNg.port} (media.rtpengine.ng must name its ng address), or set media.engine: embedded`,
    );
    expect(row(out, 'Graph token')).toMatch(/^✓ .*phone number id 436666719526789.*accepted \(HTTP 200\)/);
    expect(row(out, 'webhook signature secret')).toMatch(/^✓/);
    expect(out).toMatch(/^1 check failed$/m);
    // The PBX really got an OPTIONS (not a guess from a socket being open).
    const result = await sipp!.exited;
    expect(result.code, result.errors).toBe(0);
    expect(sippMessages(result.messages).received[0]).toMatch(/^OPTIONS sip:queue@127\.0\.0\.3:\d+ SIP\/2\.0/);
  });

  it('PBX and rtpengine up, token good, webhook reachable: all ✓, exit code 0', async () => {
    const pbx = await pbxUp();
    rtpengine = await startRtpengine(randomMediaRange());
    bridge = await startBridge(SECRETS.WA_VERIFY_TOKEN);
    const webhook = `${bridge.url}/webhook`;
    const run = await runCli(['check', '--config', await configFor(pbx, rtpengine.ng, { check: { publicWebhookUrl: webhook, timeoutMs: 3000 } })], SECRETS);
    const out = run.stdout;
    expect(run.code, `${out}\n${run.stderr}`).toBe(0);
    expect(row(out, `PBX ${pbx}`)).toMatch(/^✓ /);
    expect(row(out, `rtpengine ${rtpengine.ng.host}:${rtpengine.ng.port}`)).toMatch(/^✓ .*ng ping answered in \d+ ms/);
    expect(row(out, `webhook ${webhook}`)).toMatch(/^✓ .*verify handshake answered/);
    expect(out).not.toMatch(/^✗/m);
    expect(out).toMatch(/^all checks passed$/m);
  });

  it('a wrong token and a wrong verify token are ✗ with their fixes; nothing leaks the token', async () => {
    const pbx = await pbxUp();
    rtpengine = await startRtpengine(randomMediaRange());
    bridge = await startBridge('the-real-one');
    const webhook = `${bridge.url}/webhook`;
    const config = await configFor(pbx, rtpengine.ng, { check: { publicWebhookUrl: webhook, timeoutMs: 3000 } });
    const run = await runCli(['check', '--config', config], { ...SECRETS, WA_ACCESS_TOKEN: 'expired-token-xyz' });
    const out = run.stdout;
    expect(run.code).toBe(1);
    expect(row(out, 'Graph token')).toMatch(/^✗ .*refused \(HTTP 401\).*code 190/);
    expect(fixOf(out, 'Graph token')).toMatch(/WA_ACCESS_TOKEN is wrong or expired/);
    expect(row(out, `webhook ${webhook}`)).toMatch(/^✗ .*refused \(403\)/);
    expect(fixOf(out, `webhook ${webhook}`)).toMatch(/another WA_VERIFY_TOKEN/);
    expect(out).toMatch(/^2 checks failed$/m);
    expect(out + run.stderr).not.toContain('expired-token-xyz');
  });

  it('an invalid config: every problem at once, exit code 2, nothing probed', async () => {
    const path = writeConfig({ sip: { udp: { port: 'five' } }, routing: { default: 'not-a-uri' }, media: { engine: 'fast' } });
    const run = await runCli(['check', '--config', path], SECRETS);
    expect(run.code).toBe(2);
    expect(run.stdout).toMatch(/^✗ config .*: 3 problems$/m);
    expect(run.stdout).toContain('sip.udp.port');
    expect(run.stdout).toContain('routing.default');
    expect(run.stdout).toContain('media.engine');
    expect(run.stdout).not.toMatch(/PBX|rtpengine \d/);
  });
});
