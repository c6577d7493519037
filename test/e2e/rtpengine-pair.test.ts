/**
 * Two real rtpengine daemons behind one bridge (`media.rtpengine.ng` lists both): new calls
 * spread over both; one killed mid-call ends its calls on both legs within seconds (WhatsApp
 * `terminate`, BYE to the PBX) while the other's carry on, and new calls go to the survivor.
 * Bridge 127.0.0.1, SIPp (the PBX, answering at once and holding until BYE) 127.0.0.3.
 */
import rtpengineClient from 'rtpengine-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import type { EndedCallRecord } from '../../src/bridge/bridge.js';
import { WhatsAppSimulator, type SimulatedUserCall } from '../../src/simulator/whatsapp.js';
import { silentLogger } from '../../src/util/log.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { freeDualPort } from '../harness/ports.js';
import { startLoopbackBridge } from '../support/bridge-config.js';
import { sippMessages, startSipp, stopAllSipp, type SippHandle } from '../harness/sipp.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

const CALLS = 4;

describeWithPeers('two rtpengines behind one bridge: spread and failover', ['rtpengine', 'sipp'], () => {
  let a: RtpengineDaemon;
  let b: RtpengineDaemon;
  let sim: WhatsAppSimulator;
  let app: RunningApp;
  let sipp: SippHandle;
  const ended: EndedCallRecord[] = [];
  const ng = new rtpengineClient.Client({ localAddress: '127.0.0.1', timeout: 1000 });

  /** The call-ids one daemon holds right now (its own ng `list`). */
  const listOn = async (d: RtpengineDaemon): Promise<string[]> => ((await ng.list(d.ng, { limit: 1000 }))['calls'] as string[]) ?? [];

  beforeAll(async () => {
    const rangeA = randomMediaRange();
    let rangeB = randomMediaRange();
    while (rangeB.portMin === rangeA.portMin) rangeB = randomMediaRange();
    [a, b] = await Promise.all([startRtpengine(rangeA), startRtpengine(rangeB)]);
    sim = await WhatsAppSimulator.start({ phoneNumberId: '1', businessNumber: '13175551399', accessToken: 't', appSecret: 's' });
    const pbxPort = await freeDualPort('127.0.0.3');
    // CALLS before the kill, two after; each held until the bridge (or the user) sends BYE.
    sipp = startSipp({ scenario: 'sip-uas-answer-wait-bye.xml', ip: '127.0.0.3', port: pbxPort, timeoutSec: 90, args: ['-m', String(CALLS + 2)] });
    ({ app } = await startLoopbackBridge(
      sim,
      {
        // A short ng timeout: the watchdog's missed pings (2 s apart) declare a dead one sooner.
        media: { engine: 'rtpengine', rtpengine: { ng: [a.ng, b.ng], timeoutMs: 500 } },
        rest: { calls: { maxSetupsPerSec: 100 }, routing: { default: `sip:pbx@127.0.0.3:${pbxPort}` } },
      },
      silentLogger(),
    ));
    app.bridge.onCallEnded((r) => ended.push(r));
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await sim?.close();
    stopAllSipp();
    ng.close();
    await a?.stop();
    await b?.stop();
  });

  async function placeCall(i: number): Promise<SimulatedUserCall> {
    const call = await sim.userCalls({ userWaId: `55119876500${i}` });
    expect(call.webhookStatus).toBe(200);
    await call.waitFor('accept', 15_000);
    return call;
  }

  it('spreads calls over both, fails a dead one over, and ends its calls on both legs', async () => {
    const calls: SimulatedUserCall[] = [];
    for (let i = 0; i < CALLS; i++) calls.push(await placeCall(i));
    const onA = await listOn(a);
    const onB = await listOn(b);
    // Round-robin: half the calls on each daemon, each call on exactly one.
    expect(onA).toHaveLength(CALLS / 2);
    expect(onB).toHaveLength(CALLS / 2);
    expect(new Set([...onA, ...onB])).toEqual(new Set(calls.map((c) => c.callId)));

    const killedAt = performance.now();
    await a.stop();
    // The watchdog misses two pings (500 ms timeout, 2 s apart), then every call on A ends.
    const endedOnA = () => ended.filter((r) => onA.includes(r.waCallId ?? ''));
    await waitFor(() => onA.every((id) => sim.actionsFor(id).includes('terminate')) && endedOnA().length === onA.length, {
      what: 'WhatsApp terminate and the end of every call on the killed rtpengine',
      timeoutMs: 15_000,
    });
    expect(performance.now() - killedAt).toBeLessThan(10_000);
    expect(endedOnA().map((r) => r.sip)).toEqual(onA.map(() => 'bye'));
    expect(endedOnA().map((r) => r.label)).toEqual(onA.map(() => expect.stringMatching(/media-engine-dead/)));
    // The survivor's calls carry on.
    for (const id of onB) {
      expect(sim.actionsFor(id)).not.toContain('terminate');
      expect(app.bridge.call(id)).toBeDefined();
    }
    expect((await listOn(b)).sort()).toEqual([...onB].sort());

    // New calls go to the survivor. Two, so that round-robin would have put one on A: A is
    // skipped, not tried first and waited for (an offer to it would take the 500 ms ng timeout).
    const late = [await placeCall(CALLS), await placeCall(CALLS + 1)];
    for (const c of late) {
      expect(await listOn(b)).toContain(c.callId);
      const t = app.bridge.call(c.callId)!.timings;
      expect(t.inviteSent! - t.connectReceived).toBeLessThan(500);
    }

    for (const c of [...calls.filter((c) => onB.includes(c.callId)), ...late]) await c.hangUp();
    await waitFor(() => app.bridge.activeCalls === 0, { what: 'every call to end after the users hang up', timeoutMs: 10_000 });
    const res = await sipp.exited;
    // Every call the PBX answered got its BYE: the killed engine's from the bridge, the rest after the users hung up.
    expect(sippMessages(res.messages).received.filter((m) => m.startsWith('BYE ')).length).toBe(CALLS + 2);
    expect(res.code).toBe(0);
    expect(await listOn(b)).toEqual([]);
  }, 90_000);
});
