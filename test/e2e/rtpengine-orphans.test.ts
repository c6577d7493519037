import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { NgClient } from '../../src/media/rtpengine/ng-client.js';
import type { OrphanSweeper } from '../../src/media/rtpengine/orphans.js';
import { createRtpengineEngine } from '../../src/media/rtpengine/index.js';
import type { MediaEngine } from '../../src/media/types.js';
import { WhatsAppMediaPeer } from '../../src/simulator/webrtc-peer.js';
import { silentLogger } from '../../src/util/log.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';
import { describeWithPeers } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

/**
 * Overload must not leave media sessions up that no call owns. A real rtpengine is frozen
 * (SIGSTOP) while the bridge's offer waits in its ng socket; a flood of junk datagrams then fills
 * that socket, so the delete the bridge sends when the offer times out is lost (as under a burst
 * of set-ups). When rtpengine runs again it carries out the offer: without the orphan sweeper,
 * that session stays up, unowned, until rtpengine's own timeout.
 */
let rtpengine: RtpengineDaemon;
let engine: MediaEngine | undefined;
let peer: WhatsAppMediaPeer | undefined;

describeWithPeers('rtpengine sessions no call owns are deleted (real rtpengine, frozen and flooded)', ['rtpengine'], () => {
  beforeAll(async () => {
    rtpengine = await startRtpengine(randomMediaRange());
  }, 30_000);

  afterAll(async () => {
    process.kill(rtpengine.pid, 'SIGCONT');
    await engine?.close();
    await peer?.close();
    await rtpengine?.stop();
  });

  it('an offer that timed out while rtpengine was frozen, its deletes lost in a full queue: rtpengine carries it out later, and it is deleted', async () => {
    engine = await createRtpengineEngine({ ng: [rtpengine.ng], timeoutMs: 400, logger: silentLogger(), orphans: { intervalMs: 300, keepMs: 20_000 } });
    const inner = engine as unknown as { ng: NgClient; orphans: OrphanSweeper };
    const flood = createSocket('udp4');
    // Large datagrams fill the queue, one-byte ones take the last room a small delete would fit in.
    const [big, tiny] = [Buffer.alloc(1200, 'x'), Buffer.alloc(1, 'x')];
    const port = rtpengine.ng.port;
    const burst = (n: number): void => {
      for (let i = 0; i < n; i++) flood.send(big, port, rtpengine.ng.host);
      for (let i = 0; i < n; i++) flood.send(tiny, port, rtpengine.ng.host);
    };
    let flooding = true;
    // Know when the offer has left for rtpengine (and is queued in its frozen socket). While the
    // flood lasts, a burst goes just ahead of each delete (sends leave in call order), so the
    // delete meets a queue already over its limit, as in a burst of set-ups.
    let offerSent!: () => void;
    const sent = new Promise<void>((resolve) => (offerSent = resolve));
    const request = inner.ng.request.bind(inner.ng);
    const deletes: number[] = [];
    inner.ng.request = (target, command, params) => {
      if (command === 'offer') setImmediate(offerSent);
      if (command === 'delete') {
        if (flooding) burst(50);
        deletes.push(performance.now());
      }
      return request(target, command, params);
    };

    peer = new WhatsAppMediaPeer({ toneHz: 1000 });
    const session = engine.createSession(`orphan-${Date.now()}`);
    process.kill(rtpengine.pid, 'SIGSTOP');
    const offer = session.offerFromWhatsApp(await peer.createOffer()).then(
      () => 'answered',
      (err: unknown) => (err as Error).message,
    );
    await sent;
    // Fill rtpengine's ng receive queue until the offer has timed out and its first delete is sent.
    const pump = (): void => {
      if (!flooding) return;
      burst(200);
      setTimeout(pump, 5);
    };
    pump();
    expect(await offer).toMatch(/no reply within 400 ms/);
    // The first delete goes out with the timeout, into the full queue, and so do the sweeper's
    // next two (an overload lasting longer than two ng timeouts); then rtpengine runs again.
    await waitFor(() => deletes.length >= 3, { what: 'three deletes of the timed-out offer, lost in the full queue' });
    // One turn of the event loop: the datagrams queued with the delete (dgram sends leave on the
    // next tick) are on the wire before rtpengine runs again.
    await new Promise((resolve) => setImmediate(resolve));
    flooding = false;
    process.kill(rtpengine.pid, 'SIGCONT');

    // rtpengine works through its queue (the offer, then the junk), the sweeper deletes again.
    await waitFor(() => inner.orphans.deleted === 1, { what: 'the sweeper to delete the session rtpengine created late', timeoutMs: 15_000 });
    expect(deletes.length).toBeGreaterThanOrEqual(4); // three lost in the full queue, then the one that worked
    expect(inner.orphans.pending).toBe(0);
    expect(await engine.listSessions()).not.toContain(session.callId);
    flood.close();
  }, 60_000);
});
