import { networkInterfaces } from 'node:os';
import type { Config } from './config/schema.js';
import type { Logger } from './util/log.js';
import { Bridge } from './bridge/bridge.js';
import { bothObservers, startCluster, type Cluster } from './bridge/cluster/index.js';
import { createHttpServer } from './http/server.js';
import { createOps, type Ops } from './ops/setup.js';
import type { ReloadResult } from './http/admin.js';
import { createEmbeddedEngine, embeddedWorkerCount } from './media/embedded/index.js';
import { createRtpengineEngine } from './media/rtpengine/index.js';
import type { EngineReadiness, MediaEngine } from './media/types.js';
import { createSipStack } from './sip/stack.js';
import type { SipStack } from './sip/types.js';
import { createCallsApi } from './whatsapp/graph-client.js';
import { ConfigError } from './config/load.js';
import { webhookAuthOf } from './config/webhook.js';
import { WhatsAppCounters } from './whatsapp/counters.js';
import { createStaleConnectFilter } from './whatsapp/intake.js';
import { parseWebhook } from './whatsapp/webhook.js';
import { WebhookAuth, webhookAuthProblems, webhookAuthWarnings } from './whatsapp/webhook-auth.js';

export interface RunningApp {
  /** Base URL of the HTTP server (webhooks, health). */
  url: string;
  bridge: Bridge;
  sip: SipStack;
  media: MediaEngine;
  /** Webhook intake and Graph retry counters (for metrics). */
  whatsappCounters: WhatsAppCounters;
  /** Metrics, call records and call traces. */
  ops: Ops;
  /** Re-read the configuration and take its `routing` for new calls (SIGHUP, admin API). */
  reloadRouting(by: string): ReloadResult;
  /**
   * Drain, then stop: new calls are refused at once (readiness 503 "draining", WhatsApp reject,
   * SIP 503), calls in progress carry on until they end or shutdown.drainSec passes, then every
   * call still up is ended and the app closes.
   */
  drain(): Promise<void>;
  /** Stop now: every call ended (WhatsApp first, BYE not waited for), listeners closed. */
  close(): Promise<void>;
  /**
   * Test only: behave as a crashed instance would, seen from outside: the cluster lease is no
   * longer renewed, the HTTP and SIP listeners close, and no call is ended. `close()` still frees the rest.
   */
  abandon(): Promise<void>;
}

/**
 * The composition root: builds every layer from the validated config, wires them together and
 * starts listening. Nothing below this reads configuration on its own.
 */
export interface StartOptions {
  /** Reads and validates the configuration again (the file and the environment), for a routing reload. */
  reloadConfig?: () => Readonly<Config>;
}

export async function startApp(config: Readonly<Config>, log: Logger, opts: StartOptions = {}): Promise<RunningApp> {
  const wa = config.whatsapp;
  const whatsappCounters = new WhatsAppCounters();
  const graphCommon = { timeoutMs: wa.requestTimeoutMs, logger: log, retry: wa.retry, counters: whatsappCounters };
  const ops = createOps(config.ops, log);
  const graphApi =
    wa.provider === 'meta'
      ? createCallsApi({ provider: 'meta', baseUrl: wa.graphBaseUrl, version: wa.graphVersion, accessToken: wa.accessToken, ...graphCommon })
      : createCallsApi({ provider: '360dialog', baseUrl: wa.baseUrl, apiKey: wa.apiKey, ...graphCommon });
  const whatsapp = ops.hub.instrumentGraph(graphApi);
  ops.hub.exportCounters(whatsappCounters);
  if (wa.provider === 'meta' && wa.accessToken === '') log.warn('WA_ACCESS_TOKEN is not set: Graph API calls will be refused by Meta');
  if (wa.provider === '360dialog' && wa.apiKey === '') log.warn('WA_360DIALOG_API_KEY is not set: 360dialog will refuse call actions');
  const webhookAuth = webhookAuthOf(wa);
  const authProblems = webhookAuthProblems(webhookAuth);
  if (authProblems.length) throw new ConfigError(authProblems);
  for (const w of webhookAuthWarnings(webhookAuth)) log.warn(w);

  const listen = config.sip.udp ?? config.sip.tcp!;
  const contactHost = config.sip.contactHost ?? defaultContactHost(listen, log);
  const media = await createMediaEngine(config.media, contactHost.replace(/:\d+$/, ''), log);

  const sip = await createSipStack({
    ...(config.sip.udp ? { udp: { ...config.sip.udp } } : {}),
    ...(config.sip.tcp ? { tcp: { ...config.sip.tcp } } : {}),
    contactHost,
    userAgent: config.sip.userAgent,
    ...(config.sip.auth ? { credentials: { ...config.sip.auth } } : {}),
    inviteTimeoutMs: config.sip.inviteTimeoutSec * 1000,
    limits: { ...config.sip.limits },
    sessionTimers: { expiresSec: config.sip.sessionExpiresSec, minSec: config.sip.minSessionExpiresSec },
    logger: log,
    tap: (e) => ops.hub.sip(e),
  });

  let sipListening = true;
  const mediaReadiness = new ReadinessCache(() => media.readiness());

  const fromDomain = config.sip.fromDomain ?? contactHost.replace(/:\d+$/, '');
  // Several instances sharing call state in Redis, when `cluster` is configured (docs/scaling.md).
  let bridgeRef: Bridge | undefined;
  const cluster: Cluster | undefined = config.cluster
    ? await startCluster(config.cluster, config.calls, { sip, media, whatsapp, metrics: ops.metrics?.cluster }, log, (evs) => (bridgeRef ? bridgeRef.handleEvents(evs) : log.warn({ events: evs.length }, 'events before the bridge started; dropped')))
    : undefined;
  const observer = cluster ? bothObservers(ops.hub, cluster.node) : ops.hub;
  const bridge = new Bridge({ config, sip, media: ops.hub.instrumentMedia(media), whatsapp, log, fromDomain, whatsappCounters, observer, sharedPermissions: cluster?.permissions });
  bridgeRef = bridge;
  bridge.onCallEnded((rec) => ops.hub.ended(rec));
  if (cluster) bridge.onCallEnded((rec) => cluster.node.ended(rec));

  const dropStale = createStaleConnectFilter({ api: whatsapp, log, maxAgeSec: wa.maxWebhookAgeSec, counters: whatsappCounters });
  const http = createHttpServer({
    log,
    security: new WebhookAuth(webhookAuth, whatsappCounters),
    counters: whatsappCounters,
    parse: (body) => parseWebhook(body, { maxEvents: wa.maxEventsPerPost }),
    onEvents: (events) => {
      const fresh = dropStale(events);
      ops.hub.webhookEvents(fresh);
      if (cluster) void cluster.node.route(fresh);
      else bridge.handleEvents(fresh);
    },
    health: async () => ({
      ok: true,
      state: bridge.state,
      activeCalls: bridge.activeCalls,
      // The last readiness probe, never a session listing: liveness must stay cheap.
      media: { engine: media.name, ok: (await mediaReadiness.get())?.ready ?? null },
    }),
    ready: async () => {
      const m = await mediaReadiness.get();
      const b = bridge.status();
      const reasons: string[] = [];
      if (!m) reasons.push('media: readiness probe did not answer in time');
      else if (!m.ready) reasons.push(`media: ${m.reason ?? 'not ready'}`);
      if (!sipListening) reasons.push('sip: listeners closed');
      // Being at calls.maxConcurrent is not a reason: a new call is refused cleanly, and an
      // instance taken out of the pool would stop getting its own calls' webhooks.
      if (b.state !== 'running') reasons.push(`bridge: ${b.state}`);
      if (cluster && !cluster.node.healthy) reasons.push('cluster: Redis unreachable (lease not renewed)');
      return {
        ready: reasons.length === 0,
        state: b.state,
        reasons,
        media: { engine: media.name, ok: m?.ready ?? false, ...(m?.reason ? { reason: m.reason } : {}), ...(m?.detail ? { detail: m.detail } : {}) },
        sip: { ok: sipListening, udp: config.sip.udp, tcp: config.sip.tcp },
        bridge: { state: b.state, activeCalls: b.activeCalls, maxConcurrent: b.maxConcurrent, maxSetupsPerSec: b.maxSetupsPerSec },
      };
    },
  });
  /** Routing from a fresh read of the config; a config that does not validate changes nothing. */
  const reloadRouting = (by: string): ReloadResult => {
    if (!opts.reloadConfig) return { ok: false, error: 'this bridge was started without a config file to reload' };
    try {
      bridge.setRouting(opts.reloadConfig().routing);
      log.info({ by }, 'routing reloaded from the configuration');
      return { ok: true };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      log.error({ by, error }, 'routing reload refused: the configuration does not validate; the old routing stays');
      return { ok: false, error };
    }
  };
  ops.register(http, { hangup: (id, by) => bridge.hangup(id, by), reloadRouting, placeCall: (body, by) => bridge.placeCall(body, by) });
  const address = await http.listen({ host: config.http.host, port: config.http.port });
  log.info({ http: address, sip: { udp: config.sip.udp, tcp: config.sip.tcp }, media: media.name }, 'wa-sip-bridge started');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await bridge.close();
      await http.close();
      await cluster?.close();
      sipListening = false;
      await sip.close();
      await media.close();
      await ops.close();
      log.info('wa-sip-bridge stopped');
    })());
  let draining: Promise<void> | undefined;
  return {
    url: address.replace('0.0.0.0', '127.0.0.1'),
    bridge,
    sip,
    media,
    whatsappCounters,
    ops,
    reloadRouting,
    // The HTTP server keeps serving while draining: terminate webhooks of calls in progress.
    drain: () => (draining ??= bridge.drain(config.shutdown.drainSec * 1000).then(close)),
    close,
    abandon: async () => {
      await cluster?.abandon();
      await http.close();
      sipListening = false;
      await sip.close();
    },
  };
}

/**
 * The media engine's readiness, probed at most once a second however often /healthz and
 * /readyz are asked, and never waited on for more than a second (undefined: no answer yet).
 */
class ReadinessCache {
  private last: Promise<EngineReadiness> | undefined;
  private at = 0;
  constructor(private readonly probe: () => Promise<EngineReadiness>) {}

  get(): Promise<EngineReadiness | undefined> {
    if (!this.last || performance.now() - this.at > 1000) {
      this.at = performance.now();
      this.last = this.probe().catch((err: Error) => ({ ready: false, reason: err.message }));
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 1000)));
    return Promise.race([this.last, late]).finally(() => clearTimeout(timer));
  }
}

/**
 * The address the PBX should send requests to, when `sip.contactHost` is not set: the listen
 * address, or for a wildcard listener the host's first non-internal IPv4 address (a Contact of
 * 0.0.0.0 would be unreachable).
 */
function defaultContactHost(listen: { host: string; port: number }, log: Logger): string {
  if (listen.host !== '0.0.0.0' && listen.host !== '::') return `${listen.host}:${listen.port}`;
  const ip =
    Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1';
  log.warn({ contactHost: `${ip}:${listen.port}` }, 'sip.contactHost not set; using the first external IPv4 address (set it when the PBX must reach another address)');
  return `${ip}:${listen.port}`;
}

/** The configured media engine; switching `media.engine` changes nothing else. */
async function createMediaEngine(media: Config['media'], advertiseHost: string, log: Logger): Promise<MediaEngine> {
  if (media.engine === 'rtpengine') {
    return createRtpengineEngine({
      ng: [...media.rtpengine.ng],
      timeoutMs: media.rtpengine.timeoutMs,
      logger: log,
      allowUnreachable: true,
      whatsappMediaTimeoutSec: media.whatsappMediaTimeoutSec,
    });
  }
  const e = media.embedded;
  // Lower half of the range for plain RTP toward the PBX, upper half for ICE toward WhatsApp,
  // so a firewall can open one known range.
  const mid = Math.floor((e.portMin + e.portMax) / 2);
  return createEmbeddedEngine({
    rtpHost: e.rtpHost,
    rtpAdvertiseHost: e.rtpAdvertiseHost ?? advertiseHost,
    iceAddresses: [...e.iceAddresses],
    portMin: e.portMin,
    portMax: mid % 2 === 0 ? mid - 1 : mid,
    icePortRange: [mid + 1, e.portMax],
    pbxSource: { mode: e.pbxSource },
    whatsappMediaTimeoutSec: media.whatsappMediaTimeoutSec,
    logger: log,
    // Media in worker threads, one per core by default; each takes its own slice of both halves.
    workers: embeddedWorkerCount(e.workers),
  });
}
