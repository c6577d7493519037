/**
 * The baresip harness itself: two real baresip phones on 127.0.0.2 / 127.0.0.3 call each
 * other over loopback; each must hear the other's tone (and not mainly its own).
 */
import { afterEach, expect, it } from 'vitest';
import { hasTone, toneWindows } from '../../src/media/audio/tone.js';
import { describeWithPeers } from '../support/peers.js';
import { baresipSkipReason, startBaresip, type BaresipHandle } from '../harness/baresip.js';
import { sleep, waitFor } from '../support/wait.js';

const skipReason = baresipSkipReason();


describeWithPeers('baresip harness', ['baresip'], () => {
  const started: BaresipHandle[] = [];
  const start = async (...args: Parameters<typeof startBaresip>): Promise<BaresipHandle> => {
    const h = await startBaresip(...args);
    started.push(h);
    return h;
  };

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') {
      for (const h of started) console.error(`--- baresip ${h.sipUri} log ---\n${h.log().slice(-4000)}`);
    }
    await Promise.all(started.splice(0).map((h) => h.stop()));
  });

  it('auto-answer call: each side records the other side\'s tone; hangup closes the far end', async () => {
    const a = await start({ sipAddress: '127.0.0.2', user: '1001', answerMode: 'auto', toneHz: 440 });
    const b = await start({ sipAddress: '127.0.0.3', user: '1002', answerMode: 'manual', toneHz: 1000 });

    await b.dial(a.sipUri);
    await Promise.all([a.events.waitFor('CALL_ESTABLISHED', 10_000), b.events.waitFor('CALL_ESTABLISHED', 10_000)]);
    // Both recordings hold 2.2 s (the 200 ms skipped below, and 2 s to analyse).
    for (const side of [a, b]) {
      await waitFor(async () => {
        const rec = await side.recordedPcm();
        return rec.samples.length >= rec.sampleRate * 2.2;
      }, { what: `2.2 s of audio recorded by ${side.sipUri}`, intervalMs: 100 });
    }

    for (const [side, heard, own] of [
      [a, 1000, 440],
      [b, 440, 1000],
    ] as const) {
      const rec = await side.recordedPcm();
      expect(rec.sampleRate).toBe(8000);
      // Recording starts with the first RTP packet received; skip the first 200 ms.
      const win = rec.samples.subarray(Math.round(rec.sampleRate * 0.2));
      expect(win.length / rec.sampleRate).toBeGreaterThan(1.5);
      const other = toneWindows(win, heard, rec.sampleRate);
      const self = toneWindows(win, own, rec.sampleRate);
      expect(hasTone(win, heard, rec.sampleRate, { minShare: 0.9 }), `${side.sipUri} hears ${heard} Hz: ${JSON.stringify(other)}`).toBe(true);
      expect(self.share, `${side.sipUri} must not hear its own ${own} Hz: ${JSON.stringify(self)}`).toBeLessThan(0.1);
      // The sent file is the own tone (sanity check of which file is which).
      const sent = await side.sentPcm();
      expect(hasTone(sent.samples.subarray(1600), own, sent.sampleRate, { minShare: 0.9 })).toBe(true);
    }

    await b.hangup();
    const closed = await a.events.waitFor('CALL_CLOSED', 10_000);
    expect(closed.direction).toBe('incoming');
    await b.events.waitFor('CALL_CLOSED', 5_000);
  });

  it('manual answer mode rings (CALL_INCOMING) and accept() establishes', async () => {
    const a = await start({ sipAddress: '127.0.0.2', answerMode: 'manual', toneHz: 440 });
    const b = await start({ sipAddress: '127.0.0.3', user: '1002', answerMode: 'manual', toneHz: 1000 });

    await b.dial(a.sipUri);
    const incoming = await a.events.waitFor('CALL_INCOMING', 10_000);
    expect(incoming.peeruri).toContain('1002@127.0.0.3');
    await b.events.waitFor('CALL_RINGING', 5_000);
    // Still ringing: nobody answered. An answer would come within milliseconds on loopback (the
    // auto-answer test shows it); 700 ms bounds "it did not".
    await sleep(700);
    expect(a.events.all.some((e) => e.type === 'CALL_ESTABLISHED')).toBe(false);
    expect(b.events.all.some((e) => e.type === 'CALL_ESTABLISHED')).toBe(false);

    await a.accept();
    await Promise.all([a.events.waitFor('CALL_ESTABLISHED', 10_000), b.events.waitFor('CALL_ESTABLISHED', 10_000)]);

    await a.hangup();
    await b.events.waitFor('CALL_CLOSED', 10_000);
  });

  it('answerDelayMs delays the automatic answer', async () => {
    const a = await start({ sipAddress: '127.0.0.2', answerMode: 'auto', answerDelayMs: 1000 });
    const b = await start({ sipAddress: '127.0.0.3', user: '1002', answerMode: 'manual' });
    const t0 = Date.now();
    await b.dial(a.sipUri);
    const est = await b.events.waitFor('CALL_ESTABLISHED', 10_000);
    expect(est.at - t0).toBeGreaterThanOrEqual(900);
    await b.hangup();
    await a.events.waitFor('CALL_CLOSED', 10_000);
  });
}, skipReason);
