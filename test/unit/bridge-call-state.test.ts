import { describe, expect, it } from 'vitest';
import { CALL_STATES, TRANSITIONS, canTransition } from '../../src/bridge/call-state.js';

describe('call state table', () => {
  it('every state can reach ending, except the ending and ended states themselves', () => {
    for (const s of CALL_STATES) {
      if (s === 'ending' || s === 'ended') continue;
      expect(canTransition(s, 'ending'), s).toBe(true);
    }
  });

  it('ended is terminal and only ending leads to it', () => {
    expect(TRANSITIONS.ended).toEqual([]);
    for (const s of CALL_STATES) expect(canTransition(s, 'ended'), s).toBe(s === 'ending');
  });

  it('a call cannot go back (no move to an earlier state)', () => {
    const order = CALL_STATES;
    for (const [from, tos] of Object.entries(TRANSITIONS)) {
      for (const to of tos) expect(order.indexOf(to), `${from}->${to}`).toBeGreaterThan(order.indexOf(from as never));
    }
  });

  it('the answered path new → inviting → ringing → early → accepting → active is legal', () => {
    const path = ['new', 'inviting', 'ringing', 'early', 'accepting', 'active', 'ending', 'ended'] as const;
    for (let i = 1; i < path.length; i++) expect(canTransition(path[i - 1]!, path[i]!)).toBe(true);
  });

  it('a 200 OK without any provisional response goes straight from inviting to accepting', () => {
    expect(canTransition('inviting', 'accepting')).toBe(true);
    expect(canTransition('new', 'active')).toBe(false);
    expect(canTransition('inviting', 'active')).toBe(false);
  });
});
