/**
 * The media half of `simulate`, the same in both directions: once the simulated WhatsApp side
 * is answered, watch ICE/DTLS come up and the first packets each way, judge whether audio
 * crosses both ways (our tone coming back, e.g. from an echo extension), send a DTMF digit
 * (RFC 4733) and see whether the call survives it, then hang up at the end of `--duration`
 * unless the PBX ended the call first.
 */
import type { WhatsAppMediaPeer } from '../simulator/webrtc-peer.js';
import { rms } from '../media/audio/tone.js';
import { ms, until } from './common.js';

export interface Step {
  at: number;
  text: string;
}

/** The report being built: timed set-up steps, then sections of ✓/✗ lines. */
export class Report {
  readonly steps: Step[] = [];
  readonly lines: string[] = [];

  step(at: number | undefined, text: string): void {
    if (at !== undefined) this.steps.push({ at, text });
  }

  line(text: string): void {
    this.lines.push(text);
  }

  /** Where the set-up's time zero is, for the heading. */
  origin = 'the connect webhook reached the bridge';

  print(out: (l: string) => void, t0: number): void {
    out(`set-up (ms after ${this.origin}):`);
    for (const s of [...this.steps].sort((a, b) => a.at - b.at)) out(`  ${String(Math.round(s.at - t0)).padStart(6)} ms  ${s.text}`);
    for (const l of this.lines) out(l);
  }
}

export interface MediaOptions {
  toneHz: number;
  durationSec: number;
  /** One DTMF digit to send, or undefined for none. */
  dtmf: string | undefined;
}

/** The simulated WhatsApp side of one answered call. */
export interface WhatsAppLeg {
  peer(): WhatsAppMediaPeer | undefined;
  /** Whether the bridge ended the WhatsApp side (terminate): the PBX or the bridge hung up. */
  endedByBridge(): boolean;
  /** The simulated user hangs up (terminate webhook). */
  hangUp(): Promise<unknown>;
}

/** First times the simulated peer reached each media milestone, sampled every 5 ms. */
export class MediaSampler {
  readonly first = new Map<'ice' | 'dtls' | 'out' | 'in', number>();
  private readonly timer: NodeJS.Timeout;

  constructor(peer: () => WhatsAppMediaPeer | undefined) {
    this.timer = setInterval(() => {
      const p = peer();
      if (!p) return;
      const now = performance.now();
      const seen = (k: 'ice' | 'dtls' | 'out' | 'in', cond: boolean): void => {
        if (cond && !this.first.has(k)) this.first.set(k, now);
      };
      seen('ice', p.iceState === 'connected' || p.iceState === 'completed');
      seen('dtls', p.dtlsState === 'connected');
      seen('out', p.dtlsState === 'connected' && p.stats.rtpOut > 0); // before DTLS, frames go nowhere
      seen('in', p.stats.rtpIn > 0);
    }, 5);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  report(r: Report): void {
    r.step(this.first.get('ice'), 'ICE connected (WhatsApp ⇄ bridge)');
    r.step(this.first.get('dtls'), 'DTLS up: SRTP keys ready');
    r.step(this.first.get('out'), 'first audio WhatsApp → bridge (the tone starts)');
    r.step(this.first.get('in'), 'first audio bridge → WhatsApp (from the PBX)');
  }
}

const DTMF_EVENT: Record<string, number> = { '*': 10, '#': 11 };

/** RFC 4733 event code of a digit (0-9, *, #, A-D), or undefined. */
export function dtmfEvent(digit: string): number | undefined {
  if (/^[0-9]$/.test(digit)) return Number(digit);
  if (/^[A-Da-d]$/.test(digit)) return 12 + digit.toUpperCase().charCodeAt(0) - 65;
  return DTMF_EVENT[digit];
}

export interface MediaVerdict {
  connected: boolean;
  audioBack: boolean;
  bothWays: boolean;
}

/** Run the answered call's media checks; appends audio/DTMF lines to the report. */
export async function mediaPhase(leg: WhatsAppLeg, opts: MediaOptions, r: Report): Promise<MediaVerdict> {
  const startedAt = performance.now();
  const deadline = startedAt + opts.durationSec * 1000;
  const peer = leg.peer();
  if (!peer) {
    r.line('audio:\n  ✗ no media: the simulated WhatsApp side has no peer');
    return { connected: false, audioBack: false, bothWays: false };
  }
  try {
    await peer.waitConnected(10_000);
  } catch (err) {
    r.line(`audio:\n  ✗ ICE/DTLS between WhatsApp and the bridge did not come up: ${(err as Error).message}`);
    r.line('    fix: media.embedded.iceAddresses (or rtpengine\'s interface) must be an address this host reaches');
    return { connected: false, audioBack: false, bothWays: false };
  }
  // Audio from the PBX: bounded wait for the first packet (a PBX playing nothing sends none).
  await until(() => peer.stats.rtpIn > 0 || leg.endedByBridge(), 5000);
  const windowMs = Math.min(10_000, Math.max(2000, (opts.durationSec * 1000) / 2));
  peer.clearReceived();
  const inBefore = peer.stats.rtpIn;
  const windowStart = performance.now();
  await until(() => leg.endedByBridge() || performance.now() - windowStart > windowMs, windowMs + 1000);
  const pcm = peer.receivedPcm();
  const tone = peer.toneWindows(opts.toneHz);
  const level = rms(pcm);
  const packets = peer.stats.rtpIn - inBefore;
  const audioBack = packets > 0 && level >= 0.003;
  const bothWays = tone.windows > 0 && tone.share >= 0.5;
  r.line('audio:');
  if (bothWays) {
    r.line(`  ✓ both ways: our ${opts.toneHz} Hz tone came back from the PBX in ${Math.round(tone.share * 100)}% of ${tone.windows} windows of 100 ms (echo)`);
  } else if (audioBack) {
    r.line(`  ✓ PBX → WhatsApp: ${packets} packets, level ${dbfs(level)}`);
    r.line(`  – WhatsApp → PBX: not confirmed: our ${opts.toneHz} Hz tone did not come back (${Math.round(tone.share * 100)}% of windows); dial an echo extension to check this direction`);
  } else {
    r.line(`  ✗ PBX → WhatsApp: ${packets === 0 ? 'no RTP at all' : `${packets} packets of silence (${dbfs(level)})`} in ${ms(windowMs)}`);
    r.line('    fix: the PBX must send RTP to the address in the bridge\'s SDP (NAT: set media.embedded.rtpAdvertiseHost / sip.contactHost; Asterisk: direct_media=no)');
  }

  if (opts.dtmf !== undefined && !leg.endedByBridge()) await dtmfCheck(peer, leg, opts.dtmf, r);

  // The rest of --duration, unless the PBX (or the bridge) ends the call first.
  await until(() => leg.endedByBridge(), Math.max(0, deadline - performance.now()));
  return { connected: true, audioBack, bothWays };
}

async function dtmfCheck(peer: WhatsAppMediaPeer, leg: WhatsAppLeg, digit: string, r: Report): Promise<void> {
  const event = dtmfEvent(digit)!;
  const echoedBefore = peer.dtmfEvents().filter((e) => e.event === event).length;
  r.line('dtmf:');
  try {
    await peer.sendDtmf(event, 200);
  } catch (err) {
    r.line(`  ✗ could not send "${digit}": ${(err as Error).message}`);
    return;
  }
  // Bounded: an echo comes back within a round trip; 1.5 s covers a loaded machine.
  const echoed = await until(() => peer.dtmfEvents().filter((e) => e.event === event).length > echoedBefore, 1500);
  const inBefore = peer.stats.rtpIn;
  const flowing = await until(() => peer.stats.rtpIn > inBefore + 5 || leg.endedByBridge(), 2000);
  if (leg.endedByBridge()) {
    r.line(`  ✗ sent "${digit}" as RFC 4733 telephone-event: the call ended right after`);
    return;
  }
  r.line(`  ✓ sent "${digit}" as RFC 4733 telephone-event; the call survived${flowing ? ' and audio keeps flowing' : ''}`);
  r.line(echoed ? `  ✓ the PBX received it: the event came back (echo)` : '  – whether the PBX received it is not observable from here (it did not come back as an event); check the PBX\'s log / IVR');
}

function dbfs(level: number): string {
  return level > 0 ? `${(20 * Math.log10(level)).toFixed(0)} dBFS` : 'all zero';
}
