/**
 * What the cluster layer counts (docs/operations.md lists the metric names). The operations
 * side implements it on its Prometheus registry (`BridgeMetrics.cluster` in src/ops/metrics.ts);
 * without metrics, nothing is counted.
 */

/** A batch of forwarded events: delivered at once, after retries, not at all, or its owner was dead (taken over). */
export type ForwardResult = 'ok' | 'retried' | 'failed' | 'owner-dead';
/** Why a survivor ended a dead instance's call: its state (confirmed dialog, ringing), or an event forwarded to the dead owner found it. */
export type TakeoverReason = 'confirmed' | 'ringing' | 'forward';
/** Which work a failed Redis command was for. */
export type RedisOp = 'connection' | 'route' | 'lease' | 'record' | 'sip-state' | 'sweep' | 'forward';

export interface ClusterMetrics {
  /** Members holding a live lease, this one included (set at each sweep). */
  membersAlive(n: number): void;
  forwarded(result: ForwardResult, events: number): void;
  takenOver(reason: TakeoverReason): void;
  /** From a dead instance's last lease renewal to the last of its calls ended by this survivor. */
  takeoverSeconds(seconds: number): void;
  redisError(op: RedisOp): void;
  leaseRenewalFailed(): void;
  /** A renewal found the lease already gone: this instance was taken for dead. */
  leaseLapsed(): void;
}

export const NO_CLUSTER_METRICS: ClusterMetrics = {
  membersAlive: () => undefined,
  forwarded: () => undefined,
  takenOver: () => undefined,
  takeoverSeconds: () => undefined,
  redisError: () => undefined,
  leaseRenewalFailed: () => undefined,
  leaseLapsed: () => undefined,
};
