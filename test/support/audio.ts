/**
 * The two-way audio check the media suites share: the PBX side and the WhatsApp side each send
 * their tone; each must hear the other's, over a measured window, and not its own.
 */
import { expect } from 'vitest';
import type { toneWindows } from '../../src/media/audio/tone.js';
import { sleep, waitFor } from './wait.js';

type Windows = ReturnType<typeof toneWindows>;

/** What both a PlainRtpEndpoint/RtpEndpoint and the simulator's WhatsAppMediaPeer offer. */
export interface ToneParty {
  startMedia(): void;
  clearReceived(): void;
  toneWindows(freqHz: number, opts?: Parameters<typeof toneWindows>[3]): Windows;
}

/** 100 ms windows of the other side's tone that mark a path as flowing (codecs settled). */
const SETTLED_WINDOWS = 4;
/** The measurement window; ~1.5 s of it must arrive (loss check against the clock). */
const WINDOW_MS = 1600;
const MIN_WINDOWS = 14;

/** Wait until `party` has heard `freqHz` in a few 100 ms windows (its path carries audio). */
export async function waitForTone(party: Pick<ToneParty, 'toneWindows'>, freqHz: number, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => party.toneWindows(freqHz).matching >= SETTLED_WINDOWS, { what: `${what} to hear ${freqHz} Hz`, timeoutMs, intervalMs: 50 });
}

/**
 * Both sides start their tone; once each hears the other (transcoders settled), both drop what
 * they heard and listen for WINDOW_MS of wall time. Returns what each heard of the other's tone.
 */
export async function exchangeTones(pbx: ToneParty, peer: ToneParty, tones: { pbxHears: number; peerHears: number }): Promise<{ atPbx: Windows; atPeer: Windows }> {
  pbx.startMedia();
  peer.startMedia();
  await Promise.all([waitForTone(pbx, tones.pbxHears, 'the PBX'), waitForTone(peer, tones.peerHears, 'the WhatsApp peer')]);
  pbx.clearReceived();
  peer.clearReceived();
  // A measurement window against the clock: how much audio arrives in it is the loss check.
  await sleep(WINDOW_MS);
  return { atPbx: pbx.toneWindows(tones.pbxHears), atPeer: peer.toneWindows(tones.peerHears) };
}

/**
 * Two-way audio: each side received ~1.5 s of audio in 1.6 s, hears the other's tone in at
 * least `minShare` of its 100 ms windows, and does not hear its own (no echo or loop).
 */
export async function expectTwoWayAudio(
  pbx: ToneParty,
  peer: ToneParty,
  tones: { pbxHears: number; peerHears: number; minShare?: number },
): Promise<{ atPbx: Windows; atPeer: Windows }> {
  const minShare = tones.minShare ?? 0.8;
  const { atPbx, atPeer } = await exchangeTones(pbx, peer, tones);
  expect(atPbx.windows, 'PBX received ~1.5 s of audio').toBeGreaterThanOrEqual(MIN_WINDOWS);
  expect(atPeer.windows, 'peer received ~1.5 s of audio').toBeGreaterThanOrEqual(MIN_WINDOWS);
  expect(atPbx.share, `PBX hears ${tones.pbxHears} Hz ${JSON.stringify(atPbx)}`).toBeGreaterThanOrEqual(minShare);
  expect(atPeer.share, `peer hears ${tones.peerHears} Hz ${JSON.stringify(atPeer)}`).toBeGreaterThanOrEqual(minShare);
  if (tones.pbxHears !== tones.peerHears) {
    expect(pbx.toneWindows(tones.peerHears).share, 'the PBX does not hear its own tone').toBeLessThan(0.2);
    expect(peer.toneWindows(tones.pbxHears).share, 'the peer does not hear its own tone').toBeLessThan(0.2);
  }
  return { atPbx, atPeer };
}
