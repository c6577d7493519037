import type { SimulatorEndpoint } from '../../src/simulator/whatsapp.js';
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
      embedded: { rtpHost: '127.0.0.1', rtpAdvertiseHost: '127.0.0.1', iceAddresses: ['127.0.0.1'], ...randomMediaRange() },
      ...o.media,
    },
    ...o.rest,
  };
}
