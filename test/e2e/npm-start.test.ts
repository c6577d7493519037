import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { exchangeTones, recordingParty } from '../support/audio.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

/**
 * The README's run command, `npm start`, on its embedded defaults (webhooks on 8080, SIP on
 * 5060, embedded media, calls to sip:whatsapp@127.0.0.1:5080), with no rtpengine involved. The
 * only additions are what a real deployment adds too: secrets in the environment and a config
 * file pointing the Graph API at the WhatsApp simulator.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const SECRET = 'start-secret';
let bridge: ChildProcess | undefined;
let sim: WhatsAppSimulator;
let phone: BaresipHandle;
let dir: string;
let output = '';

/** GET /healthz of the started process. */
async function health(): Promise<{ status: number; body: any }> {
  const r = await fetch('http://127.0.0.1:8080/healthz');
  return { status: r.status, body: await r.json() };
}

describeWithPeers('npm start (README run command) on embedded defaults', ['baresip'], () => {
  beforeAll(async () => {
    sim = await WhatsAppSimulator.start({ phoneNumberId: '436666719526789', businessNumber: '13175551399', accessToken: 'tok', appSecret: SECRET });
    dir = mkdtempSync(join(tmpdir(), 'wa-start-'));
    writeFileSync(join(dir, 'bridge.yaml'), `whatsapp:\n  provider: meta\n  graphBaseUrl: ${sim.graphUrl}\nmedia:\n  embedded:\n    iceAddresses: [127.0.0.1]\n`);
    phone = await startBaresip({ sipAddress: '127.0.0.1', sipPort: 5080, user: 'whatsapp', answerMode: 'auto', toneHz: 440 });
    bridge = spawn('npm', ['start'], {
      cwd: ROOT,
      env: { ...process.env, WA_SIP_BRIDGE_CONFIG: join(dir, 'bridge.yaml'), WA_ACCESS_TOKEN: 'tok', WA_APP_SECRET: SECRET, WA_VERIFY_TOKEN: 'vt' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    bridge.stdout!.on('data', (d) => (output += d));
    bridge.stderr!.on('data', (d) => (output += d));
    sim.setWebhookUrl('http://127.0.0.1:8080/webhook');
  }, 90_000);

  afterAll(async () => {
    if (bridge?.pid) {
      const exited = new Promise((r) => bridge!.once('exit', r));
      try {
        process.kill(-bridge.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 8000))]); // then SIGKILL: a stop must not hang the suite
      try {
        process.kill(-bridge.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await phone?.stop();
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts with GET /healthz 200 and carries a simulated call with audio both ways', async () => {
    // Up when /healthz answers; a process that exited (e.g. a port taken) will never answer.
    const h = await waitFor(async () => (bridge!.exitCode !== null ? 'exited' : health()), { what: 'the bridge to answer /healthz', timeoutMs: 60_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${output}`);
    });
    if (h === 'exited') throw new Error(`npm start exited with code ${bridge!.exitCode} before serving:\n${output}`);
    expect(h.status, JSON.stringify(h.body)).toBe(200);
    expect(h.body.media).toMatchObject({ engine: 'embedded', ok: true });

    const call = await sim.userCalls({ userWaId: '5511987654321', userName: 'Ana', toneHz: 1000 });
    expect(call.webhookStatus).toBe(200);
    await call.waitFor('accept', 15_000);
    await phone.events.waitFor('CALL_ESTABLISHED', 10_000);
    await call.peer.waitConnected(5000);
    // The call's media runs in one of the embedded engine's worker threads (one per core by default; none on one core).
    if (availableParallelism() > 1) {
      type Detail = { workers: number; workersUp: number; sessionsPerWorker: number[] };
      const readyz = async () => ((await (await fetch('http://127.0.0.1:8080/readyz')).json()) as { media: { detail: Detail } }).media.detail;
      // /readyz probes the engine at most once a second: wait for a probe taken during the call.
      const d = await waitFor(async () => ((await readyz()).sessionsPerWorker.reduce((a, b) => a + b, 0) === 1 ? readyz() : undefined), { what: 'a worker to hold the call', timeoutMs: 5000 });
      expect(d.workers).toBe(availableParallelism());
      expect(d.workersUp).toBe(d.workers);
    }
    const { atPbx: atPhone, atPeer } = await exchangeTones(recordingParty(() => phone.recordedPcm()), call.peer, { pbxHears: 1000, peerHears: 440, windowMs: 2000 });
    expect(atPhone.share, output.slice(-3000)).toBeGreaterThan(0.7);
    expect(atPeer.share).toBeGreaterThan(0.7);
    await call.hangUp();
    await phone.events.waitFor('CALL_CLOSED', 5000);
    // The call has ended in the bridge: /healthz counts no active call, and WhatsApp got no
    // further action (the user hung up).
    await waitFor(async () => (await health()).body.activeCalls === 0, { what: 'the bridge to count no active call', timeoutMs: 5000 });
    expect(call.actions()).toEqual(['pre_accept', 'accept']);
  }, 120_000);
});
