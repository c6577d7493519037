import { describe, expect, it } from 'vitest';
import { ExpiringSet } from '../../src/bridge/dedupe.js';

describe('ExpiringSet', () => {
  it('reports a key seen within the TTL as a duplicate and forgets it after', () => {
    let t = 0;
    const s = new ExpiringSet(1000, () => t);
    expect(s.add('a')).toBe(true);
    expect(s.add('a')).toBe(false);
    t = 999;
    expect(s.has('a')).toBe(true);
    t = 1000;
    expect(s.has('a')).toBe(false);
    expect(s.add('a')).toBe(true);
    expect(s.size).toBe(1);
  });
});
