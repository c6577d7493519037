/**
 * What `simulate` sees of the bridge it runs in-process: the bridge's SIP stack and media engine
 * are wrapped (decorated in place, through their public interfaces) so each call's SIP
 * milestones and SDPs are recorded as they happen, and its log lines are kept in memory.
 * Nothing the bridge does changes: every wrapper calls the original and passes results through.
 */
import { Writable } from 'node:stream';
import { parse as parseSdp } from 'sdp-transform';
import type { RunningApp } from '../app.js';
import type { MediaSession } from '../media/types.js';
import { SipFailure, type InviteProgress, type SipDialog } from '../sip/types.js';

export interface LogEntry {
  level: number;
  msg: string;
  err?: string;
}

/** A pino destination keeping the lines (bounded), and optionally copying them to `copy`. */
export class LogSink extends Writable {
  readonly entries: LogEntry[] = [];

  constructor(private readonly copy?: NodeJS.WritableStream) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const text = chunk.toString();
    this.copy?.write(text);
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const o = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
        if (this.entries.length < 5000) this.entries.push({ level: o.level ?? 30, msg: o.msg ?? '', ...(o.err?.message ? { err: o.err.message } : {}) });
      } catch {
        /* not JSON: ignore */
      }
    }
    done();
  }

  /** Warnings and errors the bridge logged, oldest first, each once. */
  problems(): string[] {
    const seen = new Set<string>();
    for (const e of this.entries) if (e.level >= 40) seen.add(e.err ? `${e.msg}: ${e.err}` : e.msg);
    return [...seen];
  }
}

/** One call's milestones (performance.now() of this process) and the SDPs on the PBX side. */
export class CallTrace {
  readonly marks = new Map<string, number>();
  inviteUri: string | undefined;
  sipCallId: string | undefined;
  progress: InviteProgress[] = [];
  /** The PBX's final answer to the bridge's INVITE (inbound). */
  final: { status: number; reason: string } | undefined;
  /** The PBX's SDP: its answer (inbound) or the agent's offer (outbound). */
  pbxSdp: string | undefined;
  /** What the bridge sent the PBX: its offer (inbound) or answer (outbound). */
  bridgeSdp: string | undefined;
  dialog: SipDialog | undefined;

  mark(name: string): void {
    if (!this.marks.has(name)) this.marks.set(name, performance.now());
  }
}

/** The codec the answer settled on: the first non-telephone-event payload of its audio m-line. */
export function chosenCodec(answer: string | undefined): string | undefined {
  if (!answer) return undefined;
  const audio = parseSdp(answer).media.find((m) => m.type === 'audio');
  if (!audio || audio.port === 0) return undefined;
  for (const pt of String(audio.payloads ?? '').split(/\s+/)) {
    const rtp = audio.rtp.find((r) => String(r.payload) === pt);
    const name = rtp?.codec ?? ({ '0': 'PCMU', '8': 'PCMA', '9': 'G722' } as Record<string, string>)[pt];
    if (name && name.toLowerCase() !== 'telephone-event') return `${name}/${rtp?.rate ?? 8000}`;
  }
  return undefined;
}

/** Whether the SDP offers or accepts telephone-event (RFC 4733 DTMF). */
export function hasTelephoneEvent(sdp: string | undefined): boolean {
  return !!sdp && parseSdp(sdp).media.some((m) => m.rtp.some((r) => r.codec.toLowerCase() === 'telephone-event'));
}

/**
 * Wrap the bridge's SIP stack (`invite`, for calls the bridge places to the PBX) and its media
 * engine (`createSession`, for both directions). `trace()` gives the latest call's trace.
 */
export function observeBridge(app: RunningApp): { trace(): CallTrace } {
  let current = new CallTrace();
  const sip = app.sip;
  const invite = sip.invite.bind(sip);
  sip.invite = (req, opts) => {
    const t = current;
    t.mark('invite');
    t.inviteUri = req.uri;
    const call = invite(req, {
      ...opts,
      onProgress: (p) => {
        t.progress.push(p);
        t.mark(`progress-${p.status}`);
        opts?.onProgress?.(p);
      },
    });
    t.sipCallId = call.callId;
    call.established.then(
      (dialog) => {
        t.mark('pbx-answered');
        t.final = { status: 200, reason: 'OK' };
        t.dialog = dialog;
        t.pbxSdp = dialog.remoteSdp;
        dialog.on('bye', () => t.mark('pbx-bye'));
      },
      (err: unknown) => {
        t.mark('pbx-failed');
        t.final = err instanceof SipFailure ? { status: err.status, reason: err.reason } : { status: 0, reason: String(err) };
      },
    );
    return call;
  };

  const media = app.media;
  const createSession = media.createSession.bind(media);
  media.createSession = (callId) => {
    const t = current.marks.size === 0 ? current : (current = new CallTrace());
    t.mark('media-session');
    const s = createSession(callId);
    wrap(s, 'offerFromWhatsApp', (_in, out) => (t.bridgeSdp = out));
    wrap(s, 'offerFromPbx', () => undefined, (plainOffer) => {
      t.mark('agent-invite');
      t.pbxSdp = plainOffer;
    });
    wrap(s, 'answerFromWhatsApp', (_in, out) => {
      t.mark('agent-answered');
      t.bridgeSdp = out;
    });
    return s;
  };
  return { trace: () => current };
}

type SdpStep = 'offerFromWhatsApp' | 'offerFromPbx' | 'answerFromWhatsApp';

function wrap(s: MediaSession, step: SdpStep, seen: (input: string, output: string) => void, before?: (input: string) => void): void {
  const inner = s[step].bind(s);
  s[step] = async (sdp: string) => {
    before?.(sdp);
    const out = await inner(sdp);
    seen(sdp, out);
    return out;
  };
}
