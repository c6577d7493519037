/**
 * Builds the operations side from `ops.*` in the config: metrics (on by default), call records
 * (a file and/or a URL, when configured), and the call traces behind the admin view (only when
 * an admin token is set: nobody could look at them otherwise).
 */
import type { Config } from '../config/schema.js';
import { registerOps, type AdminActions, type AnyFastify } from '../http/admin.js';
import type { Logger } from '../util/log.js';
import { CdrSinks, HttpCdrPoster, JsonlCdrFile, type CdrSink } from './cdr.js';
import { OpsHub } from './hub.js';
import { BridgeMetrics } from './metrics.js';
import { CallTraces } from './trace.js';

export interface Ops {
  hub: OpsHub;
  metrics: BridgeMetrics | undefined;
  traces: CallTraces | undefined;
  /** Mounts /metrics and /admin/* on the HTTP server. */
  register(app: AnyFastify, actions: AdminActions): void;
  /** Flushes the call records. */
  close(): Promise<void>;
}

export function createOps(cfg: Config['ops'], log: Logger): Ops {
  const metrics = cfg.metrics.enabled ? new BridgeMetrics() : undefined;
  const traces = cfg.admin.tokens.length > 0 ? new CallTraces({ maxRecent: cfg.admin.recentCalls }) : undefined;
  const sinks: CdrSink[] = [];
  const cdrLog = log.child({ component: 'cdr' });
  if (cfg.cdr.file) sinks.push(new JsonlCdrFile({ path: cfg.cdr.file, maxBytes: cfg.cdr.maxBytes, keep: cfg.cdr.keep }, cdrLog));
  if (cfg.cdr.postUrl) {
    sinks.push(
      new HttpCdrPoster(
        {
          url: cfg.cdr.postUrl,
          ...(cfg.cdr.postAuthorization ? { headers: { authorization: cfg.cdr.postAuthorization } } : {}),
          attempts: cfg.cdr.postAttempts,
          backoffMs: 500,
          timeoutMs: 5000,
          maxQueue: cfg.cdr.postQueue,
        },
        cdrLog,
      ),
    );
  }
  const cdr = sinks.length > 0 ? new CdrSinks(sinks) : undefined;
  const hub = new OpsHub({ log, metrics, cdr, traces });
  return {
    hub,
    metrics,
    traces,
    register: (app, actions) =>
      registerOps(app, {
        log,
        metrics: metrics ? { registry: metrics, token: cfg.metrics.token || undefined } : undefined,
        admin: traces ? { tokens: [...cfg.admin.tokens], traces, ...actions } : undefined,
      }),
    close: async () => {
      await cdr?.close();
    },
  };
}
