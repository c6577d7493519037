import { spawnSync } from 'node:child_process';
import { describe, it } from 'vitest';

/** Which of these executables are not on PATH. */
export function missingBinaries(bins: string[]): string[] {
  return bins.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status !== 0);
}

/**
 * A describe block for tests that need real peers (rtpengine, sipp, baresip). Where a peer is
 * missing, the block is skipped with the reason in its title, except under CI (CI=true), where
 * a missing peer fails: a CI machine must not pass by skipping.
 */
export function describeWithPeers(name: string, bins: string[], fn: () => void, extraReason?: string): void {
  const missing = missingBinaries(bins);
  const reason = missing.length ? `missing ${missing.join(', ')} (apt-get install rtpengine-daemon sip-tester baresip-core chromium, or run .ci/run)` : extraReason;
  if (!reason) {
    describe(name, fn);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      // eslint-disable-next-line vitest/expect-expect
      it(`needs its real peers: ${reason}`, () => {
        throw new Error(`end-to-end peers unavailable under CI: ${reason}`);
      });
    });
    return;
  }
  describe.skip(`${name} [skipped: ${reason}]`, fn);
}
