import { describe, expect, it } from 'vitest';
import { estimateMos } from '../../src/ops/mos.js';

describe('MOS estimate (E-model)', () => {
  it('rates a clean G.711 call as toll quality (about 4.4)', () => {
    expect(estimateMos({ codec: 'PCMU', lossRatio: 0, jitterMs: 1 })).toBeGreaterThanOrEqual(4.3);
  });

  it('falls with loss, and less for a codec that conceals loss better', () => {
    const g711 = estimateMos({ codec: 'PCMU', lossRatio: 0.05, jitterMs: 5 });
    const opus = estimateMos({ codec: 'opus', lossRatio: 0.05, jitterMs: 5 });
    expect(g711).toBeLessThan(3.3);
    expect(opus).toBeGreaterThan(g711);
  });

  it('falls with jitter (the buffer it needs adds delay)', () => {
    expect(estimateMos({ codec: 'PCMU', lossRatio: 0, jitterMs: 150 })).toBeLessThan(estimateMos({ codec: 'PCMU', lossRatio: 0, jitterMs: 5 }));
  });

  it('stays within 1..4.5 for nonsense input', () => {
    for (const q of [
      { codec: 'X', lossRatio: 2, jitterMs: 1e9 },
      { codec: undefined, lossRatio: Number.NaN, jitterMs: -5 },
    ]) {
      const m = estimateMos(q);
      expect(m).toBeGreaterThanOrEqual(1);
      expect(m).toBeLessThanOrEqual(4.5);
    }
  });
});
