/**
 * The internal hop between bridge instances: `POST /internal/events` carries webhook events to
 * the instance that owns their call. It listens on its own (internal) address, never on the
 * public webhook listener, and every request is signed with the shared cluster secret:
 * `x-wsb-signature: sha256=<hex HMAC of the raw body>`, checked in constant time. The body names
 * when it was sent; anything older than `maxAgeMs` is refused (a replayed capture).
 */
import { createHmac } from 'node:crypto';
import { safeEqual } from '../util/safe-equal.js';
import Fastify, { LogController } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../util/log.js';
import type { WaEvent } from '../whatsapp/types.js';

export const SIGNATURE_HEADER = 'x-wsb-signature';

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function signatureValid(secret: string, body: Buffer, header: unknown): boolean {
  if (typeof header !== 'string') return false;
  return safeEqual(header, signBody(secret, body.toString('utf8')));
}

const id = z.string().min(1).max(256);
// The events were parsed and validated by the instance that took the webhook; this checks the
// shape again, since a bug or a stolen key must not reach the bridge with junk.
const base = { phoneNumberId: id, businessNumber: z.string().max(32), timestamp: z.number() };
const eventSchema = z.discriminatedUnion('kind', [
  z.looseObject({ kind: z.literal('connect'), callId: id, ...base, direction: z.enum(['USER_INITIATED', 'BUSINESS_INITIATED']), userWaId: z.string().max(32), sdpType: z.enum(['offer', 'answer']), sdp: z.string().max(64 * 1024) }),
  z.looseObject({ kind: z.literal('terminate'), callId: id, ...base, status: z.string().max(64), errors: z.array(z.unknown()).max(50) }),
  z.looseObject({ kind: z.literal('status'), callId: id, ...base, status: z.string().max(64) }),
  z.looseObject({ kind: z.literal('permission_reply'), ...base, userWaId: z.string().max(32), response: z.enum(['accept', 'reject']), isPermanent: z.boolean() }),
]);
export const forwardSchema = z.object({ from: id, sentAt: z.number(), events: z.array(eventSchema).min(1).max(100) });
export type ForwardBody = { from: string; sentAt: number; events: WaEvent[] };

export interface InternalServerDeps {
  log: Logger;
  secret: string;
  maxAgeMs?: number;
  /** Events another instance sent here, for this instance's bridge. */
  onEvents(events: WaEvent[], from: string): void;
}

export function createInternalServer(deps: InternalServerDeps) {
  const log = deps.log.child({ component: 'cluster-http' });
  const app = Fastify({ loggerInstance: log, logController: new LogController({ disableRequestLogging: true }), bodyLimit: 1024 * 1024 });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const maxAgeMs = deps.maxAgeMs ?? 30_000;

  app.post('/internal/events', async (req, reply) => {
    const raw = req.body;
    if (!Buffer.isBuffer(raw) || !signatureValid(deps.secret, raw, req.headers[SIGNATURE_HEADER])) {
      log.warn({ from: req.ip }, 'internal event hop refused: bad or missing signature');
      return reply.code(401).send({ error: 'bad signature' });
    }
    let parsed: z.infer<typeof forwardSchema>;
    try {
      parsed = forwardSchema.parse(JSON.parse(raw.toString('utf8')));
    } catch (err) {
      log.warn({ from: req.ip, error: err instanceof Error ? err.message.slice(0, 300) : String(err) }, 'internal event hop refused: malformed body');
      return reply.code(400).send({ error: 'malformed body' });
    }
    if (Math.abs(Date.now() - parsed.sentAt) > maxAgeMs) {
      log.warn({ from: parsed.from, ageMs: Date.now() - parsed.sentAt }, 'internal event hop refused: too old (replay?)');
      return reply.code(400).send({ error: 'stale' });
    }
    deps.onEvents(parsed.events as unknown as WaEvent[], parsed.from);
    return reply.code(202).send({ accepted: parsed.events.length });
  });
  return app;
}
