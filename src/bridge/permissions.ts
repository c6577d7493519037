import type { Logger } from '../util/log.js';
import type { WaPermissionReplyEvent, WhatsAppCallingApi } from '../whatsapp/types.js';

export interface PermissionAnswer {
  canStartCall: boolean;
  canRequestPermission: boolean;
  status: string;
  /** Where the answer came from. */
  source: 'graph' | 'cache' | 'reply-webhook' | 'unknown';
}

/**
 * Whether the business may call a WhatsApp user (`start_call.can_perform_action`), cached for a
 * short while (Graph allows 100 permission look-ups per second) and updated by the user's
 * `call_permission_reply` webhook. When Graph cannot be asked, the call goes ahead: `connect`
 * itself answers 138006 if there is no permission.
 */
export class PermissionCache {
  private readonly entries = new Map<string, { answer: PermissionAnswer; expires: number }>();

  constructor(
    private readonly api: Pick<WhatsAppCallingApi, 'getCallPermissions'>,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async check(phoneNumberId: string, waId: string): Promise<PermissionAnswer> {
    const key = `${phoneNumberId}:${waId}`;
    const hit = this.entries.get(key);
    if (hit && hit.expires > this.now()) return { ...hit.answer, source: 'cache' };
    try {
      const p = await this.api.getCallPermissions(phoneNumberId, waId);
      const answer: PermissionAnswer = { canStartCall: p.canStartCall, canRequestPermission: p.canRequestPermission, status: p.status, source: 'graph' };
      if (this.ttlMs > 0) this.entries.set(key, { answer, expires: this.now() + this.ttlMs });
      return answer;
    } catch (err) {
      this.log.warn({ err, waId }, 'call permission look-up failed; trying the call anyway');
      return { canStartCall: true, canRequestPermission: false, status: 'unknown', source: 'unknown' };
    }
  }

  /** The user answered a permission request. */
  onReply(ev: WaPermissionReplyEvent): void {
    const accepted = ev.response === 'accept';
    const answer: PermissionAnswer = {
      canStartCall: accepted,
      canRequestPermission: false,
      status: accepted ? (ev.isPermanent ? 'permanent' : 'temporary') : 'no_permission',
      source: 'reply-webhook',
    };
    const until = accepted && ev.expiresAt ? Math.min(ev.expiresAt * 1000, this.now() + this.ttlMs) : this.now() + this.ttlMs;
    this.entries.set(`${ev.phoneNumberId}:${ev.userWaId}`, { answer, expires: until });
  }

  /** Forget what we know (after `connect` said 138006 despite a positive answer). */
  invalidate(phoneNumberId: string, waId: string): void {
    this.entries.delete(`${phoneNumberId}:${waId}`);
  }
}
