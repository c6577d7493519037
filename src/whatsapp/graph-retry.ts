/**
 * Graph actions that survive a bad second (issue 9): bounded retries with exponential backoff and
 * jitter, Retry-After honoured, "already done" answers taken as success.
 *
 * What is retried, per action:
 * - Graph answered 5xx, 429, a rate-limit code or `is_transient` (`GraphApiError.isTransient`),
 *   or the connection never opened (refused, DNS): every action. A 5xx or 429 is Graph's answer
 *   that it did not do the action, and a refused connection sent nothing.
 * - The answer was lost (timeout, connection reset after sending): the idempotent actions only
 *   (pre_accept, accept, reject, terminate, the permission GET: doing them twice is harmless, and
 *   "already done" counts as success). Never `connect` or the permission-request message: a
 *   second connect places a second call. Such a failure is thrown with `outcomeUnknown` set; a
 *   lost connect is reconciled by its webhook (src/bridge/connect-reconciler.ts).
 * - Anything else (4xx: bad SDP, no permission, unknown call) is final.
 *
 * Delays: attempt n waits base·2^(n-1) capped at maxDelayMs, with equal jitter (half fixed, half
 * random) so calls that failed together do not retry together. A Retry-After (or a rate-limit
 * code) is honoured as a floor; one above maxDelayMs gives up at once rather than hold a call
 * that WhatsApp will time out anyway.
 */
import type { Logger } from '../util/log.js';
import type { WhatsAppCounters } from './counters.js';
import { GraphApiError } from './types.js';

export type GraphAction = 'pre_accept' | 'accept' | 'reject' | 'terminate' | 'connect' | 'call_permissions' | 'call_permission_request';

export interface RetryPolicy {
  /** Tries in all, the first included; 1 = no retry. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 3, baseDelayMs: 200, maxDelayMs: 3000 };

/** Graph codes that mean "slow down": app/user rate limits, throughput, pair rate, call rate. */
export const RATE_LIMIT_CODES: ReadonlySet<number> = new Set([4, 17, 32, 613, 80007, 130429, 131056, 138005]);

/** Actions that may be repeated when their answer was lost. */
const IDEMPOTENT: ReadonlySet<GraphAction> = new Set(['pre_accept', 'accept', 'reject', 'terminate', 'call_permissions']);

/** Graph's wording for an action that was already done (the simulator's too); success. */
const ALREADY_DONE: Partial<Record<GraphAction, RegExp>> = {
  pre_accept: /already (pre-?accepted|accepted)/i,
  accept: /already accepted/i,
  reject: /already (rejected|terminated|ended|completed)/i,
  terminate: /already (terminated|ended|completed|rejected)/i,
};

export function isRateLimited(err: GraphApiError): boolean {
  return err.httpStatus === 429 || RATE_LIMIT_CODES.has(err.code);
}

export function isAlreadyDone(action: GraphAction, err: GraphApiError): boolean {
  const re = ALREADY_DONE[action];
  return re !== undefined && err.httpStatus >= 400 && err.httpStatus < 500 && re.test(`${err.message} ${err.details ?? ''}`);
}

export type Verdict = 'retry' | 'final' | 'already-done';

export function classify(action: GraphAction, err: unknown): Verdict {
  if (!(err instanceof GraphApiError)) return 'final';
  if (isAlreadyDone(action, err)) return 'already-done';
  if (err.transport === 'not-sent') return 'retry';
  if (err.transport === 'lost') return IDEMPOTENT.has(action) ? 'retry' : 'final';
  if (isRateLimited(err) || err.httpStatus >= 500 || err.isTransient === true) return 'retry';
  return 'final';
}

export interface RetryDeps {
  policy: RetryPolicy;
  /** A logger, or a function building one on first use (most actions log nothing). */
  log: Logger | (() => Logger);
  counters?: WhatsAppCounters | undefined;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number): number {
  const d = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(d / 2 + random() * (d / 2));
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Run `fn` for `action` with the policy above. Resolves with `fn`'s value, or `undefined` when
 * Graph said the action was already done; throws the last error otherwise (with `outcomeUnknown`
 * set when the last answer was lost).
 */
export async function withRetries<T>(action: GraphAction, deps: RetryDeps, fn: () => Promise<T>): Promise<T | undefined> {
  const { policy, counters } = deps;
  const log = (): Logger => (typeof deps.log === 'function' ? deps.log() : deps.log);
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const verdict = classify(action, err);
      if (verdict === 'already-done') {
        counters?.inc('graph_already_done', { action });
        log().info({ action, attempt, reason: (err as Error).message }, 'whatsapp api: action was already done; taken as success');
        return undefined;
      }
      const e = err as GraphApiError;
      if (err instanceof GraphApiError && e.transport === 'lost') e.outcomeUnknown = !IDEMPOTENT.has(action);
      if (err instanceof GraphApiError && isRateLimited(e)) counters?.inc('graph_rate_limited', { action });
      if (verdict === 'final') {
        if (attempt > 1 || e.outcomeUnknown) counters?.inc('graph_gave_up', { action });
        throw err;
      }
      const delayMs = Math.max(backoffMs(policy, attempt, random), e.retryAfterMs ?? 0);
      if (attempt >= policy.attempts || delayMs > policy.maxDelayMs) {
        counters?.inc('graph_gave_up', { action });
        log().warn({ action, attempts: attempt, retryAfterMs: e.retryAfterMs, reason: e.message }, 'whatsapp api: giving up after retries');
        throw err;
      }
      counters?.inc('graph_retries', { action });
      log().warn({ action, attempt, delayMs, status: e.httpStatus, code: e.code, reason: e.message }, 'whatsapp api: transient failure; retrying');
      await sleep(delayMs);
    }
  }
}

/** Retry-After: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,6}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}
