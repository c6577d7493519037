import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import type { RunningApp } from '../../src/app.js';
import type { CallRecord } from '../../src/ops/cdr.js';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createLogger } from '../../src/util/log.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { startSipp, type SippHandle } from '../harness/sipp.js';
import { freeDualPort } from '../harness/ports.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';
import { startLoopbackBridge } from '../support/bridge-config.js';

/**
 * Operating the bridge, on real peers: the WhatsApp simulator → the bridge (embedded media) →
 * baresip (answers) or SIPp (busy). After one answered and one rejected call, /metrics holds the
 * counters and histogram counts, and the call-record file holds two records with their causes
 * and media stats. Then the live call view in a real browser (Debian's chromium): a call's
 * ladder shows its arrows, in order, while the call is up; a screenshot is kept as an artifact.
 */
const PHONE_NUMBER_ID = '436666719526790';
const BUSINESS = '13175551300';
const CALLER = '5511987650000';
const OTHER_CALLER = '4915112345678';
const SECRET = 'ops-secret';
const TOKEN = 'ops-token';
const ADMIN_TOKEN = 'admin-token-0123456789';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(import.meta.dirname, '../artifacts');

let sim: WhatsAppSimulator;
let app: RunningApp | undefined;
let phone: BaresipHandle | undefined;
let sipp: SippHandle | undefined;
let dir: string;
const log = createLogger({ level: 'silent' });

async function startBridge(target: string, rules: Array<{ callerPrefix: string; target: string }> = []): Promise<RunningApp> {
  ({ app } = await startLoopbackBridge(
    sim,
    {
      whatsapp: { phoneNumberIds: [PHONE_NUMBER_ID] },
      rest: {
        routing: { default: target, rules },
        ops: { cdr: { file: join(dir, 'calls.jsonl') }, admin: { tokens: [{ name: 'e2e', token: ADMIN_TOKEN }] } },
      },
    },
    log,
  ));
  return app;
}

const records = (): CallRecord[] => {
  try {
    return readFileSync(join(dir, 'calls.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as CallRecord);
  } catch {
    return [];
  }
};

/** The value of one sample line of the Prometheus text (0 when absent). */
function sample(text: string, line: string): number {
  const hit = text.split('\n').find((l) => l.startsWith(`${line} `));
  return hit ? Number(hit.slice(line.length + 1)) : 0;
}

describeWithPeers('operations: metrics, call records, live call view (simulator + baresip/SIPp, embedded media)', ['baresip', 'sipp', 'chromium'], () => {
  beforeAll(async () => {
    sim = await WhatsAppSimulator.start({ phoneNumberId: PHONE_NUMBER_ID, businessNumber: BUSINESS, accessToken: TOKEN, appSecret: SECRET });
  });

  afterEach(async () => {
    const [a, p, s] = [app, phone, sipp];
    [app, phone, sipp] = [undefined, undefined, undefined];
    s?.stop();
    await Promise.all([a?.close(), p?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  afterAll(async () => {
    await sim?.close();
  });

  it('after an answered and a rejected call: /metrics counts them, two call records hold their causes and media stats', async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasip-ops-'));
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    const port = await freeDualPort('127.0.0.3');
    sipp = startSipp({ scenario: 'sip-uas-busy.xml', ip: '127.0.0.3', port, timeoutSec: 30 });
    // One bridge for both calls: CALLER reaches the agent's phone, anyone else the busy PBX.
    await startBridge(`sip:support@127.0.0.3:${port}`, [{ callerPrefix: CALLER, target: phone.sipUri }]);

    // 1: answered, audio flows, the WhatsApp user hangs up.
    const answered = await sim.userCalls({ userWaId: CALLER, userName: 'Ana', toneHz: 1000 });
    await sim.graph.waitForAction((a) => a.action === 'accept' && a.callId === answered.callId, 15_000);
    await answered.peer.waitConnected(10_000);
    await waitFor(() => answered.peer.stats.rtpIn > 50 && answered.peer.stats.rtpOut > 50, { what: 'audio both ways', timeoutMs: 10_000 });
    await answered.hangUp();
    await waitFor(() => records().length === 1, { what: 'the first call record' });

    // 2: the PBX is busy → reject.
    const busy = await sim.userCalls({ userWaId: OTHER_CALLER });
    await sim.graph.waitForAction((a) => a.action === 'reject' && a.callId === busy.callId, 10_000);
    await waitFor(() => records().length === 2, { what: 'the second call record' });

    const [a, b] = records();
    expect(a).toMatchObject({ direction: 'inbound', waCallId: answered.callId, outcome: 'answered', cause: 'caller-hung-up', whatsappUser: CALLER, phoneNumberId: PHONE_NUMBER_ID, whatsappEnd: { action: 'none' }, sipEnd: { message: 'bye' } });
    expect(a!.sipCallId).toMatch(/.+/);
    expect(Date.parse(a!.answeredAt!)).toBeGreaterThanOrEqual(Date.parse(a!.receivedAt));
    expect(Date.parse(a!.endedAt)).toBeGreaterThan(Date.parse(a!.answeredAt!));
    expect(a!.durationSec).toBeGreaterThan(0);
    expect(a!.setupMs!['webhookToInvite']).toBeGreaterThanOrEqual(0);
    expect(a!.media!.engine).toBe('embedded');
    expect(a!.media!.whatsapp.packetsIn).toBeGreaterThan(25);
    expect(a!.media!.pbx.packetsIn).toBeGreaterThan(25);
    expect(a!.media!.whatsapp.lossRatio).toBeLessThan(0.05);
    expect(a!.media!.whatsapp.mos).toBeGreaterThanOrEqual(4);
    expect(b).toMatchObject({ waCallId: busy.callId, outcome: 'unanswered', cause: 'pbx-busy', whatsappUser: OTHER_CALLER, whatsappEnd: { action: 'reject' }, durationSec: 0 });
    expect(b!.answeredAt).toBeUndefined();

    // The same bridge's /metrics: both calls, each with its outcome and cause.
    const text = await (await fetch(`${app!.url}/metrics`)).text();
    expect(sample(text, 'wasip_calls_total{direction="inbound",outcome="answered",cause="caller-hung-up"}')).toBe(1);
    expect(sample(text, 'wasip_calls_total{direction="inbound",outcome="unanswered",cause="pbx-busy"}')).toBe(1);
    expect(sample(text, 'wasip_calls_active{direction="inbound"}')).toBe(0);
    expect(sample(text, 'wasip_setup_seconds_count{stage="webhook_to_invite"}')).toBe(2);
    expect(sample(text, 'wasip_setup_seconds_count{stage="pbx_answer_to_accept"}')).toBe(1);
    expect(sample(text, 'wasip_graph_requests_total{action="accept",result="ok"}')).toBe(1);
    expect(sample(text, 'wasip_graph_requests_total{action="reject",result="ok"}')).toBe(1);
    expect(sample(text, 'wasip_sip_messages_total{direction="in",method="INVITE",code="486"}')).toBe(1);
    expect(sample(text, 'wasip_sip_messages_total{direction="in",method="INVITE",code="200"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'wasip_webhooks_total{outcome="accepted"}')).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'wasip_media_packets_total{engine="embedded",leg="whatsapp",direction="in"}')).toBeGreaterThan(25);
    expect(text).toContain('wasip_nodejs_eventloop_lag_p99_seconds');
    expect((await sipp.exited).code).toBe(0);
  }, 60_000);

  it('the live call view draws the call as a ladder, arrows in order, updating while the call is up', async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasip-ops-'));
    phone = await startBaresip({ sipAddress: '127.0.0.2', answerMode: 'auto', toneHz: 440 });
    await startBridge(phone.sipUri);
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      await page.goto(`${app!.url}/admin/`);
      await page.fill('#token', ADMIN_TOKEN);
      await page.click('button[type=submit]');
      await page.waitForSelector('#ladder');

      const call = await sim.userCalls({ userWaId: CALLER, userName: 'Ana', toneHz: 1000 });
      await sim.graph.waitForAction((a) => a.action === 'accept' && a.callId === call.callId, 15_000);
      // The call appears in the list live (SSE) and is selected; its ladder fills in as it goes.
      await page.waitForSelector('#active .call', { timeout: 10_000 });
      await page.click('#active .call');
      const labels = async () => page.$$eval('#ladder g.arrow', (gs) => gs.map((g) => g.getAttribute('data-label') ?? ''));
      await waitFor(async () => (await labels()).includes('accept: ok'), { what: 'the accept arrow on the ladder', timeoutMs: 10_000 });
      const seen = await labels();
      const order = ['connect', 'INVITE', '200 (INVITE)', 'pre_accept', 'accept', 'accept: ok'];
      // Media milestones are on the same ladder (their order against signalling varies).
      await waitFor(async () => (await labels()).includes('first RTP from WhatsApp'), { what: 'the media milestones', timeoutMs: 10_000 });
      expect((await labels()).some((l) => l.startsWith('ICE + DTLS up'))).toBe(true);
      const at = order.map((l) => seen.indexOf(l));
      expect(at.every((i) => i >= 0), `ladder: ${seen.join(' | ')}`).toBe(true);
      expect([...at].sort((x, y) => x - y)).toEqual(at);
      // A click on an arrow shows the message, with media keys redacted.
      await page.click('#ladder g.arrow[data-label="INVITE"]');
      const body = await page.textContent('#body');
      expect(body).toContain('INVITE sip:');
      await page.click('#ladder g.arrow[data-label="pre_accept"]');
      expect(await page.textContent('#body')).toContain('a=ice-pwd:[redacted]');
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'callview.png'), fullPage: true });

      await call.hangUp();
      await page.waitForSelector('#recent .call', { timeout: 10_000 });
    } finally {
      await browser?.close();
    }
  }, 60_000);
});
