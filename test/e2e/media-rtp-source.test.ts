/**
 * RTP from a third address during a call (issue 8, "media that only listens to its peer"), on
 * both engines. The attacker knows the engine's PBX-side port (it is in the SDP, and ports are
 * predictable) and sends its own tone there from another address for the whole exchange:
 * - WhatsApp does not hear it (tone detection on what the simulator peer decodes);
 * - nothing is relayed to the attacker (the engine does not re-latch to it);
 * - the call's own audio crosses both ways as usual.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedEngine, type EmbeddedEngine, type EmbeddedEngineOptions } from '../../src/media/embedded/index.js';
import { createRtpengineEngine } from '../../src/media/rtpengine/index.js';
import type { MediaEngine } from '../../src/media/types.js';
import { WhatsAppMediaPeer } from '../../src/simulator/webrtc-peer.js';
import { silentLogger } from '../../src/util/log.js';
import { RtpEndpoint } from '../harness/rtp-endpoint.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { describeWithPeers } from '../support/peers.js';

const WA_HZ = 1000;
const PBX_HZ = 440;
const ATTACKER_HZ = 2000;
/** Another loopback address than the engines' and the PBX's 127.0.0.1: a different host. */
const ATTACKER_HOST = '127.0.0.2';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One call with an attacker sending to the PBX-side port; what each party heard. */
async function callWithAttacker(
  engine: MediaEngine,
  name: string,
  opts: { beforeClose?: (callId: string) => void; learningMs?: number } = {},
) {
  const peer = new WhatsAppMediaPeer({ toneHz: WA_HZ });
  const pbx = await RtpEndpoint.create({ codec: 'PCMU', toneHz: PBX_HZ });
  const attacker = await RtpEndpoint.create({ codec: 'PCMU', toneHz: ATTACKER_HZ, host: ATTACKER_HOST, amplitude: 0.5 });
  const session = engine.createSession(`${name}-${Date.now()}`);
  try {
    const plainOffer = await session.offerFromWhatsApp(await peer.createOffer());
    attacker.answer(plainOffer); // only to aim it at the engine's PBX-side port
    await peer.applyAnswer(await session.answerFromPbx(pbx.answer(plainOffer)));
    await peer.waitConnected(10_000);
    pbx.startMedia();
    peer.startMedia();
    // 500 ms for the call's media to settle (plus the engine's learning phase, if it has one),
    // then the attacker joins; what each party heard over the next 2 s is judged (bounded waits:
    // the exchange is the test).
    await sleep(500 + (opts.learningMs ?? 0));
    attacker.startMedia();
    pbx.clearReceived();
    peer.clearReceived();
    await sleep(2000);
    return {
      session,
      atPeer: { pbx: peer.toneWindows(PBX_HZ), attacker: peer.toneWindows(ATTACKER_HZ) },
      atPbx: pbx.toneWindows(WA_HZ),
      attackerSent: attacker.rtpOut,
      attackerGot: attacker.rtpIn,
      pbxSources: [...pbx.sources],
    };
  } finally {
    opts.beforeClose?.(session.callId);
    await peer.close();
    await pbx.close();
    await attacker.close();
    await session.close();
  }
}

function expectUnaffected(r: Awaited<ReturnType<typeof callWithAttacker>>): void {
  expect(r.attackerSent, 'the attacker did send').toBeGreaterThan(50);
  expect(r.atPeer.attacker.share, `WhatsApp must not hear the attacker ${JSON.stringify(r.atPeer.attacker)}`).toBeLessThan(0.2);
  expect(r.atPeer.pbx.share, `WhatsApp hears the PBX ${JSON.stringify(r.atPeer.pbx)}`).toBeGreaterThanOrEqual(0.8);
  expect(r.atPbx.share, `the PBX hears WhatsApp ${JSON.stringify(r.atPbx)}`).toBeGreaterThanOrEqual(0.8);
  expect(r.attackerGot, 'nothing is relayed to the attacker').toBe(0);
  expect(r.pbxSources.every((s) => s.startsWith('127.0.0.1:')), `PBX got media only from the engine: ${r.pbxSources.join(',')}`).toBe(true);
}

/** An embedded engine on loopback, its RTP sockets on every address (the attacker can reach them). */
async function embedded(pbxSource?: EmbeddedEngineOptions['pbxSource']): Promise<EmbeddedEngine> {
  const { portMin, portMax } = randomMediaRange();
  const opts = { rtpHost: '0.0.0.0', rtpAdvertiseHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], portMin, portMax, logger: silentLogger() };
  return (await createEmbeddedEngine(pbxSource ? { ...opts, pbxSource } : opts)) as EmbeddedEngine;
}

describe('RTP from a third address, embedded engine', () => {
  let engine: EmbeddedEngine;
  beforeAll(async () => {
    engine = await embedded({ mode: 'strict' });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('strict mode: dropped and counted, not heard, not relayed, the call unaffected', async () => {
    let dropped = -1;
    // The session's counters, read while it is still live.
    const r = await callWithAttacker(engine, 'rtp-source-embedded', { beforeClose: (id) => (dropped = engine.sessionStats(id)?.pbxDropped ?? -1) });
    expectUnaffected(r);
    expect(dropped, 'the attacker packets are counted').toBeGreaterThan(50);
  });

  it('learn mode (the default): the PBX is learned and locked with its SSRC; a third address inside the window is dropped', async () => {
    const learning = await embedded();
    try {
      expectUnaffected(await callWithAttacker(learning, 'rtp-source-learn'));
    } finally {
      await learning.close();
    }
  });
});

describeWithPeers('RTP from a third address, rtpengine', ['rtpengine'], () => {
  let daemon: RtpengineDaemon;
  let engine: MediaEngine;
  beforeAll(async () => {
    daemon = await startRtpengine({ ...randomMediaRange() });
    engine = await createRtpengineEngine({ ng: [daemon.ng], logger: silentLogger() });
  });
  afterAll(async () => {
    await engine?.close();
    await daemon?.stop();
  });

  /**
   * rtpengine 10.5 forwards every source during its learning phase (about 3 s from the first
   * packet) whatever the flags, and may send to the attacker then (measured: 76 packets with an
   * attacker starting 0.5 s in, with `endpoint-learning: heuristic`); this is a limit of
   * rtpengine, written in docs/architecture.md. After the phase `strict source` drops the
   * attacker: without the flag WhatsApp heard it in 36% of the windows.
   */
  it('is dropped after the learning phase (strict source): not heard, not relayed, the call unaffected', async () => {
    expectUnaffected(await callWithAttacker(engine, 'rtp-source-rtpengine', { learningMs: 3500 }));
  });
});
