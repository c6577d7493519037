import Fastify, { LogController } from 'fastify';
import type { Logger } from '../util/log.js';
import type { WaEvent, ParsedWebhook } from '../whatsapp/types.js';

export interface WebhookSecurity {
  /** HMAC secret; empty disables signature checks (logged as a warning at start-up). */
  appSecret: string;
  /** Header carrying the signature: Meta's `x-hub-signature-256`, 360dialog's `x-360dialog-signature`. */
  signatureHeader: string;
  verify: (rawBody: Buffer, header: string | undefined, secret: string) => boolean;
  /** `hub.verify_token` expected on the subscription handshake; empty refuses every handshake. */
  verifyToken: string;
}

export interface HttpDeps {
  log: Logger;
  security: WebhookSecurity;
  parse: (body: unknown) => ParsedWebhook;
  /** Gets the events after the 200 has been sent. */
  onEvents: (events: WaEvent[]) => void;
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

  for (const path of ['/webhook', '/webhooks/whatsapp']) {
    // Meta's subscription handshake: echo hub.challenge when hub.verify_token matches.
    app.get(path, async (req, reply) => {
      const q = req.query as Record<string, string | undefined>;
      const token = deps.security.verifyToken;
      if (q['hub.mode'] === 'subscribe' && token !== '' && q['hub.verify_token'] === token && q['hub.challenge'] !== undefined) {
        return reply.code(200).type('text/plain').send(q['hub.challenge']);
      }
      deps.log.warn({ mode: q['hub.mode'] }, 'webhook verification refused (wrong hub.verify_token or mode)');
      return reply.code(403).send({ error: 'verification failed' });
    });

    app.post(path, async (req, reply) => {
      const raw = req.body;
      if (!Buffer.isBuffer(raw)) {
        return reply.code(415).send({ error: 'expected application/json' });
      }
      const { appSecret, signatureHeader, verify } = deps.security;
      if (appSecret !== '') {
        const header = req.headers[signatureHeader];
        if (!verify(raw, Array.isArray(header) ? header[0] : header, appSecret)) {
          deps.log.warn({ ip: req.ip, hasSignature: header !== undefined }, 'webhook with a bad or missing signature refused');
          return reply.code(401).send({ error: 'invalid signature' });
        }
      }
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        deps.log.warn({ bytes: raw.length }, 'webhook body is not JSON; refused');
        return reply.code(400).send({ error: 'body is not valid JSON' });
      }
      const parsed = deps.parse(body);
      for (const ig of parsed.ignored) deps.log.info({ ignored: ig }, 'webhook content not handled; acknowledged');
      reply.code(200).send({ ok: true });
      // Process after the acknowledgement; a failure here is the bridge's, not the sender's.
      setImmediate(() => {
        try {
          deps.onEvents(parsed.events);
        } catch (err) {
          deps.log.error({ err }, 'webhook processing failed');
        }
      });
      return reply;
    });
  }
  return app;
}
