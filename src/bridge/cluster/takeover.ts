/**
 * When an instance dies: a survivor notices its lease gone (at the next heartbeat after
 * `leaseMs`, or at once when an event forwarded to it finds it dead), claims each of its calls
 * (SET NX per call: one survivor ends each) and ends them from the state the dead instance kept
 * in Redis: WhatsApp `terminate` via Graph; on the SIP side a BYE from the stored dialog, or for
 * a call still ringing a CANCEL of our INVITE (inbound) or a final response to the PBX's INVITE
 * (outbound); and rtpengine `delete` of the media session. A call whose media ran in the dead
 * instance's embedded engine had its media die with it: only its signalling is ended.
 *
 * Also keeps this instance's own dialogs and ringing INVITEs in Redis, written when they change.
 */
import type { Logger } from '../../util/log.js';
import type { MediaEngine } from '../../media/types.js';
import { parseStoredDialog, parseStoredInvite, type Checked } from '../../sip/stored-invite.js';
import type { SipStack, StoredDialog, StoredInvite } from '../../sip/types.js';
import type { WaEvent, WhatsAppCallingApi } from '../../whatsapp/types.js';
import { sipFinalHeaders } from '../failure-map.js';
import { NO_CLUSTER_METRICS, type ClusterMetrics, type TakeoverReason } from './metrics.js';
import type { ClusterCallRecord, Leases, RedisSharedState, SipStateHash } from './shared-state.js';

export interface TakeoverDeps {
  instanceId: string;
  state: Pick<RedisSharedState, 'members' | 'leftBy' | 'claimEnd' | 'bury' | 'putDialogs' | 'lastBeat'> & Pick<Leases, 'urlOf'>;
  sip: Pick<SipStack, 'dialogSnapshots' | 'byeStored' | 'inviteSnapshots' | 'cancelStored' | 'rejectStored'>;
  media: Pick<MediaEngine, 'name' | 'deleteForeign'>;
  whatsapp: Pick<WhatsAppCallingApi, 'terminate'>;
  log: Logger;
  dialogTtlMs: number;
  metrics?: ClusterMetrics | undefined;
}

/** Q.850 41 (temporary failure) for the BYE and CANCEL; 503 to the PBX's ringing INVITE. */
const SIP_REASON = 'Q.850;cause=41;text="bridge instance failed"';
const REFUSAL = { status: 503, reason: 'Service Unavailable', warning: 'bridge instance failed; call ended by another instance' };

export class Takeover {
  private readonly written: Record<SipStateHash, Map<string, string>> = { dlg: new Map(), inv: new Map() };
  private sweeping = false;
  private readonly metrics: ClusterMetrics;

  constructor(private readonly deps: TakeoverDeps) {
    this.metrics = deps.metrics ?? NO_CLUSTER_METRICS;
  }

  /** Write this instance's dialogs and ringing INVITEs that changed since the last time; forget the ended ones. */
  async syncDialogs(): Promise<void> {
    const sip = this.deps.sip;
    await this.sync('dlg', (sip.dialogSnapshots?.() ?? []).map((d) => [d.callId, JSON.stringify(d)]));
    await this.sync('inv', (sip.inviteSnapshots?.() ?? []).map((i) => [i.callId, JSON.stringify(i)]));
  }

  /** Write every dialog and ringing INVITE again at the next sync (this instance's records in Redis may be gone). */
  forgetWritten(): void {
    this.written.dlg.clear();
    this.written.inv.clear();
  }

  private async sync(hash: SipStateHash, entries: Array<[string, string]>): Promise<void> {
    const now = new Map(entries);
    const before = this.written[hash];
    const changed = new Map([...now].filter(([k, v]) => before.get(k) !== v));
    const removed = [...before.keys()].filter((k) => !now.has(k));
    if (changed.size === 0 && removed.length === 0) return;
    await this.deps.state.putDialogs(this.deps.instanceId, changed, removed, this.deps.dialogTtlMs, hash);
    this.written[hash] = now;
  }

  /** Look for dead instances and end their calls. Never throws. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      let alive = 1;
      for (const id of await this.deps.state.members()) {
        if (id === this.deps.instanceId) continue;
        if (await this.deps.state.urlOf(id)) alive++;
        else await this.endCallsOf(id);
      }
      this.metrics.membersAlive(alive);
    } catch (err) {
      this.metrics.redisError('sweep');
      this.deps.log.warn({ err }, 'cluster: looking for dead instances failed');
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Events forwarded to `deadId` found it without a lease: end its calls now, as the next sweep
   * would. Returns the events whose call it kept no record of (nothing to end for those).
   */
  async ownerDead(deadId: string, events: WaEvent[]): Promise<WaEvent[]> {
    const named = (rec: ClusterCallRecord, ev: WaEvent) => ev.kind !== 'permission_reply' && (ev.callId === rec.waCallId || (!!ev.bizOpaqueCallbackData && ev.bizOpaqueCallbackData === rec.opaque));
    const found = await this.endCallsOf(deadId, "cluster: events forwarded to a dead instance; ending its calls now", (rec) => events.some((ev) => named(rec, ev)));
    return events.filter((ev) => !found.some((rec) => named(rec, ev)));
  }

  /**
   * Calls a previous life of this instance id left in Redis (it crashed and came back before
   * anyone noticed): nobody else will end them, since this id is alive again. Run before joining.
   */
  async endLeftovers(): Promise<void> {
    const { calls } = await this.deps.state.leftBy(this.deps.instanceId);
    if (calls.size > 0) await this.endCallsOf(this.deps.instanceId, 'cluster: calls left by a previous run of this instance id; ending them');
  }

  /** End every call `deadId` left; returns the records it held (ended here or by another survivor). */
  private async endCallsOf(deadId: string, why = 'cluster: an instance is dead (its lease expired); ending its calls', forwarded: (rec: ClusterCallRecord) => boolean = () => false): Promise<ClusterCallRecord[]> {
    const log = this.deps.log.child({ deadInstance: deadId });
    const [{ calls, dialogs, invites, forged, read }, lastBeat] = await Promise.all([this.deps.state.leftBy(deadId), this.deps.state.lastBeat(deadId).catch(() => undefined)]);
    log.warn({ calls: calls.size }, why);
    if (forged) log.error({ entries: forged }, 'cluster: entries in Redis without a valid cluster signature (or too big); not acted on');
    const ended = await Promise.all(
      [...calls].map(async ([key, rec]) => {
        if (!(await this.deps.state.claimEnd(deadId, key, this.deps.instanceId))) return false;
        const id = rec.sipCallId;
        const sipState = id
          ? {
              dialog: this.checked(dialogs.get(id), parseStoredDialog, 'dialog', rec, log),
              invite: this.checked(invites.get(id), parseStoredInvite, 'ringing INVITE', rec, log),
            }
          : {};
        await this.endCall(rec, sipState, forwarded(rec), log);
        return true;
      }),
    );
    await this.deps.state.bury(deadId, read);
    if (ended.some(Boolean) && lastBeat !== undefined && deadId !== this.deps.instanceId) {
      const sinceLastBeatMs = Math.max(0, Date.now() - lastBeat);
      this.metrics.takeoverSeconds(sinceLastBeatMs / 1000);
      log.warn({ calls: ended.filter(Boolean).length, sinceLastBeatMs }, "cluster: a dead instance's calls ended (time since its last lease renewal)");
    }
    return [...calls.values()];
  }

  /** A stored ringing INVITE or dialog, checked (`parse`); a malformed one is logged and not used. */
  private checked<T>(raw: unknown, parse: (v: unknown) => Checked<T>, what: string, rec: ClusterCallRecord, log: Logger): T | undefined {
    if (raw === undefined) return undefined;
    const parsed = parse(raw);
    if (parsed.ok) return parsed.value;
    log.error({ waCallId: rec.waCallId, sipCallId: rec.sipCallId, error: parsed.error }, `cluster: the stored ${what} is malformed; not used`);
    return undefined;
  }

  private async endCall(rec: ClusterCallRecord, sipState: { dialog?: StoredDialog | undefined; invite?: StoredInvite | undefined }, forwarded: boolean, parent: Logger): Promise<void> {
    const log = parent.child({ waCallId: rec.waCallId, sipCallId: rec.sipCallId });
    const reason: TakeoverReason = forwarded ? 'forward' : sipState.dialog ? 'confirmed' : 'ringing';
    this.metrics.takenOver(reason);
    const steps: Array<Promise<string>> = [];
    if (rec.waCallId && rec.phoneNumberId)
      steps.push(this.deps.whatsapp.terminate(rec.phoneNumberId, rec.waCallId).then(() => 'whatsapp terminated', (err: Error) => `whatsapp terminate failed: ${err.message}`));
    steps.push(this.endSipLeg(sipState));
    if (rec.mediaCallId && this.deps.media.deleteForeign) steps.push(this.deps.media.deleteForeign(rec.mediaCallId).then(() => 'rtpengine session deleted', (err: Error) => `rtpengine delete failed: ${err.message}`));
    else if (this.deps.media.name !== 'rtpengine') steps.push(Promise.resolve('media ran in the dead instance (embedded engine): lost with it'));
    log.warn({ reason, outcome: await Promise.all(steps) }, "cluster: a dead instance's call ended by this survivor");
  }

  private async endSipLeg({ dialog, invite }: { dialog?: StoredDialog | undefined; invite?: StoredInvite | undefined }): Promise<string> {
    const sip = this.deps.sip;
    if (dialog && sip.byeStored) return `BYE answered ${(await sip.byeStored(dialog, SIP_REASON)) ?? 'never'}`;
    if (invite?.kind === 'client' && sip.cancelStored) {
      const o = await sip.cancelStored(invite, SIP_REASON);
      return `CANCEL answered ${o.cancel ?? 'never'}${o.ackSent ? `; ACK for the 487 sent; BYE on the early dialog answered ${o.bye ?? 'never'}` : ''}`;
    }
    if (invite?.kind === 'server' && sip.rejectStored) {
      sip.rejectStored(invite, REFUSAL.status, REFUSAL.reason, sipFinalHeaders(REFUSAL));
      return `PBX's INVITE answered ${REFUSAL.status}`;
    }
    return 'no SIP dialog or ringing INVITE stored: nothing to end on the SIP side';
  }
}
