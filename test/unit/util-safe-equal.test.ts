import { describe, expect, it } from 'vitest';
import { safeEqual } from '../../src/util/safe-equal.js';

describe('safeEqual', () => {
  it('equal strings and bytes are equal; a different value, a prefix or a longer value is not (and never throws)', () => {
    expect(safeEqual('sha256=abc', 'sha256=abc')).toBe(true);
    expect(safeEqual(Buffer.from('ab'), Buffer.from('ab'))).toBe(true);
    expect(safeEqual('sha256=abd', 'sha256=abc')).toBe(false);
    expect(safeEqual('sha256=ab', 'sha256=abc')).toBe(false);
    expect(safeEqual('sha256=abcd', 'sha256=abc')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
    expect(safeEqual('é', 'e')).toBe(false);
  });
});
