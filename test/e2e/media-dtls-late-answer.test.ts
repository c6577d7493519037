/**
 * The embedded engine's DTLS when WhatsApp gets the business's answer late.
 *
 * On an inbound call the bridge answers `a=setup:active` (it is the DTLS client) and werift sends
 * its ClientHello as soon as ICE is up, but WhatsApp only learns the answer (our ICE credentials
 * and DTLS fingerprint) when Graph `pre_accept` reaches it: a slow Graph, a retried pre_accept
 * or a busy machine make that seconds. Here the simulator peer (werift, ICE-lite, DTLS server)
 * gets the answer a fixed time after the bridge's DTLS started (the delay is the scenario, not a
 * wait), and either replays the ClientHellos that came before its DTLS side existed (several
 * copies: werift used to fail on the second HelloVerifyRequest) or drops them (the bridge's
 * retransmission must carry the handshake). A peer that never answers, or answers with another
 * certificate than its fingerprint, must still fail the leg, within a bounded time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'sdp-transform';
import type { EmbeddedEngine } from '../../src/media/embedded/index.js';
import { DTLS_HANDSHAKE_TIMEOUT_MS } from '../../src/media/embedded/dtls-guard.js';
import type { EmbeddedSession } from '../../src/media/embedded/session.js';
import { WhatsAppMediaPeer, type WhatsAppMediaPeerOptions } from '../../src/simulator/webrtc-peer.js';
import { RtpEndpoint } from '../harness/rtp-endpoint.js';
import { exchangeTones } from '../support/audio.js';
import { loopbackEmbeddedEngine } from '../support/embedded.js';
import { sleep, waitFor } from '../support/wait.js';

const MIN_SHARE = 0.8;
/**
 * 100 ms windows each side must receive in the 1.6 s measurement window: media flows, with room
 * for the loss a heavily loaded 2-core machine causes (the engine, both codecs and the peer share
 * this process); loss itself is media-embedded.test.ts's concern, the handshake is this file's.
 */
const MIN_WINDOWS = 5;
/** Windows received (PBX/peer) per call, printed at the end. */
const received: string[] = [];

/** Both sides play their tone; each must hear the other's (the WhatsApp leg carries SRTP both ways). */
async function expectAudioBothWays(pbx: RtpEndpoint, peer: WhatsAppMediaPeer): Promise<void> {
  const { atPbx, atPeer } = await exchangeTones(pbx, peer, { pbxHears: 1000, peerHears: 440 });
  received.push(`${atPbx.windows}/${atPeer.windows}`);
  expect(atPbx.windows, `PBX received audio ${JSON.stringify(atPbx)}`).toBeGreaterThanOrEqual(MIN_WINDOWS);
  expect(atPeer.windows, `peer received audio ${JSON.stringify(atPeer)}`).toBeGreaterThanOrEqual(MIN_WINDOWS);
  expect(atPbx.share, `PBX hears 1000 Hz ${JSON.stringify(atPbx)}`).toBeGreaterThanOrEqual(MIN_SHARE);
  expect(atPeer.share, `peer hears 440 Hz ${JSON.stringify(atPeer)}`).toBeGreaterThanOrEqual(MIN_SHARE);
}

interface Inbound {
  peer: WhatsAppMediaPeer;
  pbx: RtpEndpoint;
  session: EmbeddedSession;
  waAnswer: string;
  /** performance.now() when the bridge's DTLS started (ICE up, ClientHello on its way). */
  dtlsStartedAt: number;
}

describe('embedded engine: DTLS when WhatsApp gets our answer late', () => {
  let engine: EmbeddedEngine;
  const open: Array<{ peer: WhatsAppMediaPeer; pbx: RtpEndpoint; session: EmbeddedSession }> = [];

  beforeAll(async () => {
    engine = await loopbackEmbeddedEngine();
  });

  afterAll(async () => {
    for (const c of open.splice(0)) await teardown(c);
    await engine?.close();
    if (received.length) console.info(`[media-dtls-late-answer] 100 ms windows received PBX/peer: ${received.join(' ')}`);
  });

  async function teardown(c: { peer: WhatsAppMediaPeer; pbx: RtpEndpoint; session: EmbeddedSession }): Promise<void> {
    await c.peer.close();
    await c.pbx.close();
    await c.session.close();
  }

  /** What the bridge's DTLS guard did (test-only look into the session's WhatsApp leg). */
  function guardOf(session: EmbeddedSession): { duplicateHelloVerify: number; timedOut: boolean } | undefined {
    return (session as unknown as { wa?: { dtlsGuard?: { duplicateHelloVerify: number; timedOut: boolean } } }).wa?.dtlsGuard;
  }

  /**
   * An inbound call up to the point where the bridge has answered and its DTLS client started,
   * the peer not yet having the answer (pre_accept still on its way). `tamperOffer` edits the
   * peer's offer before the bridge sees it.
   */
  async function inboundUntilDtlsStarts(name: string, peerOpts: WhatsAppMediaPeerOptions = {}, tamperOffer?: (sdp: string) => string): Promise<Inbound> {
    const peer = new WhatsAppMediaPeer({ toneHz: 1000, ...peerOpts });
    const pbx = await RtpEndpoint.create({ codec: 'PCMU', toneHz: 440 });
    const session = engine.createSession(`${name}-${Date.now()}`) as EmbeddedSession;
    open.push({ peer, pbx, session });
    const offer = await peer.createOffer();
    const plainOffer = await session.offerFromWhatsApp(tamperOffer ? tamperOffer(offer) : offer);
    const waAnswer = await session.answerFromPbx(pbx.answer(plainOffer));
    expect(parse(waAnswer).media[0]!.setup).toBe('active');
    await waitFor(() => session.stats.dtlsState !== 'new', { what: "the bridge's DTLS to start (ICE connected)", timeoutMs: 15_000, intervalMs: 5 });
    const dtlsStartedAt = performance.now();
    expect(session.stats.dtlsState).toBe('connecting');
    return { peer, pbx, session, waAnswer, dtlsStartedAt };
  }

  async function close(c: Inbound): Promise<void> {
    open.splice(
      open.findIndex((o) => o.session === c.session),
      1,
    );
    await teardown(c);
  }

  for (const earlyDtls of ['replay', 'drop'] as const) {
    for (const lateMs of [1000, 3000]) {
      it(`inbound, WhatsApp gets the answer ${lateMs} ms after our DTLS started (${earlyDtls}s early ClientHellos): audio both ways`, async () => {
        const c = await inboundUntilDtlsStarts(`late-${earlyDtls}-${lateMs}`, { earlyDtls });
        try {
          // The scenario: pre_accept reaches WhatsApp `lateMs` after our ClientHello went out.
          await sleep(lateMs - (performance.now() - c.dtlsStartedAt));
          await c.peer.applyAnswer(c.waAnswer);
          await c.peer.waitConnected(15_000);
          await waitFor(() => c.session.stats.dtlsState === 'connected' || c.session.stats.dtlsState === 'failed', {
            what: "the bridge's DTLS to settle",
            timeoutMs: 15_000,
          });
          expect(c.session.stats.dtlsState).toBe('connected');
          // The late case really happened: werift had resent its ClientHello before the peer listened.
          if (earlyDtls === 'replay') {
            expect(c.peer.stats.dtlsReplayed, 'ClientHellos replayed by the peer').toBeGreaterThanOrEqual(2);
            expect(guardOf(c.session)?.duplicateHelloVerify, 'repeated HelloVerifyRequests dropped').toBeGreaterThanOrEqual(1);
          } else {
            expect(c.peer.stats.dtlsDropped, 'ClientHellos dropped by the peer').toBeGreaterThanOrEqual(2);
          }
          expect(c.peer.dtlsRole).toBe('server');
          await expectAudioBothWays(c.pbx, c.peer);
        } finally {
          await close(c);
        }
      });
    }
  }

  it(`inbound, WhatsApp never answers DTLS: the leg fails after ~${DTLS_HANDSHAKE_TIMEOUT_MS / 1000} s`, async () => {
    const c = await inboundUntilDtlsStarts('never');
    try {
      // The peer never gets our answer: its DTLS side never starts.
      await waitFor(() => c.session.stats.dtlsState === 'failed', {
        what: "the bridge's DTLS to fail",
        timeoutMs: DTLS_HANDSHAKE_TIMEOUT_MS + 10_000,
        intervalMs: 100,
      });
      const elapsed = performance.now() - c.dtlsStartedAt;
      expect(elapsed, `failed after ${elapsed.toFixed(0)} ms`).toBeGreaterThanOrEqual(DTLS_HANDSHAKE_TIMEOUT_MS - 1000);
      expect(elapsed).toBeLessThan(DTLS_HANDSHAKE_TIMEOUT_MS + 10_000);
      expect(guardOf(c.session)?.timedOut).toBe(true);
      expect(c.session.stats.waIn).toBe(0);
    } finally {
      await close(c);
    }
  });

  it('inbound, WhatsApp answers late with a certificate that is not its fingerprint: the leg fails', async () => {
    // The bridge checks the peer's certificate against the offer's fingerprint: change one byte.
    const c = await inboundUntilDtlsStarts('bad-fp', {}, (sdp) =>
      sdp.replace(/^(a=fingerprint:sha-256 )([0-9A-F]{2})/im, (_m, p: string, b: string) => `${p}${b.toUpperCase() === '00' ? '01' : '00'}`),
    );
    try {
      await sleep(1000 - (performance.now() - c.dtlsStartedAt)); // the scenario: pre_accept 1 s late
      await c.peer.applyAnswer(c.waAnswer);
      await waitFor(() => c.session.stats.dtlsState === 'failed', { what: "the bridge's DTLS to fail on the fingerprint", timeoutMs: 15_000 });
      const elapsed = performance.now() - c.dtlsStartedAt;
      expect(elapsed, 'a fingerprint mismatch fails at once, not at the handshake timeout').toBeLessThan(DTLS_HANDSHAKE_TIMEOUT_MS / 2);
      expect(guardOf(c.session)?.timedOut).toBe(false);
    } finally {
      await close(c);
    }
  });

  // Outbound: WhatsApp has our offer before it answers, and ICE starts only once its answer
  // reaches the bridge (connect webhook), so there is no late-answer race; both DTLS roles are
  // checked to go through the guarded handshake, with the peer dropping anything early.
  for (const setup of ['active', 'passive'] as const) {
    it(`outbound, WhatsApp answers a=setup:${setup}, its answer reaching the bridge 1 s late: audio both ways`, async () => {
      const peer = new WhatsAppMediaPeer({ toneHz: 1000, earlyDtls: 'drop' });
      const pbx = await RtpEndpoint.create({ codec: 'PCMU', toneHz: 440 });
      const session = engine.createSession(`out-${setup}-${Date.now()}`) as EmbeddedSession;
      const c = { peer, pbx, session };
      open.push(c);
      try {
        const waOffer = await session.offerFromPbx(pbx.createOffer());
        const waAnswer = await peer.createAnswer(waOffer, { setup });
        await sleep(1000); // the scenario: the connect webhook reaches the bridge 1 s later
        pbx.applyAnswer(await session.answerFromWhatsApp(waAnswer));
        await peer.waitConnected(15_000);
        await waitFor(() => session.stats.dtlsState === 'connected', { what: "the bridge's DTLS to connect", timeoutMs: 15_000 });
        expect(peer.dtlsRole).toBe(setup === 'active' ? 'client' : 'server');
        await expectAudioBothWays(pbx, peer);
      } finally {
        open.splice(open.indexOf(c), 1);
        await teardown(c);
      }
    });
  }

  it('after everything: no session left', async () => {
    expect(await engine.listSessions()).toEqual([]);
  });
});
