/**
 * When an instance dies: a survivor notices its lease gone (at the next heartbeat after
 * `leaseMs`), claims each of its calls (SET NX per call: one survivor ends each) and ends them
 * from the state the dead instance kept in Redis: WhatsApp `terminate` via Graph, BYE to the PBX
 * from the stored dialog, and rtpengine `delete` of the media session. A call whose media ran in
 * the dead instance's embedded engine had its media die with it: only its signalling is ended.
 *
 * Also keeps this instance's own dialogs in Redis, written when they change.
 */
import type { Logger } from '../../util/log.js';
import type { MediaEngine } from '../../media/types.js';
import type { SipStack, StoredDialog } from '../../sip/types.js';
import type { WhatsAppCallingApi } from '../../whatsapp/types.js';
import type { ClusterCallRecord, Leases, RedisSharedState } from './shared-state.js';

export interface TakeoverDeps {
  instanceId: string;
  state: Pick<RedisSharedState, 'members' | 'leftBy' | 'claimEnd' | 'bury' | 'putDialogs'> & Pick<Leases, 'urlOf'>;
  sip: Pick<SipStack, 'dialogSnapshots' | 'byeStored'>;
  media: Pick<MediaEngine, 'name' | 'deleteForeign'>;
  whatsapp: Pick<WhatsAppCallingApi, 'terminate'>;
  log: Logger;
  dialogTtlMs: number;
}

export class Takeover {
  private written = new Map<string, string>();
  private sweeping = false;

  constructor(private readonly deps: TakeoverDeps) {}

  /** Write this instance's dialogs that changed since the last time; forget the ended ones. */
  async syncDialogs(): Promise<void> {
    const now = new Map((this.deps.sip.dialogSnapshots?.() ?? []).map((d) => [d.callId, JSON.stringify(d)] as const));
    const changed = new Map([...now].filter(([k, v]) => this.written.get(k) !== v));
    const removed = [...this.written.keys()].filter((k) => !now.has(k));
    if (changed.size === 0 && removed.length === 0) return;
    await this.deps.state.putDialogs(this.deps.instanceId, changed, removed, this.deps.dialogTtlMs);
    this.written = now;
  }

  /** Look for dead instances and end their calls. Never throws. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (const id of await this.deps.state.members()) {
        if (id === this.deps.instanceId || (await this.deps.state.urlOf(id))) continue;
        await this.endCallsOf(id);
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'cluster: looking for dead instances failed');
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Calls a previous life of this instance id left in Redis (it crashed and came back before
   * anyone noticed): nobody else will end them, since this id is alive again. Run before joining.
   */
  async endLeftovers(): Promise<void> {
    const { calls } = await this.deps.state.leftBy(this.deps.instanceId);
    if (calls.size > 0) await this.endCallsOf(this.deps.instanceId, 'cluster: calls left by a previous run of this instance id; ending them');
  }

  private async endCallsOf(deadId: string, why = 'cluster: an instance is dead (its lease expired); ending its calls'): Promise<void> {
    const log = this.deps.log.child({ deadInstance: deadId });
    const { calls, dialogs } = await this.deps.state.leftBy(deadId);
    log.warn({ calls: calls.size }, why);
    await Promise.all(
      [...calls].map(async ([key, rec]) => {
        if (!(await this.deps.state.claimEnd(deadId, key, this.deps.instanceId))) return;
        await this.endCall(rec, rec.sipCallId ? dialogs.get(rec.sipCallId) : undefined, log);
      }),
    );
    await this.deps.state.bury(deadId);
  }

  private async endCall(rec: ClusterCallRecord, dialog: StoredDialog | undefined, parent: Logger): Promise<void> {
    const log = parent.child({ waCallId: rec.waCallId, sipCallId: rec.sipCallId });
    const steps: Array<Promise<string>> = [];
    if (rec.waCallId && rec.phoneNumberId)
      steps.push(this.deps.whatsapp.terminate(rec.phoneNumberId, rec.waCallId).then(() => 'whatsapp terminated', (err: Error) => `whatsapp terminate failed: ${err.message}`));
    if (dialog && this.deps.sip.byeStored) steps.push(this.deps.sip.byeStored(dialog, 'Q.850;cause=41').then((st) => `BYE answered ${st ?? 'never'}`));
    else steps.push(Promise.resolve('no confirmed SIP dialog stored (ringing, or already ended): no BYE'));
    if (rec.mediaCallId && this.deps.media.deleteForeign) steps.push(this.deps.media.deleteForeign(rec.mediaCallId).then(() => 'rtpengine session deleted', (err: Error) => `rtpengine delete failed: ${err.message}`));
    else if (this.deps.media.name !== 'rtpengine') steps.push(Promise.resolve('media ran in the dead instance (embedded engine): lost with it'));
    log.warn({ outcome: await Promise.all(steps) }, "cluster: a dead instance's call ended by this survivor");
  }
}
