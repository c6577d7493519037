import Fastify, { LogController } from 'fastify';
import type { Logger } from '../util/log.js';
import { registerWebhookRoutes, type WebhookRouteDeps } from './webhook-route.js';

export interface HttpDeps extends WebhookRouteDeps {
  /** Liveness (`/healthz`): the process serves. `ok: false` answers 503. */
  health: () => Promise<{ ok: boolean; [k: string]: unknown }>;
  /**
   * Readiness (`/readyz`): whether a new call would be taken now (media engine, SIP listeners,
   * not draining), each reason named. `ready: false` answers 503. Without it, `/readyz` answers
   * as `/healthz` does.
   */
  ready?: () => Promise<{ ready: boolean; [k: string]: unknown }>;
}

/**
 * The HTTP face of the bridge: WhatsApp's webhook (Meta's subscription handshake, signed POSTs)
 * and liveness/readiness checks. Webhooks are verified over the raw bytes, acknowledged at once, and
 * processed after the response (Meta retries anything slow or non-2xx).
 */
export function createHttpServer(deps: HttpDeps) {
  const app = Fastify({ loggerInstance: deps.log.child({ component: 'http' }), logController: new LogController({ disableRequestLogging: true }), bodyLimit: 1024 * 1024 });
  // Keep the raw bytes: the signature covers them, not a re-serialised object.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.get('/healthz', async (_req, reply) => {
    const h = await deps.health();
    return reply.code(h.ok ? 200 : 503).send(h);
  });

  app.get('/readyz', async (_req, reply) => {
    if (!deps.ready) {
      const h = await deps.health();
      return reply.code(h.ok ? 200 : 503).send(h);
    }
    const r = await deps.ready();
    return reply.code(r.ready ? 200 : 503).send(r);
  });

  registerWebhookRoutes(app, deps);
  return app;
}
