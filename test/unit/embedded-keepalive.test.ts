import { describe, expect, it } from 'vitest';
import { FillSchedule } from '../../src/media/embedded/keepalive.js';

/** Drive a schedule with ticks at the given offsets (ms) and count the frames it sends. */
function framesFor(ticks: number[], s = new FillSchedule()): number {
  return ticks.reduce((sum, t) => sum + s.due(t), 0);
}

describe('keep-alive fill schedule', () => {
  it('sends 50 frames a second when ticks come every 20 ms', () => {
    const ticks = Array.from({ length: 100 }, (_, i) => 1000 + i * 20);
    expect(framesFor(ticks)).toBe(100);
  });

  it('keeps 50 frames a second when ticks come late (27 ms apart, as on a loaded machine)', () => {
    // Counting from "now" on each tick loses the remainder: 1 frame per 27 ms tick = 37/s.
    const ticks = Array.from({ length: 75 }, (_, i) => 5000 + i * 27); // 1998 ms
    const n = framesFor(ticks);
    expect(n).toBeGreaterThanOrEqual(99);
    expect(n).toBeLessThanOrEqual(101);
  });

  it('catches up a short stall in one burst, capped per tick', () => {
    const s = new FillSchedule(10, 200);
    expect(s.due(0)).toBe(1);
    expect(s.due(150)).toBe(7); // the frames due at 20, 40, ..., 140 ms
    expect(s.due(151)).toBe(0);
  });

  it('restarts from now after a stall longer than it may catch up', () => {
    const s = new FillSchedule(10, 200);
    s.due(0);
    expect(s.due(1000)).toBe(1); // not 50 stale frames at once
    expect(s.due(1020)).toBe(1);
  });

  it('starts afresh after stop()', () => {
    const s = new FillSchedule();
    s.due(0);
    s.due(20);
    s.stop();
    expect(s.filling).toBe(false);
    expect(s.due(500)).toBe(1);
    expect(s.due(519)).toBe(0);
    expect(s.due(520)).toBe(1);
  });
});
