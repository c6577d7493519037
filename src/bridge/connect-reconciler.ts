/**
 * A business-initiated `connect` whose answer was lost (our side timed out, Meta created the call)
 * is reconciled when WhatsApp's webhooks for it arrive, matched by `biz_opaque_callback_data`
 * (every outbound call sends its own, see OutboundCall.opaque):
 *
 * - our side has not given up: the call learns its WhatsApp id from the webhook (a RINGING status
 *   or the connect) and carries on; `carryOnAfterLostConnect` waits `graceMs` for that webhook
 *   when the connect failed with an unknown outcome;
 * - our side already gave up (the outbound call ended without a WhatsApp id): `abandoned()` notes
 *   the opaque, and a later status/connect webhook naming it gets a Graph `terminate`, so the
 *   customer never answers into silence.
 *
 * Bounded: entries expire after `ttlMs` (the longest a ringing call can last, plus redelivery
 * slack) and at most `maxEntries` are kept (oldest dropped first).
 */
import type { Logger } from '../util/log.js';
import type { WhatsAppCounters } from '../whatsapp/counters.js';
import { GraphApiError, type WaConnectEvent, type WaStatusEvent, type WhatsAppCallingApi, type WhatsAppCallsApi } from '../whatsapp/types.js';
import { WA_ERROR } from '../whatsapp/errors.js';
import type { PermissionCache } from './permissions.js';

export const LOST_CONNECT_GRACE_MS = 5_000;

export interface ConnectReconcilerDeps {
  whatsapp: Pick<WhatsAppCallsApi, 'terminate'>;
  log: Logger;
  counters?: WhatsAppCounters | undefined;
  ttlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export class ConnectReconciler {
  private readonly gaveUp = new Map<string, { phoneNumberId: string; expires: number }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly deps: ConnectReconcilerDeps) {
    this.ttlMs = deps.ttlMs ?? 30 * 60_000;
    this.maxEntries = deps.maxEntries ?? 10_000;
    this.now = deps.now ?? Date.now;
  }

  get size(): number {
    return this.gaveUp.size;
  }

  /** An outbound call ended after sending `connect` but without learning WhatsApp's call id. */
  abandoned(phoneNumberId: string, opaque: string): void {
    this.purge();
    this.gaveUp.delete(opaque);
    this.gaveUp.set(opaque, { phoneNumberId, expires: this.now() + this.ttlMs });
    while (this.gaveUp.size > this.maxEntries) this.gaveUp.delete(this.gaveUp.keys().next().value!);
  }

  /**
   * A business-initiated status/connect that no live call holds. When it names an abandoned
   * connect, the WhatsApp call is terminated; returns true then (handled).
   */
  onOrphan(ev: WaConnectEvent | WaStatusEvent): boolean {
    this.purge();
    const opaque = ev.bizOpaqueCallbackData;
    const entry = opaque === undefined ? undefined : this.gaveUp.get(opaque);
    if (!entry || opaque === undefined) return false;
    this.gaveUp.delete(opaque);
    this.deps.counters?.inc('connect_reconciled', { outcome: 'terminated' });
    const log = this.deps.log.child({ waCallId: ev.callId, bizOpaque: opaque });
    log.warn({ event: ev.kind }, 'webhook for a connect whose answer was lost after the bridge gave up: terminating the WhatsApp call');
    this.deps.whatsapp.terminate(ev.phoneNumberId || entry.phoneNumberId, ev.callId).then(
      () => log.info('lost connect terminated on WhatsApp'),
      (err: unknown) => log.warn({ err }, 'terminating the lost connect failed'),
    );
    return true;
  }

  private purge(): void {
    const t = this.now();
    for (const [k, v] of this.gaveUp) {
      if (v.expires > t) break;
      this.gaveUp.delete(k);
    }
  }
}

/**
 * After `connect` failed: true when the call should carry on anyway, because WhatsApp's webhook
 * already named the call (Meta created it; only the answer was lost), or names it within
 * `graceMs` when the failure left the outcome unknown. Polls the call's id (every 50 ms, bounded).
 */
export async function carryOnAfterLostConnect(
  call: { readonly waCallId: string | undefined; readonly isEnding: boolean },
  err: unknown,
  log: Logger,
  counters?: WhatsAppCounters,
  graceMs = LOST_CONNECT_GRACE_MS,
): Promise<boolean> {
  const unknown = err instanceof GraphApiError && err.outcomeUnknown === true;
  const end = Date.now() + (unknown ? graceMs : 0);
  // Bounded wait: the webhook that names a created call comes within seconds, or never.
  while (call.waCallId === undefined && !call.isEnding && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  if (call.waCallId === undefined || call.isEnding) return false;
  counters?.inc('connect_reconciled', { outcome: 'carried-on' });
  log.warn({ waCallId: call.waCallId, reason: err instanceof Error ? err.message : String(err) }, "connect's answer was lost, but WhatsApp's webhook named the call: carrying on");
  return true;
}

/** Graph `connect` failed, and no webhook named the call (see carryOnAfterLostConnect). */
export class ConnectFailed extends Error {
  constructor(readonly error: Error) {
    super(`WhatsApp connect failed: ${error.message}`);
  }
}

/**
 * Graph `connect` for a business-initiated call (outbound or click to call), with the call's
 * biz_opaque_callback_data: WhatsApp's call id, also when only the answer was lost and a webhook
 * named the call. Throws ConnectFailed otherwise.
 */
export async function connectCall(
  call: { readonly waCallId: string | undefined; readonly isEnding: boolean; readonly opaque: string },
  api: Pick<WhatsAppCallingApi, 'connect'>,
  target: { phoneNumberId: string; to: string; sdp: string },
  log: Logger,
  counters?: WhatsAppCounters,
  graceMs?: number,
): Promise<string> {
  try {
    return (await api.connect(target.phoneNumberId, target.to, target.sdp, call.opaque)).callId;
  } catch (err) {
    if (!(await carryOnAfterLostConnect(call, err, log, counters, graceMs))) throw new ConnectFailed(err as Error);
    return call.waCallId!;
  }
}

/** The end cause of a failed `connect`; a "no permission" answer drops the cached permission. */
export function connectFailureCause(
  err: ConnectFailed,
  permissions: Pick<PermissionCache, 'invalidate'>,
  phoneNumberId: string,
  to: string,
): { kind: 'wa-api-error'; action: 'connect'; code: number; subcode?: number; message: string } {
  const e = err.error;
  if (!(e instanceof GraphApiError)) return { kind: 'wa-api-error', action: 'connect', code: 0, message: e.message };
  if (e.code === WA_ERROR.noPermission) permissions.invalidate(phoneNumberId, to);
  return { kind: 'wa-api-error', action: 'connect', code: e.code, ...(e.subcode !== undefined ? { subcode: e.subcode } : {}), message: e.message };
}
