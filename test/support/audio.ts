/**
 * The two-way audio check the media suites share: the PBX side and the WhatsApp side each send
 * their tone; each must hear the other's, over a measured window, and not its own.
 */
import { expect } from 'vitest';
import { toneWindows } from '../../src/media/audio/tone.js';
import { sleep, waitFor } from './wait.js';

type Windows = ReturnType<typeof toneWindows>;

/**
 * One side of a call that sends a tone and analyses what it hears: an RtpEndpoint and the
 * simulator's WhatsAppMediaPeer as they are, a baresip phone through `recordingParty`.
 */
export interface ToneParty {
  /** Start sending (absent: the party sends on its own, like a phone). */
  startMedia?(): void;
  /** Forget what was heard so far. */
  clearReceived(): void | Promise<void>;
  toneWindows(freqHz: number, opts?: Parameters<typeof toneWindows>[3]): Windows | Promise<Windows>;
}

/**
 * A party whose received audio is a growing recording (a baresip phone's `recordedPcm`):
 * `clearReceived` marks how far it got, and later analysis covers only what came after.
 */
export function recordingParty(read: () => Promise<{ samples: Int16Array; sampleRate: number }>): ToneParty {
  let from = 0;
  return {
    clearReceived: async () => {
      from = (await read()).samples.length;
    },
    toneWindows: async (freqHz, opts) => {
      const rec = await read();
      return toneWindows(rec.samples.subarray(Math.min(from, rec.samples.length)), freqHz, rec.sampleRate, opts);
    },
  };
}

/** 100 ms windows of the other side's tone that mark a path as flowing (codecs settled). */
const SETTLED_WINDOWS = 4;
/** The measurement window; ~1.5 s of it must arrive (loss check against the clock). */
const WINDOW_MS = 1600;
const MIN_WINDOWS = 14;

/** Wait until `party` has heard `freqHz` in a few 100 ms windows (its path carries audio). */
export async function waitForTone(party: Pick<ToneParty, 'toneWindows'>, freqHz: number, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => (await party.toneWindows(freqHz)).matching >= SETTLED_WINDOWS, { what: `${what} to hear ${freqHz} Hz`, timeoutMs, intervalMs: 50 });
}

/**
 * Both sides start their tone; once each hears the other (codecs settled), both drop what they
 * heard and listen for `windowMs` (default 1600) of wall time. Returns what each heard of the
 * other's tone over that window.
 */
export async function exchangeTones(
  pbx: ToneParty,
  peer: ToneParty,
  tones: { pbxHears: number; peerHears: number; windowMs?: number },
): Promise<{ atPbx: Windows; atPeer: Windows }> {
  pbx.startMedia?.();
  peer.startMedia?.();
  await Promise.all([waitForTone(pbx, tones.pbxHears, 'the PBX side'), waitForTone(peer, tones.peerHears, 'the WhatsApp side')]);
  await Promise.all([pbx.clearReceived(), peer.clearReceived()]);
  // A measurement window against the clock: how much audio arrives in it is the loss check.
  await sleep(tones.windowMs ?? WINDOW_MS);
  return { atPbx: await pbx.toneWindows(tones.pbxHears), atPeer: await peer.toneWindows(tones.peerHears) };
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
    expect((await pbx.toneWindows(tones.peerHears)).share, 'the PBX does not hear its own tone').toBeLessThan(0.2);
    expect((await peer.toneWindows(tones.pbxHears)).share, 'the peer does not hear its own tone').toBeLessThan(0.2);
  }
  return { atPbx, atPeer };
}
