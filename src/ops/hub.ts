/**
 * The operations side, wired once by the composition root: it observes calls (the bridge's
 * CallObserver and ended-call records), SIP messages (the stack's tap), Graph requests (a
 * decorator on the calls API) and webhook events, and feeds the metrics, the call records and
 * the call traces behind the live view. Each feed is cheap: a counter increment, an array push;
 * message text is serialised only while someone can look at it (the admin view is configured).
 */
import type { EndedCallRecord } from '../bridge/bridge.js';
import { callKeyOfMediaSession, type CallObserver, type StartedCall } from '../bridge/observer.js';
import type { MediaEngine, MediaLegStats } from '../media/types.js';
import type { SipWireEvent } from '../sip/types.js';
import type { Logger } from '../util/log.js';
import type { WhatsAppCounters } from '../whatsapp/counters.js';
import type { WaEvent, WhatsAppCallingApi } from '../whatsapp/types.js';
import { GraphApiError } from '../whatsapp/types.js';
import type { CallRecord, CdrSink, MediaLegStats as CdrLeg } from './cdr.js';
import type { BridgeMetrics } from './metrics.js';
import { estimateMos } from './mos.js';
import type { CallTraces } from './trace.js';

export interface OpsHubDeps {
  log: Logger;
  metrics?: BridgeMetrics | undefined;
  cdr?: CdrSink | undefined;
  traces?: CallTraces | undefined;
}

export class OpsHub implements CallObserver {
  constructor(private readonly deps: OpsHubDeps) {}

  // ---------------------------------------------------------------- calls

  started(c: StartedCall): void {
    this.deps.metrics?.callStarted(c.direction);
    const t = this.deps.traces;
    if (!t) return;
    t.start(c.key, { direction: c.direction, waCallId: c.waCallId, sipCallId: c.sipCallId, whatsappUser: c.whatsappUser, pbx: c.pbx });
    if (c.opaque) t.alias(c.key, c.opaque);
  }

  identified(key: string, ids: { waCallId?: string; sipCallId?: string }): void {
    const other = ids.sipCallId ?? ids.waCallId;
    if (other) this.deps.traces?.alias(key, other, ids);
  }

  ended(rec: EndedCallRecord): void {
    const outcome = callOutcome(rec);
    const m = this.deps.metrics;
    if (m) {
      // A call refused before it started was never counted as active.
      if (rec.label.startsWith('refused-')) m.callsTotal.inc({ direction: rec.direction, outcome, cause: rec.label });
      else m.callEnded(rec.direction, outcome, rec.label);
      const s = rec.times?.setupMs ?? {};
      if (s.webhookToInvite !== undefined) m.setup('webhook_to_invite', s.webhookToInvite);
      if (s.pbxAnswerToAccept !== undefined) m.setup('pbx_answer_to_accept', s.pbxAnswerToAccept);
      if (s.pbxInviteToConnect !== undefined) m.setup('pbx_invite_to_connect', s.pbxInviteToConnect);
      if (s.whatsappAnswerTo200 !== undefined) m.setup('whatsapp_answer_to_200', s.whatsappAnswerTo200);
      const media = rec.media;
      if (media) {
        for (const [leg, l] of [['whatsapp', media.whatsapp], ['pbx', media.pbx]] as const) {
          m.mediaPackets.inc({ engine: media.engine, leg, direction: 'in' }, l.packetsIn);
          m.mediaPackets.inc({ engine: media.engine, leg, direction: 'out' }, l.packetsOut);
          if (l.lost !== undefined) m.mediaLost.inc({ engine: media.engine, leg }, l.lost);
          if (l.jitterMs !== undefined && l.packetsIn > 0) m.mediaJitter.observe({ engine: media.engine, leg }, l.jitterMs);
        }
        if (media.keepaliveFrames) m.keepaliveFrames.inc({ engine: media.engine }, media.keepaliveFrames);
      }
    }
    this.deps.cdr?.write(callRecord(rec, outcome));
    const key = rec.key ?? (rec.direction === 'inbound' ? rec.waCallId : rec.sipCallId);
    if (key) this.deps.traces?.end(key, rec.label);
  }

  // ---------------------------------------------------------------- wire feeds

  /** Every SIP message the stack sends or receives. */
  sip(e: SipWireEvent): void {
    this.deps.metrics?.sip(e.direction, e.method, e.status);
    const t = this.deps.traces;
    if (!t || !e.callId) return;
    const label = e.status === undefined ? e.method : `${e.status} (${e.method})`;
    const [from, to] = e.direction === 'out' ? (['bridge', 'pbx'] as const) : (['pbx', 'bridge'] as const);
    t.arrow(e.callId, from, to, 'sip', label, e.text());
  }

  /** Webhook events as they reach the bridge (after authentication and validation). */
  webhookEvents(events: readonly WaEvent[]): void {
    this.deps.metrics?.webhook('accepted', events.length);
    const t = this.deps.traces;
    if (!t) return;
    for (const ev of events) {
      if (ev.kind === 'permission_reply') continue;
      const label = ev.kind === 'status' ? `status ${ev.status}` : ev.kind;
      t.arrow(ev.callId, 'whatsapp', 'bridge', 'webhook', label, JSON.stringify(ev, null, 1));
    }
  }

  /** The calls API with every request counted, timed and drawn on its call's ladder. */
  instrumentGraph(api: WhatsAppCallingApi): WhatsAppCallingApi {
    const run = async <T>(action: string, key: string | undefined, body: unknown, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const t = this.deps.traces;
      if (t && key) t.arrow(key, 'bridge', 'whatsapp', 'graph', action, graphBody(body));
      try {
        const r = await fn();
        this.deps.metrics?.graph(action, 'ok', performance.now() - t0);
        if (t && key) t.arrow(key, 'whatsapp', 'bridge', 'graph', `${action}: ok`, r === undefined ? undefined : JSON.stringify(r));
        return r;
      } catch (err) {
        const result = err instanceof GraphApiError ? (err.code ? String(err.code) : `http-${err.httpStatus}`) : 'error';
        this.deps.metrics?.graph(action, result, performance.now() - t0);
        if (t && key) t.arrow(key, 'whatsapp', 'bridge', 'graph', `${action}: ${result}`, (err as Error).message);
        throw err;
      }
    };
    return {
      preAccept: (p, id, sdp) => run('pre_accept', id, { action: 'pre_accept', call_id: id, sdp }, () => api.preAccept(p, id, sdp)),
      accept: (p, id, sdp, opaque) => run('accept', id, { action: 'accept', call_id: id, sdp }, () => api.accept(p, id, sdp, opaque)),
      reject: (p, id) => run('reject', id, { action: 'reject', call_id: id }, () => api.reject(p, id)),
      terminate: (p, id) => run('terminate', id, { action: 'terminate', call_id: id }, () => api.terminate(p, id)),
      connect: (p, to, sdp, opaque) => run('connect', opaque, { action: 'connect', to, sdp }, () => api.connect(p, to, sdp, opaque)),
      getCallPermissions: (p, waId) => run('call_permissions', undefined, undefined, () => api.getCallPermissions(p, waId)),
      sendCallPermissionRequest: (p, to, text) => run('permission_request', undefined, undefined, () => api.sendCallPermissionRequest(p, to, text)),
    };
  }

  /**
   * The media engine the bridge uses, with each session's milestones drawn on its call's ladder
   * (the session's name gives its call: callKeyOfMediaSession).
   */
  instrumentMedia(engine: MediaEngine): MediaEngine {
    const t = this.deps.traces;
    if (!t) return engine;
    return {
      name: engine.name,
      createSession: (id) => {
        const s = engine.createSession(id);
        const key = callKeyOfMediaSession(id);
        s.onMilestone?.((m) => t.arrow(key, m.from, m.to, 'media', m.label));
        return s;
      },
      listSessions: () => engine.listSessions(),
      readiness: () => engine.readiness(),
      ...(engine.deleteForeign ? { deleteForeign: (id: string) => engine.deleteForeign!(id) } : {}),
      close: () => engine.close(),
    };
  }

  /** The WhatsApp layer's own counters (auth refusals, dropped events, retries), read at scrape time. */
  exportCounters(counters: WhatsAppCounters): void {
    const m = this.deps.metrics;
    if (!m) return;
    m.addCollector('wasip_whatsapp_events_total', 'WhatsApp-side events by name: webhook refusals and drops, Graph retries, rate limits and reconciliations', () =>
      counters.snapshot().map((s) => ({ labels: { name: s.name, detail: Object.values(s.labels).join(',') }, value: s.value })),
    );
  }
}

/** A Graph request as the view shows it: the JSON fields, then the SDP as lines (not one escaped string). */
function graphBody(body: unknown): string | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const { sdp, ...rest } = body as { sdp?: string };
  return JSON.stringify(rest, null, 1) + (sdp ? `\n\nsession.sdp:\n${sdp}` : '');
}

/** answered, refused (before it started), unanswered (rang or failed before an answer). */
function callOutcome(rec: EndedCallRecord): string {
  if (rec.label.startsWith('refused-')) return 'refused';
  return rec.times?.answeredAt !== undefined ? 'answered' : 'unanswered';
}

function cdrLeg(l: MediaLegStats): CdrLeg {
  return {
    codec: l.codec,
    packetsIn: l.packetsIn,
    packetsOut: l.packetsOut,
    ...(l.lossRatio !== undefined ? { lossRatio: Math.round(l.lossRatio * 10_000) / 10_000 } : {}),
    ...(l.jitterMs !== undefined ? { jitterMs: l.jitterMs } : {}),
    ...(l.packetsIn > 0 && l.lossRatio !== undefined ? { mos: estimateMos({ codec: l.codec, lossRatio: l.lossRatio, jitterMs: l.jitterMs ?? 0 }) } : {}),
  };
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

function callRecord(rec: EndedCallRecord, outcome: string): CallRecord {
  const t = rec.times;
  const endedAt = t?.endedAt ?? Date.now();
  const answered = t?.answeredAt;
  return {
    direction: rec.direction,
    waCallId: rec.waCallId,
    sipCallId: rec.sipCallId,
    phoneNumberId: rec.phoneNumberId,
    whatsappUser: rec.whatsappUser,
    businessNumber: rec.businessNumber,
    pbxTarget: rec.pbxTarget,
    route: rec.route,
    receivedAt: iso(t?.receivedAt ?? endedAt)!,
    ...(t?.ringingAt !== undefined ? { ringingAt: iso(t.ringingAt) } : {}),
    ...(answered !== undefined ? { answeredAt: iso(answered) } : {}),
    endedAt: iso(endedAt)!,
    durationSec: answered !== undefined ? Math.max(0, Math.round((endedAt - answered) / 100) / 10) : 0,
    outcome,
    cause: rec.label,
    whatsappEnd: { action: rec.whatsapp },
    sipEnd: typeof rec.sip === 'number' ? { message: 'final', status: rec.sip } : { message: rec.sip },
    ...(t?.setupMs && Object.keys(t.setupMs).length > 0 ? { setupMs: roundAll(t.setupMs) } : {}),
    ...(rec.media ? { media: { engine: rec.media.engine, whatsapp: cdrLeg(rec.media.whatsapp), pbx: cdrLeg(rec.media.pbx) } } : {}),
  };
}

function roundAll(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}
