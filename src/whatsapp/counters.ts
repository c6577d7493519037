/**
 * Counters of the WhatsApp side (webhook intake and Graph actions), kept as plain numbers so the
 * metrics work can export them (e.g. to prom-client) without this layer depending on it.
 *
 * Names (labels in brackets):
 *   webhook_auth_refused        [reason]   POST refused: bad/missing signature or shared header
 *   webhook_unsigned_accepted              POST accepted without authentication (allowUnsignedWebhooks)
 *   webhook_events_dropped      [reason]   an event failed strict validation and was dropped
 *   webhook_events_over_cap                events beyond whatsapp.maxEventsPerPost in one POST
 *   webhook_names_dropped                  a profile name with control characters, left out
 *   webhook_connect_stale                  a connect older than whatsapp.maxWebhookAgeSec, not rung
 *   graph_retries               [action]   a Graph action retried (5xx, 429, rate limit, timeout, network)
 *   graph_already_done          [action]   an "already done" answer taken as success
 *   graph_rate_limited          [action]   a rate-limit answer (429, 613, 80007, 130429, 138005)
 *   graph_gave_up               [action]   retries exhausted (or not retryable after a lost answer)
 *   connect_reconciled          [outcome]  a connect whose answer was lost, met again by its webhook
 */
export type WhatsAppCounterName =
  | 'webhook_auth_refused'
  | 'webhook_unsigned_accepted'
  | 'webhook_events_dropped'
  | 'webhook_events_over_cap'
  | 'webhook_names_dropped'
  | 'webhook_connect_stale'
  | 'graph_retries'
  | 'graph_already_done'
  | 'graph_rate_limited'
  | 'graph_gave_up'
  | 'connect_reconciled';

export interface CounterSample {
  name: WhatsAppCounterName;
  labels: Record<string, string>;
  value: number;
}

export class WhatsAppCounters {
  private readonly values = new Map<string, CounterSample>();

  inc(name: WhatsAppCounterName, labels: Record<string, string> = {}, by = 1): void {
    const key = keyOf(name, labels);
    const s = this.values.get(key);
    if (s) s.value += by;
    else this.values.set(key, { name, labels: { ...labels }, value: by });
  }

  /** The value for exactly these labels; with `labels` omitted, the sum over every label set. */
  get(name: WhatsAppCounterName, labels?: Record<string, string>): number {
    if (labels) return this.values.get(keyOf(name, labels))?.value ?? 0;
    let sum = 0;
    for (const s of this.values.values()) if (s.name === name) sum += s.value;
    return sum;
  }

  snapshot(): CounterSample[] {
    return [...this.values.values()].map((s) => ({ ...s, labels: { ...s.labels } }));
  }
}

function keyOf(name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`);
  return `${name}{${parts.join(',')}}`;
}
