/**
 * Seeded SDP fuzzing of the parsers that read SDP from the network: the PBX's plain SDP
 * (`parsePlain`, `pbxSdpProblem`, rtpengine's `cleanPlainOffer`) and WhatsApp's WebRTC SDP
 * (`webRtcCodecs`, `checkWhatsAppAnswer`/`checkWhatsAppOffer`, `iceLiteIntoMedia`,
 * `relabelTelephoneEvent`). Each case is a mutation of a real SDP (line dropped, duplicated or
 * shuffled; numbers replaced by extremes; control characters, CR/LF and long runs inserted;
 * bytes flipped). A case passes when every parser returns or throws an Error, within the CPU
 * budget (CPU time of the process, so a busy machine's scheduling does not count). Used by test/fuzz/sdp.fuzz.test.ts (a fixed slice) and bench/fuzz-sdp.ts (>= 100,000).
 */
import { parsePlain } from '../../src/media/embedded/sdp.js';
import { webRtcCodecs } from '../../src/media/embedded/sdp.js';
import { pbxSdpProblem } from '../../src/media/pbx-sdp.js';
import { cleanPlainOffer, iceLiteIntoMedia } from '../../src/media/rtpengine/index.js';
import { relabelTelephoneEvent } from '../../src/media/rtpengine/sdp-post.js';
import { checkWhatsAppAnswer, checkWhatsAppOffer } from '../../src/media/whatsapp-profile.js';
import { assertSdpSize } from '../../src/media/sdp-limits.js';
import { seededRandom as rng } from './seeded.js';

export { rng };


/** rtpengine's SDP helpers run on WhatsApp's SDP only after the engine's size check. */
const sized =
  <T>(fn: (sdp: string) => T) =>
  (sdp: string): T => {
    assertSdpSize(sdp);
    return fn(sdp);
  };

const PBX = [
  'v=0',
  'o=- 4242 1 IN IP4 10.0.0.5',
  's=Asterisk',
  'c=IN IP4 10.0.0.5',
  't=0 0',
  'm=audio 17000 RTP/AVP 9 0 8 101',
  'a=rtpmap:9 G722/8000',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=rtcp:17001 IN IP4 10.0.0.5',
  'a=ptime:20',
  'a=sendrecv',
];

const WHATSAPP = [
  'v=0',
  'o=- 1713 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=ice-lite',
  'a=group:BUNDLE 0',
  'a=msid-semantic: WMS *',
  'm=audio 3480 UDP/TLS/RTP/SAVPF 111 126',
  'c=IN IP4 157.240.1.1',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=candidate:1 1 udp 2113937151 157.240.1.1 3480 typ host generation 0',
  'a=candidate:2 1 udp 2113937150 2a03:2880::1 3480 typ host generation 0',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:0123456789abcdef012345',
  'a=fingerprint:sha-256 66:B7:49:0B:55:2A:FB:A6:57:61:A9:72:F8:7A:15:67:48:6D:85:1A:0F:6A:D9:70:1C:75:CA:A0:69:B8:6D:D6',
  'a=setup:actpass',
  'a=mid:0',
  'a=sendrecv',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1',
  'a=rtpmap:126 telephone-event/8000',
  'a=ssrc:1234 cname:x',
];


const NUMBERS = ['0', '-1', '65535', '65536', '4294967296', '99999999999999999999', 'NaN', '1e309', '0x10', ''];
const JUNK = ['\u0000', '\r', '\n', '\r\n', '\u001b[2J', '\u007f', '\uffff', '%0d%0a', ' ', '\t', ':', '/', '=', '"', '\ud800'];

/** One mutated SDP of `base`, from the generator's next numbers. */
export function mutate(base: readonly string[], r: () => number): string {
  const lines = [...base];
  const pick = (n: number): number => Math.floor(r() * n);
  const ops = 1 + pick(4);
  for (let i = 0; i < ops; i++) {
    const at = pick(lines.length || 1);
    switch (pick(9)) {
      case 0:
        lines.splice(at, 1);
        break;
      case 1:
        lines.splice(at, 0, lines[pick(lines.length)] ?? 'a=x');
        break;
      case 2: {
        const j = pick(lines.length);
        [lines[at], lines[j]] = [lines[j]!, lines[at]!];
        break;
      }
      case 3:
        lines[at] = (lines[at] ?? '').replace(/\d+/g, () => NUMBERS[pick(NUMBERS.length)]!);
        break;
      case 4: {
        const l = lines[at] ?? '';
        const k = pick(l.length + 1);
        lines[at] = l.slice(0, k) + JUNK[pick(JUNK.length)] + l.slice(k);
        break;
      }
      case 5: {
        const l = lines[at] ?? '';
        const k = pick(l.length + 1);
        lines[at] = l.slice(0, k) + (r() < 0.5 ? ' ' : 'a').repeat(1 + pick(20000)) + l.slice(k);
        break;
      }
      case 6: {
        const l = lines[at] ?? '';
        const k = pick(l.length || 1);
        lines[at] = l.slice(0, k) + String.fromCharCode(pick(256)) + l.slice(k + 1);
        break;
      }
      case 7:
        lines.splice(at, 0, ...Array.from({ length: 1 + pick(300) }, () => lines[pick(lines.length)] ?? 'a=y'));
        break;
      default:
        lines[at] = (lines[at] ?? '').split(/[ :/]/).slice(0, pick(4)).join(' ');
    }
  }
  return lines.join(r() < 0.8 ? '\r\n' : '\n') + '\r\n';
}

const PARSERS: Array<[string, (sdp: string) => unknown]> = [
  ['parsePlain', parsePlain],
  ['pbxSdpProblem', pbxSdpProblem],
  ['cleanPlainOffer', sized(cleanPlainOffer)],
  ['webRtcCodecs', webRtcCodecs],
  ['checkWhatsAppAnswer', checkWhatsAppAnswer],
  ['checkWhatsAppOffer', checkWhatsAppOffer],
  ['iceLiteIntoMedia', sized(iceLiteIntoMedia)],
  ['relabelTelephoneEvent', sized((s) => relabelTelephoneEvent(s, 8000, 48000))],
];

export interface FuzzResult {
  cases: number;
  /** cases x parsers. */
  parserCalls: number;
  /** Throws that were not Error objects, or anything that escaped as a crash. */
  crashes: Array<{ seed: number; index: number; parser: string; what: string }>;
  /** The slowest message through one parser (CPU time of this process), and its case index. */
  maxMs: number;
  maxAt: number;
  /** Parser calls over the per-message CPU budget. */
  overBudget: number;
  heapGrowthMb: number;
}

/** Run `cases` mutated SDPs (half PBX, half WhatsApp) through every parser. */
export function runSdpFuzz(seed: number, cases: number, budgetMs: number): FuzzResult {
  const r = rng(seed);
  const crashes: FuzzResult['crashes'] = [];
  let maxMs = 0;
  let maxAt = -1;
  let overBudget = 0;
  globalThis.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  for (let i = 0; i < cases; i++) {
    const sdp = mutate(i % 2 === 0 ? PBX : WHATSAPP, r);
    for (const [name, fn] of PARSERS) {
      const c0 = process.cpuUsage();
      try {
        fn(sdp);
      } catch (err) {
        if (!(err instanceof Error)) crashes.push({ seed, index: i, parser: name, what: String(err) });
      }
      const c = process.cpuUsage(c0);
      const ms = (c.user + c.system) / 1000;
      if (ms > maxMs) {
        maxMs = ms;
        maxAt = i;
      }
      if (ms > budgetMs) overBudget++;
    }
  }
  globalThis.gc?.();
  return { cases, parserCalls: cases * PARSERS.length, crashes, maxMs, maxAt, overBudget, heapGrowthMb: (process.memoryUsage().heapUsed - heap0) / 1e6 };
}

/** Mean time (ms) of the unmutated PBX and WhatsApp SDPs through every parser: the baseline. */
export function baselineMs(reps: number): number {
  const sdps = [PBX.join('\r\n') + '\r\n', WHATSAPP.join('\r\n') + '\r\n'];
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    for (const [, fn] of PARSERS) {
      try {
        fn(sdps[i % 2]!);
      } catch {
        /* the unmutated SDPs may still be refused by a checker; the time is what counts */
      }
    }
  }
  return (performance.now() - t0) / reps;
}
