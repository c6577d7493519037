/**
 * Fault injection for the Graph simulator (./graph-server.ts), per action. The typed API tests call:
 *
 *   sim.injectFault('accept', { kind: 'http-500' });                      // 500, code 138004, transient
 *   sim.injectFault('accept', { kind: 'rate-limit', retryAfterSec: 1 });  // 429, code 130429, Retry-After: 1
 *   sim.injectFault('terminate', { kind: 'hang' });                       // never answers; NOT performed
 *   sim.injectFault('connect', { kind: 'lost-response' });                // performed, answer never sent
 *   sim.injectFault('pre_accept', { kind: 'http-500' }, 2);               // the next 2 requests
 *   sim.clearFaults();
 *
 * Actions: pre_accept, accept, reject, terminate, connect, call_permissions (the permission GET),
 * call_permission_request. A fault applies after authentication, to the next `times` requests for
 * that action, in the order injected. Hung requests stay open until the client gives up or the
 * simulator closes. For `lost-response` on connect, the call exists at "Meta" and the user's
 * phone rings (the connect hook fires at once), exactly as when Meta's answer is lost on the way.
 * Every request, faulted or not, is recorded in `actions` (a hung one with status 0).
 */
export type GraphFault =
  | { kind: 'http-500'; code?: number }
  | { kind: 'rate-limit'; retryAfterSec?: number; code?: number }
  | { kind: 'hang' }
  | { kind: 'lost-response' };

export class FaultBook<A extends string> {
  private readonly queue = new Map<A, GraphFault[]>();

  inject(action: A, fault: GraphFault, times = 1): void {
    const list = this.queue.get(action) ?? [];
    for (let i = 0; i < times; i++) list.push(fault);
    this.queue.set(action, list);
  }

  take(action: A): GraphFault | undefined {
    return this.queue.get(action)?.shift();
  }

  clear(): void {
    this.queue.clear();
  }
}

/** The error a status fault answers with: Meta's fields, and the Retry-After header if any. */
export function faultError(f: Extract<GraphFault, { kind: 'http-500' | 'rate-limit' }>): {
  httpStatus: number;
  code: number;
  message: string;
  isTransient: boolean;
  headers: Record<string, string>;
} {
  if (f.kind === 'http-500') {
    return { httpStatus: 500, code: f.code ?? 138004, message: '(#138004) Connection error', isTransient: true, headers: {} };
  }
  const headers: Record<string, string> = f.retryAfterSec !== undefined ? { 'retry-after': String(f.retryAfterSec) } : {};
  return { httpStatus: 429, code: f.code ?? 130429, message: `(#${f.code ?? 130429}) Rate limit hit`, isTransient: true, headers };
}
