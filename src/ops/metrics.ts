/**
 * The bridge's Prometheus metrics (prom-client), on a registry of their own so that tests and
 * several bridges in one process never share counters. Every name starts with `wasip_`; the
 * list with meanings is in docs/operations.md. Label values come from closed sets (directions,
 * outcomes, actions, SIP methods and codes), never from callers' data, so cardinality stays
 * bounded.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Direction = 'inbound' | 'outbound';
/** Set-up stages timed by the bridge (seconds). */
export type SetupStage = 'webhook_to_invite' | 'pbx_answer_to_accept' | 'pbx_invite_to_connect' | 'whatsapp_answer_to_200';
export type WebhookOutcome = 'accepted' | 'bad_signature' | 'duplicate' | 'stale' | 'malformed' | 'unsigned';

/** Seconds: from sub-millisecond (the bridge's own work) to seconds (a Graph round trip, a slow PBX). */
const SETUP_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const GRAPH_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class BridgeMetrics {
  readonly registry = new Registry();

  readonly callsTotal = new Counter({
    name: 'wasip_calls_total',
    help: 'Calls ended, by direction, outcome (answered/unanswered/rejected/failed) and end cause',
    labelNames: ['direction', 'outcome', 'cause'] as const,
    registers: [this.registry],
  });
  readonly callsActive = new Gauge({
    name: 'wasip_calls_active',
    help: 'Calls in progress, by direction',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly setupSeconds = new Histogram({
    name: 'wasip_setup_seconds',
    help: 'Call set-up latency added along the way, by stage',
    labelNames: ['stage'] as const,
    buckets: SETUP_BUCKETS,
    registers: [this.registry],
  });
  readonly graphRequests = new Counter({
    name: 'wasip_graph_requests_total',
    help: 'Graph API requests, by action and result (ok, a Graph error code, timeout, network)',
    labelNames: ['action', 'result'] as const,
    registers: [this.registry],
  });
  readonly graphSeconds = new Histogram({
    name: 'wasip_graph_request_seconds',
    help: 'Graph API request latency, by action',
    labelNames: ['action'] as const,
    buckets: GRAPH_BUCKETS,
    registers: [this.registry],
  });
  readonly graphRetries = new Counter({
    name: 'wasip_graph_retries_total',
    help: 'Graph API requests retried, by action and reason',
    labelNames: ['action', 'reason'] as const,
    registers: [this.registry],
  });
  readonly sipMessages = new Counter({
    name: 'wasip_sip_messages_total',
    help: 'SIP messages, by direction (in/out), method, and status code for responses ("" for requests)',
    labelNames: ['direction', 'method', 'code'] as const,
    registers: [this.registry],
  });
  readonly webhooks = new Counter({
    name: 'wasip_webhooks_total',
    help: 'Webhook deliveries and events, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly mediaPackets = new Counter({
    name: 'wasip_media_packets_total',
    help: 'RTP packets of ended calls, by engine, leg (whatsapp/pbx) and direction (in/out)',
    labelNames: ['engine', 'leg', 'direction'] as const,
    registers: [this.registry],
  });
  readonly mediaLost = new Counter({
    name: 'wasip_media_lost_packets_total',
    help: 'RTP packets lost on the way in, of ended calls, by engine and leg',
    labelNames: ['engine', 'leg'] as const,
    registers: [this.registry],
  });
  readonly mediaJitter = new Histogram({
    name: 'wasip_media_jitter_ms',
    help: 'Interarrival jitter at the end of each call, by engine and leg (ms)',
    labelNames: ['engine', 'leg'] as const,
    buckets: [1, 2, 5, 10, 20, 40, 80, 160],
    registers: [this.registry],
  });
  readonly keepaliveFrames = new Counter({
    name: 'wasip_keepalive_frames_total',
    help: 'Silence frames sent to WhatsApp while the PBX was silent, of ended calls, by engine',
    labelNames: ['engine'] as const,
    registers: [this.registry],
  });
  readonly engineReady = new Gauge({
    name: 'wasip_media_engine_ready',
    help: '1 when the media engine can take a call (as /readyz says), else 0',
    labelNames: ['engine'] as const,
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    // Event-loop delay, memory, CPU, handles: prom-client's own process metrics.
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'wasip_', eventLoopMonitoringPrecision: 10 });
  }

  callStarted(direction: Direction): void {
    this.callsActive.inc({ direction });
  }

  callEnded(direction: Direction, outcome: string, cause: string): void {
    this.callsActive.dec({ direction });
    this.callsTotal.inc({ direction, outcome, cause });
  }

  setup(stage: SetupStage, ms: number): void {
    this.setupSeconds.observe({ stage }, ms / 1000);
  }

  webhook(outcome: WebhookOutcome, n = 1): void {
    this.webhooks.inc({ outcome }, n);
  }

  graph(action: string, result: string, ms: number): void {
    this.graphRequests.inc({ action, result });
    this.graphSeconds.observe({ action }, ms / 1000);
  }

  sip(direction: 'in' | 'out', method: string, code?: number): void {
    this.sipMessages.inc({ direction, method: SIP_METHODS.has(method) ? method : 'other', code: code === undefined ? '' : String(code) });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Methods counted by name; anything else (a peer's invention, garbage) counts as 'other'. */
const SIP_METHODS = new Set(['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'INFO', 'UPDATE', 'PRACK', 'REFER', 'NOTIFY', 'SUBSCRIBE', 'MESSAGE', 'REGISTER']);
