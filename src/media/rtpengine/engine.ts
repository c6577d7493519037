/**
 * MediaEngine on rtpengine over its ng protocol (UDP, rtpengine-client). One rtpengine call per
 * session: the offerer's leg is the from-tag (WhatsApp on inbound calls, the PBX on outbound
 * ones), the answerer's the to-tag; both tags are generated here. Every request times out (default 2 s) into a MediaError; an ng `result: error` becomes a
 * MediaError carrying rtpengine's `error-reason`.
 */
import { randomBytes } from 'node:crypto';
import type { NgMessage, NgTarget } from 'rtpengine-client';
import { NgClient } from './ng-client.js';
import { OrphanSweeper, type OrphanSweeperOptions } from './orphans.js';
import { FailureSignal, WhatsAppMediaTimer } from '../watchdog.js';
import { queryIntervalFor, RtpengineWatch, type WatchOptions } from './watchdog.js';
import type { Logger } from 'pino';
import { MediaError, type EngineReadiness, type MediaFailure, type MediaEngine, type MediaSession } from '../types.js';
import { checkWhatsAppAnswer, sameSdpIgnoringVersion } from '../whatsapp-profile.js';
import { pbxSdpProblem } from '../pbx-sdp.js';
import { sdpSizeProblem } from '../sdp-limits.js';
import { KEEPALIVE_SILENCE, KEEPALIVE_REPEAT_TIMES } from './keepalive.js';
import { DELETE_NOW, PBX_ANSWER_TO_WHATSAPP, PBX_OFFER_TO_WHATSAPP, WHATSAPP_ANSWER_TO_PBX, WHATSAPP_OFFER_TO_PBX } from './flags.js';
import { checkedWhatsAppOffer, cleanPlainOffer, finishWhatsAppAnswer, iceLiteIntoMedia, whatsAppAnswerForNg } from './sdp-post.js';
import { offerForExtension, placeholderPbxOffer, sameWhatsAppLeg } from './click.js';

const ENGINE = 'rtpengine';

export interface RtpengineEngineOptions {
  ng: Array<{ host: string; port: number }>;
  /** Per-request timeout; default 2000 ms. */
  timeoutMs?: number;
  logger: Logger;
  /**
   * Start even when no rtpengine answers the start-up ping (logged as an error; calls fail with
   * a MediaError and are rejected until one comes up). Default false: throw.
   */
  allowUnreachable?: boolean;
  /**
   * A session reports `whatsapp-media-timeout` after its WhatsApp-side packet counters (ng
   * `query`) stood still this long, counted from when WhatsApp could first send; default 20,
   * 0 = off.
   */
  whatsappMediaTimeoutSec?: number;
  /** The watchdog's ping/query period and how many missed pings make an rtpengine dead. */
  watch?: WatchOptions;
  /** How sessions no call owns (a timed-out offer, a failed delete) are deleted (./orphans.ts). */
  orphans?: Partial<OrphanSweeperOptions>;
}

const tag = (): string => randomBytes(8).toString('hex');


/** A PBX SDP whose address or ports cannot carry RTP: a clear MediaError before rtpengine sees it. */
function checkPbxSdp(sdp: string, what: 'offer' | 'answer'): void {
  const problem = pbxSdpProblem(sdp);
  if (problem) throw new MediaError(`unusable PBX ${what}: ${problem}`, ENGINE, 'sdp');
}

/** WhatsApp's SDP is parsed here before rtpengine sees it: too big to parse is refused. */
function checkWhatsAppSdpSize(sdp: string, what: 'offer' | 'answer'): void {
  const problem = sdpSizeProblem(sdp);
  if (problem) throw new MediaError(`unusable WhatsApp ${what}: ${problem}`, ENGINE, 'sdp');
}

class RtpengineSession implements MediaSession {
  private readonly fromTag = tag();
  private readonly toTag = tag();
  target: NgTarget | undefined;
  private webrtcOffer: string | undefined;
  private lastPbxAnswer: string | undefined;
  private whatsAppAnswer: string | undefined;
  /** Which call direction the session was opened for (by its first offer); click: click to call (./click.ts). */
  private direction: 'inbound' | 'outbound' | 'click' | undefined;
  /** Click to call: our first WebRTC offer, and the extension's answer last given to rtpengine. */
  private clickOffer: string | undefined;
  private lastExtensionAnswer: string | undefined;
  private pbxAnswer: string | undefined;
  private lastWhatsAppAnswer: string | undefined;
  private closing: Promise<void> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Whether rtpengine is playing keep-alive silence toward WhatsApp (PBX on hold). */
  private keepAlive = false;
  readonly failure: FailureSignal;
  readonly waTimer: WhatsAppMediaTimer;
  /** WhatsApp's leg's tag, once WhatsApp can send (the watchdog queries its counters). */
  whatsAppTag: string | undefined;

  constructor(
    readonly callId: string,
    private readonly engine: RtpengineEngine,
    private readonly log: Logger,
    whatsappMediaTimeoutSec: number | undefined,
  ) {
    this.failure = new FailureSignal(callId, log);
    this.waTimer = new WhatsAppMediaTimer(whatsappMediaTimeoutSec);
  }

  onFailure(listener: (failure: MediaFailure) => void): void {
    this.failure.onFailure(listener);
  }

  /** WhatsApp can send media now (its leg's tag: the offerer's on inbound calls). */
  private armWatch(): void {
    this.whatsAppTag = this.direction === 'inbound' ? this.fromTag : this.toTag;
    this.waTimer.arm(performance.now());
  }

  /** One ng operation at a time per session, in call order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  offerFromWhatsApp(webrtcOffer: string): Promise<string> {
    return this.serial(async () => {
      if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
      if (this.direction === 'outbound') throw new MediaError('offerFromWhatsApp on an outbound session', ENGINE, 'direction');
      checkWhatsAppSdpSize(webrtcOffer, 'offer');
      const { target, reply } = await this.engine.offerAnyTarget({
        ...WHATSAPP_OFFER_TO_PBX,
        'call-id': this.callId,
        'from-tag': this.fromTag,
        // WhatsApp's telephone-event/8000 is NOT relabelled here (unlike outbound calls): the
        // digits a caller presses reach the PBX's IVR as events with their real durations.
        // The price, with rtpengine 10.5: the PBX's own events reach WhatsApp as in-band tones
        // in the Opus stream (audible to the caller) instead of RFC 4733 events.
        sdp: iceLiteIntoMedia(webrtcOffer),
      });
      this.target = target;
      this.direction = 'inbound';
      this.webrtcOffer = webrtcOffer;
      const plain = cleanPlainOffer(String(reply['sdp'] ?? ''));
      this.log.debug({ callId: this.callId, rtpengine: `${target.host}:${target.port}` }, 'rtpengine offer done');
      return plain;
    });
  }

  answerFromPbx(plainAnswer: string): Promise<string> {
    return this.serial(async () => {
      if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
      if (!this.target || !this.webrtcOffer) {
        throw new MediaError('answerFromPbx before offerFromWhatsApp', ENGINE, 'no offer');
      }
      // The same PBX SDP again (183 then 200 with one SDP): nothing changes in rtpengine.
      if (this.whatsAppAnswer && plainAnswer === this.lastPbxAnswer) return this.whatsAppAnswer;
      checkPbxSdp(plainAnswer, 'answer');
      const reply = await this.engine.ng.request(this.target, 'answer', {
        ...PBX_ANSWER_TO_WHATSAPP,
        'call-id': this.callId,
        'from-tag': this.fromTag,
        'to-tag': this.toTag,
        sdp: plainAnswer,
      });
      this.lastPbxAnswer = plainAnswer;
      const sdp = finishWhatsAppAnswer(String(reply['sdp'] ?? ''), this.webrtcOffer, plainAnswer);
      if (this.whatsAppAnswer) {
        // WhatsApp requires accept SDP == pre_accept SDP: keep the first one.
        if (!sameSdpIgnoringVersion(sdp, this.whatsAppAnswer)) {
          this.log.warn(
            { callId: this.callId },
            'rtpengine answer for the new PBX SDP differs from the first one; WhatsApp keeps the first',
          );
        }
        return this.whatsAppAnswer;
      }
      const violations = checkWhatsAppAnswer(sdp);
      if (violations.length > 0) {
        throw new MediaError(`rtpengine answer breaks WhatsApp rules: ${violations.join('; ')}`, ENGINE, 'sdp rules');
      }
      this.whatsAppAnswer = sdp;
      this.armWatch();
      return sdp;
    });
  }

  offerFromPbx(plainOffer: string): Promise<string> {
    return this.serial(async () => {
      if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
      if (this.direction) throw new MediaError(`offerFromPbx on a session already used (${this.direction})`, ENGINE, 'direction');
      checkPbxSdp(plainOffer, 'offer');
      const { target, reply } = await this.engine.offerAnyTarget({
        ...PBX_OFFER_TO_WHATSAPP,
        'call-id': this.callId,
        'from-tag': this.fromTag,
        sdp: plainOffer,
      });
      this.target = target;
      this.direction = 'outbound';
      this.log.debug({ callId: this.callId, rtpengine: `${target.host}:${target.port}` }, 'rtpengine outbound offer done');
      return checkedWhatsAppOffer(String(reply['sdp'] ?? ''));
    });
  }

  /** Click to call, step 1 (./click.ts): a WebRTC offer for `connect` against a placeholder PBX. */
  offerToWhatsApp(): Promise<string> {
    return this.serial(async () => {
      if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
      if (this.direction) throw new MediaError(`offerToWhatsApp on a session already used (${this.direction})`, ENGINE, 'direction');
      const { target, reply } = await this.engine.offerAnyTarget({ ...PBX_OFFER_TO_WHATSAPP, 'call-id': this.callId, 'from-tag': this.fromTag, sdp: placeholderPbxOffer() });
      this.target = target;
      this.direction = 'click';
      this.clickOffer = checkedWhatsAppOffer(String(reply['sdp'] ?? ''));
      return this.clickOffer;
    });
  }

  /** Click to call, step 3 (./click.ts): the extension's answer as a re-offer, then WhatsApp's answer again. */
  answerFromPbxToOffer(plainAnswer: string): Promise<void> {
    return this.serial(async () => {
      if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
      const target = this.target;
      const waAnswer = this.lastWhatsAppAnswer;
      if (this.direction !== 'click' || !target || !waAnswer) throw new MediaError('answerFromPbxToOffer before answerFromWhatsApp', ENGINE, 'no offer');
      if (plainAnswer === this.lastExtensionAnswer) return;
      checkPbxSdp(plainAnswer, 'answer');
      const ids = { 'call-id': this.callId, 'from-tag': this.fromTag };
      const reoffer = await this.engine.ng.request(target, 'offer', { ...PBX_OFFER_TO_WHATSAPP, ...ids, sdp: plainAnswer });
      if (!sameWhatsAppLeg(this.clickOffer!, checkedWhatsAppOffer(String(reoffer['sdp'] ?? '')))) throw new MediaError('rtpengine changed the WhatsApp leg on the re-offer', ENGINE, 'renegotiation');
      await this.engine.ng.request(target, 'answer', { ...WHATSAPP_ANSWER_TO_PBX, ...ids, 'to-tag': this.toTag, sdp: whatsAppAnswerForNg(waAnswer) });
      this.lastExtensionAnswer = plainAnswer;
      await this.setKeepAlive(false);
    });
  }

  answerFromWhatsApp(webrtcAnswer: string): Promise<string> {
    return this.serial(async () => {
      if (this.closing) throw new MediaError('session closed', ENGINE, 'closed');
      if (!this.target || (this.direction !== 'outbound' && this.direction !== 'click')) {
        throw new MediaError('answerFromWhatsApp before an offer to WhatsApp', ENGINE, 'no offer');
      }
      // A redelivered connect webhook: the same answer gives the same PBX SDP, no new ng answer.
      if (this.pbxAnswer && webrtcAnswer === this.lastWhatsAppAnswer) return this.pbxAnswer;
      checkWhatsAppSdpSize(webrtcAnswer, 'answer');
      const reply = await this.engine.ng.request(this.target, 'answer', {
        ...WHATSAPP_ANSWER_TO_PBX,
        'call-id': this.callId,
        'from-tag': this.fromTag,
        'to-tag': this.toTag,
        sdp: whatsAppAnswerForNg(webrtcAnswer),
      });
      this.lastWhatsAppAnswer = webrtcAnswer;
      const click = this.direction === 'click';
      // Click to call: rtpengine answered the placeholder; the extension gets an offer.
      this.pbxAnswer = click ? offerForExtension(String(reply['sdp'] ?? '')) : cleanPlainOffer(String(reply['sdp'] ?? ''));
      this.armWatch();
      if (click) await this.setKeepAlive(true); // nobody sends to WhatsApp while the extension rings
      return this.pbxAnswer;
    });
  }

  /**
   * rtpengine 10.5 cannot see the PBX fall silent by itself (flags.ts), but the bridge sees a
   * hold: while the PBX sends nothing, rtpengine plays looped silence to WhatsApp's leg
   * (`play media`, Opus-encoded by rtpengine), stopped as soon as the PBX sends again (both at
   * once would interleave two streams into WhatsApp's). Failures are logged, never thrown.
   */
  pbxSending(sending: boolean): Promise<void> {
    return this.serial(() => this.setKeepAlive(!sending));
  }

  private async setKeepAlive(on: boolean): Promise<void> {
    const sending = !on;
    if (this.closing || !this.target || !this.direction) return;
    if (this.keepAlive === !sending) return;
    // WhatsApp's leg: the offerer's (from-tag) on inbound calls, the answerer's on outbound.
    const waTag = this.direction === 'inbound' ? this.fromTag : this.toTag;
    try {
      if (!sending) {
        await this.engine.ng.request(this.target, 'playMedia', {
          'call-id': this.callId,
          'from-tag': waTag,
          blob: KEEPALIVE_SILENCE,
          'repeat-times': KEEPALIVE_REPEAT_TIMES,
        });
      } else {
        await this.engine.ng.request(this.target, 'stopMedia', { 'call-id': this.callId, 'from-tag': waTag });
      }
      this.keepAlive = !sending;
      this.log.info({ callId: this.callId, keepAlive: this.keepAlive }, sending ? 'rtpengine keep-alive silence stopped' : 'rtpengine keep-alive silence playing to WhatsApp');
    } catch (err) {
      if (sending && err instanceof MediaError && /not currently playing/i.test(err.reason ?? '')) {
        this.keepAlive = false; // it ended on its own
        return;
      }
      this.log.warn({ callId: this.callId, err: (err as Error).message }, 'rtpengine keep-alive change failed');
    }
  }

  close(): Promise<void> {
    this.failure.close();
    this.closing ??= this.serial(async () => {
      this.engine.forget(this);
      const target = this.target;
      if (!target) return;
      try {
        await this.engine.ng.request(target, 'delete', {
          'call-id': this.callId,
          'from-tag': this.fromTag,
          ...DELETE_NOW,
        });
      } catch (err) {
        this.log.warn({ callId: this.callId, err: (err as Error).message }, 'rtpengine delete failed');
        // Not "unknown call" (it is gone then): rtpengine may still hold it; delete until it confirms.
        if (err instanceof MediaError && !/unknown call/i.test(err.reason ?? '')) this.engine.orphans.add(target, this.callId, 'delete failed');
      }
    }).catch(() => undefined);
    return this.closing;
  }
}

class RtpengineEngine implements MediaEngine {
  readonly name = ENGINE;
  readonly ng: NgClient;
  private readonly targets: NgTarget[];
  private next = 0;
  private readonly sessions = new Set<RtpengineSession>();
  private readonly watch: RtpengineWatch;
  readonly orphans: OrphanSweeper;

  constructor(
    private readonly opts: RtpengineEngineOptions,
    private readonly log: Logger,
  ) {
    this.targets = opts.ng.map((t) => ({ host: t.host, port: t.port }));
    this.ng = new NgClient(opts.timeoutMs ?? 2000, log);
    this.orphans = new OrphanSweeper(this.ng, log, opts.orphans);
    this.watch = new RtpengineWatch(this.ng, () => this.sessions, log, { queryIntervalMs: queryIntervalFor(opts.watch?.intervalMs, opts.whatsappMediaTimeoutSec), ...opts.watch }, this.targets);
  }

  async pingAll(): Promise<void> {
    const results = await Promise.allSettled(this.targets.map((t) => this.ng.request(t, 'ping')));
    const alive = results.filter((r) => r.status === 'fulfilled').length;
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        const t = this.targets[i]!;
        this.log.warn({ rtpengine: `${t.host}:${t.port}`, err: (r.reason as Error).message }, 'rtpengine not answering ping');
      }
    });
    if (alive === 0) {
      const reasons = results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'));
      throw new MediaError(`no rtpengine answers ng ping: ${reasons.join('; ')}`, ENGINE, 'unreachable');
    }
  }

  /**
   * `offer` on the next healthy rtpengine in turn (round-robin; one that missed its last
   * watchdog ping or timed out on its last offer goes last). A timed-out one is skipped for the
   * next, and for new calls until it answers a ping.
   */
  async offerAnyTarget(params: NgMessage): Promise<{ target: NgTarget; reply: NgMessage }> {
    let lastErr: MediaError | undefined;
    const start = this.next++ % this.targets.length;
    const turn = this.targets.map((_, i) => this.targets[(start + i) % this.targets.length]!);
    const order = [...turn.filter((t) => this.watch.healthy(t)), ...turn.filter((t) => !this.watch.healthy(t))];
    for (const target of order) {
      try {
        return { target, reply: await this.ng.request(target, 'offer', params) };
      } catch (err) {
        if (!(err instanceof MediaError) || err.reason !== 'timeout') throw err;
        lastErr = err;
        this.watch.offerTimedOut(target);
        this.log.warn({ rtpengine: `${target.host}:${target.port}` }, 'rtpengine offer timed out, trying the next one');
        // It may have created the call after all, or still create it (an overloaded rtpengine
        // works through its queue): delete it now and again until rtpengine confirms (./orphans.ts).
        this.orphans.add(target, params['call-id'] as string, 'offer timed out');
      }
    }
    throw lastErr ?? new MediaError('no rtpengine configured', ENGINE, 'no target');
  }

  /** `delete` on every rtpengine (which one held the call is not known here); an unknown call id is fine. */
  async deleteForeign(callId: string): Promise<void> {
    await Promise.allSettled(this.targets.map((t) => this.ng.request(t, 'delete', { 'call-id': callId, ...DELETE_NOW })));
  }

  createSession(callId: string): MediaSession {
    const s = new RtpengineSession(callId, this, this.log, this.opts.whatsappMediaTimeoutSec);
    this.sessions.add(s);
    return s;
  }

  forget(s: RtpengineSession): void {
    this.sessions.delete(s);
  }

  async readiness(): Promise<EngineReadiness> {
    const results = await Promise.allSettled(this.targets.map((t) => this.ng.request(t, 'ping')));
    const up = results.filter((r) => r.status === 'fulfilled').length;
    const down = results.flatMap((r, i) =>
      r.status === 'rejected' ? [`rtpengine ${this.targets[i]!.host}:${this.targets[i]!.port}: ${(r.reason as Error).message}`] : [],
    );
    const detail = { instances: this.targets.length, up };
    if (up === 0) return { ready: false, reason: down.join('; '), detail };
    return down.length > 0 ? { ready: true, reason: down.join('; '), detail } : { ready: true, detail };
  }

  async listSessions(): Promise<string[]> {
    const ids = new Set<string>();
    for (const t of this.targets) {
      const reply = await this.ng.request(t, 'list', { limit: 1_000_000 });
      const calls = reply['calls'];
      if (Array.isArray(calls)) for (const c of calls) ids.add(String(c));
    }
    return [...ids];
  }

  async close(): Promise<void> {
    this.watch.close();
    await Promise.all([...this.sessions].map((s) => s.close()));
    this.orphans.close();
    this.ng.close();
  }
}

export async function createRtpengineEngine(opts: RtpengineEngineOptions): Promise<MediaEngine> {
  if (opts.ng.length === 0) throw new MediaError('no rtpengine ng address configured', ENGINE, 'no target');
  const log = opts.logger.child({ engine: ENGINE });
  const engine = new RtpengineEngine(opts, log);
  try {
    await engine.pingAll();
  } catch (err) {
    if (opts.allowUnreachable) {
      log.error({ err }, 'no rtpengine reachable at start-up; WhatsApp calls will be rejected until one answers');
      return engine;
    }
    await engine.close();
    throw err;
  }
  return engine;
}
