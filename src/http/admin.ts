/**
 * The operator's side of the HTTP server: `/metrics` (Prometheus) and, when admin tokens are
 * configured, the admin API and the live call view under `/admin/`.
 *
 * Authentication: `Authorization: Bearer <token>` for API clients (a CRM, a script), or a
 * session cookie for the browser, set by `POST /admin/login` with a valid token (HttpOnly,
 * SameSite=Strict, path /admin, expiring). Tokens are compared in constant time, each has a
 * name, and every action is logged with that name and the client's address. The view's page
 * itself holds no data: everything it shows comes from the authenticated API.
 */
import { FailureLimiter } from '../util/failure-limiter.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../util/log.js';
import type { BridgeMetrics } from '../ops/metrics.js';
import type { CallTraces, TraceUpdate } from '../ops/trace.js';
import { CALL_VIEW_HTML, LOGIN_HTML } from './callview-page.js';
import type { ClickPlaced } from '../bridge/click-call.js';

export interface AdminToken {
  name: string;
  token: string;
}

export type ReloadResult = { ok: true } | { ok: false; error: string };

/** What an operator may do to the running bridge. */
export interface AdminActions {
  /** Ends both legs of a live call; false if no such call. */
  hangup: (id: string, by: string) => Promise<boolean>;
  /** Re-reads the configuration and takes its routing for new calls. */
  reloadRouting: (by: string) => ReloadResult;
  /**
   * Click to call: `body` ({ to, extension, phoneNumberId? }, unvalidated) as posted by `by`.
   * Resolves once WhatsApp took the call (its ids), or with the HTTP status saying why not.
   */
  placeCall: (body: unknown, by: string) => Promise<ClickPlaced>;
}

export interface AdminDeps {
  log: Logger;
  metrics?: { registry: BridgeMetrics; token?: string | undefined } | undefined;
  admin?:
    | (AdminActions & {
        tokens: AdminToken[];
        traces: CallTraces;
        sessionTtlSec?: number;
      })
    | undefined;
}

const COOKIE = 'wasip_admin';
/** Wrong tokens from one address within a minute before it is refused for BLOCK_SEC. */
const MAX_FAILURES = 10;
const BLOCK_SEC = 300;
const MAX_SESSIONS = 1000;

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** The name of the token `given` matches, comparing digests in constant time. */
function tokenName(tokens: AdminToken[], given: string | undefined): string | undefined {
  if (!given) return undefined;
  const g = digest(given);
  let found: string | undefined;
  for (const t of tokens) if (timingSafeEqual(digest(t.token), g)) found ??= t.name;
  return found;
}

/** A request body as JSON (the server may hand it over raw), or undefined when it is not JSON. */
function jsonBody(body: unknown): unknown {
  try {
    return Buffer.isBuffer(body) ? (JSON.parse(body.toString('utf8')) as unknown) : typeof body === 'string' ? (JSON.parse(body) as unknown) : body;
  } catch {
    return undefined;
  }
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

function cookie(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any server/logger flavour of fastify
export type AnyFastify = FastifyInstance<any, any, any, any>;

export function registerOps(app: AnyFastify, deps: AdminDeps): void {
  const m = deps.metrics;
  if (m) {
    app.get('/metrics', async (req, reply) => {
      if (m.token && tokenName([{ name: 'metrics', token: m.token }], bearer(req)) === undefined) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'metrics token required' });
      }
      return reply.type(m.registry.contentType).send(await m.registry.text());
    });
  }
  if (deps.admin && deps.admin.tokens.length > 0) registerAdmin(app, deps.admin, deps.log.child({ component: 'admin' }));
}

function registerAdmin(app: AnyFastify, a: NonNullable<AdminDeps['admin']>, log: Logger): void {
  const ttlMs = (a.sessionTtlSec ?? 12 * 3600) * 1000;
  /** Browser sessions: random id → who and until when. Bounded; the oldest goes first. */
  const sessions = new Map<string, { name: string; until: number }>();

  const who = (req: FastifyRequest): string | undefined => {
    const byToken = tokenName(a.tokens, bearer(req));
    if (byToken) return byToken;
    const sid = cookie(req, COOKIE);
    const s = sid ? sessions.get(sid) : undefined;
    if (!s) return undefined;
    if (s.until < Date.now()) {
      sessions.delete(sid!);
      return undefined;
    }
    return s.name;
  };
  /** Wrong tokens per client address: past the limit, the address is refused for a while without a check. */
  const failures = new FailureLimiter(MAX_FAILURES, 60_000, BLOCK_SEC * 1000);
  const blocked = (req: FastifyRequest, reply: FastifyReply): boolean => {
    if (!failures.blocked(req.ip)) return false;
    void reply.code(429).header('retry-after', String(BLOCK_SEC)).send({ error: 'too many wrong admin tokens from this address' });
    return true;
  };
  const guard = (req: FastifyRequest, reply: FastifyReply): string | undefined => {
    if (blocked(req, reply)) return undefined;
    const name = who(req);
    if (name) return name;
    if (bearer(req) !== undefined) {
      failures.fail(req.ip);
      log.warn({ ip: req.ip }, 'admin request with a wrong token refused');
    }
    void reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'admin token required' });
    return undefined;
  };

  app.get('/admin', async (_req, reply) => reply.redirect('/admin/'));
  app.get('/admin/', async (req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(who(req) ? CALL_VIEW_HTML : LOGIN_HTML));

  app.post('/admin/login', async (req, reply) => {
    if (blocked(req, reply)) return reply;
    const parsed = jsonBody(req.body);
    const token = parsed && typeof parsed === 'object' && typeof (parsed as { token?: unknown }).token === 'string' ? (parsed as { token: string }).token : undefined;
    const name = tokenName(a.tokens, token);
    if (!name) {
      failures.fail(req.ip);
      log.warn({ ip: req.ip }, 'admin login refused');
      return reply.code(401).send({ error: 'wrong token' });
    }
    failures.succeed(req.ip);
    if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
    const sid = randomBytes(24).toString('base64url');
    sessions.set(sid, { name, until: Date.now() + ttlMs });
    log.info({ admin: name, ip: req.ip }, 'admin logged in');
    return reply
      .header('set-cookie', `${COOKIE}=${sid}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=${Math.floor(ttlMs / 1000)}`)
      .send({ ok: true, name });
  });

  app.get('/admin/calls', async (req, reply) => {
    if (!guard(req, reply)) return reply;
    return a.traces.list();
  });

  app.get('/admin/calls/:id', async (req, reply) => {
    if (!guard(req, reply)) return reply;
    const t = a.traces.get((req.params as { id: string }).id);
    return t ? t : reply.code(404).send({ error: 'no such call' });
  });

  app.post('/admin/calls/:id/hangup', async (req, reply) => {
    const name = guard(req, reply);
    if (!name) return reply;
    const id = (req.params as { id: string }).id;
    log.info({ admin: name, ip: req.ip, call: id }, 'admin hangs up a call');
    const ok = await a.hangup(id, name);
    return ok ? { ok: true } : reply.code(404).send({ error: 'no such live call' });
  });

  app.post('/admin/calls', async (req, reply) => {
    const name = guard(req, reply);
    if (!name) return reply;
    log.info({ admin: name, ip: req.ip }, 'admin places a click-to-call');
    const r = await a.placeCall(jsonBody(req.body), name);
    if (r.ok) {
      log.info({ admin: name, clickId: r.id, waCallId: r.waCallId }, 'click-to-call placed; WhatsApp is calling the user');
      return reply.code(202).send(r);
    }
    log.info({ admin: name, status: r.status, label: r.label, error: r.error }, 'click-to-call not placed');
    if (r.retryAfterSec !== undefined) void reply.header('retry-after', String(r.retryAfterSec));
    return reply.code(r.status).send({ error: r.error, label: r.label });
  });

  app.post('/admin/routing/reload', async (req, reply) => {
    const name = guard(req, reply);
    if (!name) return reply;
    log.info({ admin: name, ip: req.ip }, 'admin reloads the routing');
    const r = a.reloadRouting(`admin ${name}`);
    return r.ok ? { ok: true } : reply.code(422).send(r);
  });

  // Live updates as server-sent events: the current list first, then every change.
  app.get('/admin/events', (req, reply) => {
    const name = guard(req, reply);
    if (!name) return reply;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const send = (u: TraceUpdate | { type: 'snapshot'; calls: ReturnType<CallTraces['list']> }): void => {
      // A client that does not read stops getting updates rather than growing our buffers.
      if (res.writableLength > 1 << 20) return;
      res.write(`data: ${JSON.stringify(u)}\n\n`);
    };
    send({ type: 'snapshot', calls: a.traces.list() });
    const unsubscribe = a.traces.subscribe(send);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    ping.unref();
    req.raw.on('close', () => {
      clearInterval(ping);
      unsubscribe();
    });
    log.debug({ admin: name, ip: req.ip }, 'call view connected');
    return reply;
  });
}
