/**
 * A short, fixed slice of the seeded SDP fuzz (test/fuzz/sdp-fuzz.ts) in every test run; the
 * full run (>= 100,000 cases) is `npx tsx bench/fuzz-sdp.ts`.
 */
import { describe, expect, it } from 'vitest';
import { mutate, rng, runSdpFuzz } from './sdp-fuzz.js';

const SEED = 0x5d9f00d;
const CASES = 2000;
/** CPU per message per parser; generous for a busy 2-core machine (GC lands in it too). */
const BUDGET_MS = 15;

describe('SDP fuzz (fixed slice)', () => {
  it('the generator is seeded: same seed, same cases', () => {
    const a = rng(7);
    const b = rng(7);
    for (let i = 0; i < 20; i++) expect(mutate(['v=0', 'm=audio 1 RTP/AVP 0'], a)).toBe(mutate(['v=0', 'm=audio 1 RTP/AVP 0'], b));
  });

  it(`${CASES} mutated PBX and WhatsApp SDPs: no crash, each within the CPU budget, bounded memory`, () => {
    const r = runSdpFuzz(SEED, CASES, BUDGET_MS);
    expect(r.crashes).toEqual([]);
    // One slow case on a contended machine is the scheduler, not the parser: allow a handful.
    expect(r.overBudget, `slowest ${r.maxMs.toFixed(1)} ms (case ${r.maxAt})`).toBeLessThanOrEqual(3);
    expect(r.heapGrowthMb).toBeLessThan(64);
  });
});
