/**
 * Constant-time equality of two secrets-to-be (signatures, tokens, digests), as strings or bytes.
 * Different lengths are unequal; the time taken then does not depend on where they differ
 * (timingSafeEqual throws on a length mismatch, so the expected value is compared with itself).
 */
import { timingSafeEqual } from 'node:crypto';

export function safeEqual(given: string | Buffer, expected: string | Buffer): boolean {
  const a = typeof given === 'string' ? Buffer.from(given) : given;
  const b = typeof expected === 'string' ? Buffer.from(expected) : expected;
  if (a.length !== b.length) {
    timingSafeEqual(b, b);
    return false;
  }
  return timingSafeEqual(a, b);
}
