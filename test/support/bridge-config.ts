import type { Logger } from 'pino';
import { startApp, type RunningApp } from '../../src/app.js';
import { buildConfig } from '../../src/config/load.js';
import type { SimulatorEndpoint, WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { freeDualPort } from '../harness/ports.js';
import { randomMediaRange } from '../harness/rtpengine.js';

export interface LoopbackConfigOptions {
  /** The Graph API the bridge calls, with its token and webhook secret (a simulator's `endpoint`). */
  graph: SimulatorEndpoint;
  /** SIP on 127.0.0.1, UDP and TCP on this port (from `freeDualPort`). */
  sipPort: number;
  /** Added to the `whatsapp`, `sip` and `media` sections (e.g. phone number ids, retry, the engine). */
  whatsapp?: Record<string, unknown>;
  sip?: Record<string, unknown>;
  media?: Record<string, unknown>;
  /** Added to `media.embedded` (e.g. `workers`). */
  embedded?: Record<string, unknown>;
  /** Other sections (routing, outbound, calls, ops...). */
  rest?: Record<string, unknown>;
}

/**
 * The raw config (for `buildConfig`) of a bridge on loopback, as the end-to-end tests and the
 * benches run it: HTTP on a free port, SIP on 127.0.0.1, Meta's Graph at `graphUrl`, and the
 * embedded engine on 127.0.0.1 with a port range of its own (so runs side by side never share one).
 */
export function loopbackConfig(o: LoopbackConfigOptions): Record<string, unknown> {
  return {
    http: { host: '127.0.0.1', port: 0 },
    whatsapp: { provider: 'meta', graphBaseUrl: o.graph.graphUrl, graphVersion: 'v23.0', accessToken: o.graph.accessToken, appSecret: o.graph.appSecret, ...o.whatsapp },
    sip: { udp: { host: '127.0.0.1', port: o.sipPort }, tcp: { host: '127.0.0.1', port: o.sipPort }, ...o.sip },
    media: {
      engine: 'embedded',
      embedded: { rtpHost: '127.0.0.1', rtpAdvertiseHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...randomMediaRange(), ...o.embedded },
      ...o.media,
    },
    ...o.rest,
  };
}

export interface LoopbackBridge {
  app: RunningApp;
  /** Its SIP port on 127.0.0.1 (UDP and TCP). */
  sipPort: number;
}

/**
 * A bridge on loopback (`loopbackConfig`, on a free SIP port) for the simulator `sim`, started
 * with `log`, with the simulator's webhooks pointed at it.
 */
export async function startLoopbackBridge(sim: WhatsAppSimulator, o: Omit<LoopbackConfigOptions, 'graph' | 'sipPort'>, log: Logger): Promise<LoopbackBridge> {
  const sipPort = await freeDualPort('127.0.0.1');
  const app = await startApp(buildConfig(loopbackConfig({ ...o, graph: sim.endpoint, sipPort })), log);
  sim.setWebhookUrl(`${app.url}/webhook`);
  return { app, sipPort };
}
