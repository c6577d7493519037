/**
 * Between the parser and the bridge: a user-initiated `connect` older than `maxAgeSec` (by its
 * own `timestamp`) is not rung. Meta and 360dialog redeliver for hours after an outage, and an
 * agent must not answer a call that ended long ago. The call is rejected on WhatsApp in case it
 * is still alive (an "already ended" answer counts as done, see graph-retry.ts).
 *
 * Business-initiated connects pass: they answer a call this bridge placed, and the bridge (its
 * connect reconciler) decides whether that call is still wanted.
 */
import type { Logger } from '../util/log.js';
import type { WhatsAppCounters } from './counters.js';
import type { WaEvent, WhatsAppCallsApi } from './types.js';

export const DEFAULT_MAX_WEBHOOK_AGE_SEC = 60;

export interface StaleConnectFilterDeps {
  api: Pick<WhatsAppCallsApi, 'reject'>;
  log: Logger;
  maxAgeSec: number;
  counters?: WhatsAppCounters | undefined;
  /** ms since the epoch; default Date.now. */
  now?: () => number;
}

/** Returns the events to hand to the bridge; stale connects are rejected on WhatsApp instead. */
export function createStaleConnectFilter(deps: StaleConnectFilterDeps): (events: WaEvent[]) => WaEvent[] {
  const now = deps.now ?? Date.now;
  return (events) =>
    events.filter((ev) => {
      if (ev.kind !== 'connect' || ev.direction !== 'USER_INITIATED') return true;
      const ageSec = now() / 1000 - ev.timestamp;
      if (ageSec <= deps.maxAgeSec) return true;
      deps.counters?.inc('webhook_connect_stale');
      const log = deps.log.child({ waCallId: ev.callId, phoneNumberId: ev.phoneNumberId });
      log.warn({ ageSec: Math.round(ageSec), maxAgeSec: deps.maxAgeSec }, 'stale connect webhook (redelivered late): not rung; rejecting the call on WhatsApp');
      deps.api.reject(ev.phoneNumberId, ev.callId).then(
        () => log.info('stale call rejected on WhatsApp'),
        (err: unknown) => log.warn({ err }, 'rejecting the stale call failed'),
      );
      return false;
    });
}
