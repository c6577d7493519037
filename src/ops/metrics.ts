/**
 * The bridge's Prometheus metrics (prom-client), on a registry of their own so that tests and
 * several bridges in one process never share counters. Every name starts with `wasip_`; the
 * list with meanings is in docs/operations.md. Label values come from closed sets (directions,
 * outcomes, actions, SIP methods and codes), never from callers' data, so cardinality stays
 * bounded.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Direction = 'inbound' | 'outbound' | 'click-to-call';
/** Set-up stages timed by the bridge (seconds). */
export type SetupStage = 'webhook_to_invite' | 'pbx_answer_to_accept' | 'pbx_invite_to_connect' | 'whatsapp_answer_to_200';
export type WebhookOutcome = 'accepted' | 'bad_signature' | 'duplicate' | 'stale' | 'malformed' | 'unsigned';

/** Seconds: from sub-millisecond (the bridge's own work) to seconds (a Graph round trip, a slow PBX). */
const SETUP_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const GRAPH_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class BridgeMetrics {
  readonly registry = new Registry();

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }
  private gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
  private histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  readonly callsTotal = this.counter('wasip_calls_total', 'Calls ended, by direction, outcome (answered/unanswered/rejected/failed) and end cause', ['direction', 'outcome', 'cause'] as const);
  readonly callsActive = this.gauge('wasip_calls_active', 'Calls in progress, by direction', ['direction'] as const);
  readonly setupSeconds = this.histogram('wasip_setup_seconds', 'Call set-up latency added along the way, by stage', ['stage'] as const, SETUP_BUCKETS);
  readonly graphRequests = this.counter('wasip_graph_requests_total', 'Graph API requests, by action and result (ok, a Graph error code, timeout, network)', ['action', 'result'] as const);
  readonly graphSeconds = this.histogram('wasip_graph_request_seconds', 'Graph API request latency, by action', ['action'] as const, GRAPH_BUCKETS);
  readonly graphRetries = this.counter('wasip_graph_retries_total', 'Graph API requests retried, by action and reason', ['action', 'reason'] as const);
  readonly sipMessages = this.counter('wasip_sip_messages_total', 'SIP messages, by direction (in/out), method, and status code for responses ("" for requests)', ['direction', 'method', 'code'] as const);
  readonly webhooks = this.counter('wasip_webhooks_total', 'Webhook deliveries and events, by outcome', ['outcome'] as const);
  readonly mediaPackets = this.counter('wasip_media_packets_total', 'RTP packets of ended calls, by engine, leg (whatsapp/pbx) and direction (in/out)', ['engine', 'leg', 'direction'] as const);
  readonly mediaLost = this.counter('wasip_media_lost_packets_total', 'RTP packets lost on the way in, of ended calls, by engine and leg', ['engine', 'leg'] as const);
  readonly mediaJitter = this.histogram('wasip_media_jitter_ms', 'Interarrival jitter at the end of each call, by engine and leg (ms)', ['engine', 'leg'] as const, [1, 2, 5, 10, 20, 40, 80, 160]);
  readonly keepaliveFrames = this.counter('wasip_keepalive_frames_total', 'Silence frames sent to WhatsApp while the PBX was silent, of ended calls, by engine', ['engine'] as const);
  readonly engineReady = this.gauge('wasip_media_engine_ready', '1 when the media engine can take a call (as /readyz says), else 0', ['engine'] as const);

  // Cluster (several instances sharing call state in Redis; src/bridge/cluster/metrics.ts). Absent without `cluster`.
  private readonly clusterMembers = this.gauge('wasip_cluster_members_alive', 'Cluster members holding a live lease, this one included (as of the last sweep)', []);
  private readonly clusterForwards = this.counter('wasip_cluster_forwarded_events_total', 'Webhook events forwarded to the instance owning their call, by result (ok, retried, failed, owner-dead)', ['result'] as const);
  private readonly clusterTakeovers = this.counter('wasip_cluster_takeovers_total', "A dead instance's calls ended by this one, by reason (confirmed, ringing, forward)", ['reason'] as const);
  private readonly clusterTakeoverSeconds = this.histogram('wasip_cluster_takeover_seconds', "From a dead instance's last lease renewal to the last of its calls ended by this one", [], [0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60]);
  private readonly clusterRedisErrors = this.counter('wasip_cluster_redis_errors_total', 'Redis commands or connections that failed, by what they were for', ['op'] as const);
  private readonly clusterLeaseFailures = this.counter('wasip_cluster_lease_renewals_failed_total', "Lease renewals that did not reach Redis (others may think this instance dead)", []);
  private readonly clusterLeaseLapses = this.counter('wasip_cluster_lease_lapsed_total', 'Renewals that found the lease had already run out: other instances may have ended calls of this one', []);
  /** What the cluster layer counts (its `ClusterMetrics`). */
  readonly cluster = {
    membersAlive: (n: number) => this.clusterMembers.set(n),
    forwarded: (result: string, events: number) => this.clusterForwards.inc({ result }, events),
    takenOver: (reason: string) => this.clusterTakeovers.inc({ reason }),
    takeoverSeconds: (s: number) => this.clusterTakeoverSeconds.observe(s),
    redisError: (op: string) => this.clusterRedisErrors.inc({ op }),
    leaseRenewalFailed: () => this.clusterLeaseFailures.inc(),
    leaseLapsed: () => this.clusterLeaseLapses.inc(),
  };

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

  /** A gauge read at scrape time from another layer's own counters. */
  addCollector(name: string, help: string, read: () => Array<{ labels: Record<string, string>; value: number }>): void {
    const g = new Gauge({
      name,
      help,
      labelNames: ['name', 'detail'],
      registers: [this.registry],
      collect() {
        g.reset();
        for (const s of read()) g.set({ name: s.labels['name'] ?? '', detail: s.labels['detail'] ?? '' }, s.value);
      },
    });
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
