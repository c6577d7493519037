import type { FastifyInstance } from 'fastify';
import type { Logger } from '../util/log.js';
import type { WhatsAppCounters } from '../whatsapp/counters.js';
import type { ParsedWebhook, WaEvent } from '../whatsapp/types.js';
import type { WebhookAuth } from '../whatsapp/webhook-auth.js';

export interface WebhookRouteDeps {
  log: Logger;
  /** Who may post (signature, 360dialog shared header, unsigned trial) and the GET handshake. */
  security: Pick<WebhookAuth, 'check' | 'challenge'>;
  parse: (body: unknown) => ParsedWebhook;
  /** Gets the events after the 200 has been sent. */
  onEvents: (events: WaEvent[]) => void;
  counters?: WhatsAppCounters | undefined;
}

export const WEBHOOK_PATHS = ['/webhook', '/webhooks/whatsapp'] as const;

/**
 * WhatsApp's webhook: Meta's subscription handshake (GET, verify token compared in constant
 * time) and POSTs authenticated over the raw bytes, acknowledged at once and processed after the
 * response (Meta and 360dialog retry anything slow or non-2xx). Needs the raw-buffer JSON parser
 * that `createHttpServer` installs.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any server/logger flavour of fastify
export function registerWebhookRoutes(app: FastifyInstance<any, any, any, any>, deps: WebhookRouteDeps): void {
  const log = deps.log.child({ component: 'webhook' });
  for (const path of WEBHOOK_PATHS) {
    app.get(path, async (req, reply) => {
      const challenge = deps.security.challenge(req.query);
      if (challenge !== undefined) return reply.code(200).type('text/plain').send(challenge);
      const mode = (req.query as Record<string, unknown>)['hub.mode'];
      log.warn({ ip: req.ip, mode: typeof mode === 'string' ? mode.slice(0, 32) : undefined }, 'webhook verification refused (wrong hub.verify_token or mode)');
      return reply.code(403).send({ error: 'verification failed' });
    });

    app.post(path, async (req, reply) => {
      const raw = req.body;
      if (!Buffer.isBuffer(raw)) return reply.code(415).send({ error: 'expected application/json' });
      const auth = deps.security.check(raw, req.headers, req.ip);
      if (!auth.ok) {
        log.warn({ ip: req.ip, reason: auth.reason, bytes: raw.length }, 'webhook refused: not authenticated as the sender');
        return reply.code(401).send({ error: 'invalid signature' });
      }
      if (!auth.authenticated) log.warn({ ip: req.ip, bytes: raw.length }, 'UNSIGNED webhook accepted (whatsapp.allowUnsignedWebhooks)');
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        log.warn({ ip: req.ip, bytes: raw.length }, 'webhook body is not JSON; refused');
        return reply.code(400).send({ error: 'body is not valid JSON' });
      }
      const parsed = deps.parse(body);
      for (const ig of parsed.ignored) {
        if (ig.invalid) {
          deps.counters?.inc('webhook_events_dropped', { reason: ig.invalid });
          log.warn({ ignored: ig, ...(ig.callId ? { waCallId: ig.callId } : {}) }, 'webhook event dropped: invalid input');
        } else if (ig.overCap) {
          deps.counters?.inc('webhook_events_over_cap', {}, ig.overCap);
          log.warn({ ignored: ig }, 'webhook events over the per-POST cap dropped');
        } else {
          log.info({ ignored: ig }, 'webhook content not handled; acknowledged');
        }
      }
      for (const n of parsed.notes ?? []) {
        if (n.kind === 'name-dropped') deps.counters?.inc('webhook_names_dropped');
        log.warn({ waCallId: n.callId, reason: n.reason }, 'webhook field left out: invalid input');
      }
      reply.code(200).send({ ok: true });
      // Process after the acknowledgement; a failure here is the bridge's, not the sender's.
      setImmediate(() => {
        try {
          deps.onEvents(parsed.events);
        } catch (err) {
          log.error({ err }, 'webhook processing failed');
        }
      });
      return reply;
    });
  }
}
