/**
 * The embedded media engine: WhatsApp's WebRTC leg on werift and the PBX's plain RTP leg on a
 * UDP port pair, in this process (see session.ts for one call's pipeline). The engine holds the
 * registry of sessions, the port allocator, the one 20 ms clock that drives every session's
 * keep-alive and RTCP, and readiness.
 */
import type { Logger } from 'pino';
import { MediaError, type EngineReadiness, type MediaEngine, type MediaSession } from '../types.js';
import { PortAllocator } from './ports.js';
import type { PbxSourceRules } from './pbx-leg.js';
import type { PbxCodecName } from './sdp.js';
import { EmbeddedSession, type SessionStats } from './session.js';

export type { SessionStats } from './session.js';

const ENGINE = 'embedded';
/** The engine clock: one tick per 20 ms frame. */
const TICK_MS = 20;

export interface EmbeddedEngineOptions {
  /** Address the plain RTP sockets bind to. */
  rtpHost: string;
  /** Address written into the SDP for the PBX. */
  rtpAdvertiseHost: string;
  /** Host candidate addresses for WhatsApp; empty = every non-internal IPv4 address. */
  iceAddresses: string[];
  portMin: number;
  portMax: number;
  logger: Logger;
  /** PBX codecs offered (inbound) / accepted (outbound), in preference order. */
  pbxCodecs?: PbxCodecName[];
  /** ICE (WhatsApp side) port range; default: ephemeral ports. */
  icePortRange?: [number, number];
  /** Opus encoder bitrate toward WhatsApp in bit/s; default 20000 (Meta's maxaveragebitrate). */
  opusBitrate?: number;
  /** Opus encoder complexity 0..10; default 5 (half the CPU of libopus' default 10 in WebAssembly). */
  opusComplexity?: number;
  /**
   * Whose RTP the PBX leg takes (pbx-leg.ts): `strict` only the address the PBX's SDP names;
   * `learn` (default) the SDP's address or else the first source within `learnWindowMs`
   * (default 3000), then locked to it and its SSRC.
   */
  pbxSource?: { mode: PbxSourceRules['mode']; learnWindowMs?: number };
  /**
   * A session reports `whatsapp-media-timeout` after this long without RTP from WhatsApp,
   * counted from its connection (or from when WhatsApp could first connect); default 20, 0 = off.
   */
  whatsappMediaTimeoutSec?: number;
}

export class EmbeddedEngine implements MediaEngine {
  readonly name = ENGINE;
  readonly ports: PortAllocator;
  private readonly sessions = new Map<string, EmbeddedSession>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    readonly opts: EmbeddedEngineOptions,
    private readonly log: Logger,
  ) {
    this.ports = new PortAllocator(opts.rtpHost, opts.portMin, opts.portMax);
    // One clock for every session: keep-alive silence and RTCP.
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** Each session's tick is guarded: one that throws is logged and never skips the others. */
  private tick(): void {
    const now = performance.now();
    for (const s of this.sessions.values()) {
      try {
        s.tick(now);
      } catch (err) {
        this.log.warn({ callId: s.callId, err: (err as Error).message }, 'media tick failed');
      }
    }
  }

  createSession(callId: string): MediaSession {
    if (this.closed) throw new MediaError('engine closed', ENGINE, 'closed');
    const s = new EmbeddedSession(callId, this, this.log);
    this.sessions.set(callId, s);
    return s;
  }

  /** Counters of a live session (tests, bench). */
  sessionStats(callId: string): SessionStats | undefined {
    return this.sessions.get(callId)?.stats;
  }

  forget(s: EmbeddedSession): void {
    if (this.sessions.get(s.callId) === s) this.sessions.delete(s.callId);
  }

  async listSessions(): Promise<string[]> {
    return [...this.sessions.keys()];
  }

  async readiness(): Promise<EngineReadiness> {
    if (this.closed) return { ready: false, reason: 'embedded engine closed' };
    const { pairs, free } = this.ports.capacity();
    const detail = { portPairs: pairs, freePortPairs: free, sessions: this.sessions.size };
    return free > 0 ? { ready: true, detail } : { ready: false, reason: `no free RTP port pair (${pairs} in use)`, detail };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }
}
