import { afterEach, describe, expect, it } from 'vitest';
import type { NgClient } from '../../src/media/rtpengine/ng-client.js';
import { OrphanSweeper } from '../../src/media/rtpengine/orphans.js';
import { MediaError } from '../../src/media/types.js';
import { silentLogger } from '../../src/util/log.js';
import { waitFor } from '../support/wait.js';

const T = { host: '127.0.0.1', port: 22222 };

/** An ng client whose `delete` answers from `held`: ok for a call id rtpengine holds, else "Unknown call-id". */
function fakeNg(held: Set<string>): { ng: NgClient; sent: string[] } {
  const sent: string[] = [];
  const ng = {
    request: async (_t: unknown, command: string, params: Record<string, unknown>) => {
      const id = String(params['call-id']);
      sent.push(`${command} ${id}`);
      if (held.delete(id)) return { result: 'ok' };
      throw new MediaError('rtpengine delete failed: Unknown call-id', 'rtpengine', 'Unknown call-id');
    },
  } as unknown as NgClient;
  return { ng, sent };
}

let sweeper: OrphanSweeper | undefined;
afterEach(() => sweeper?.close());

describe('OrphanSweeper', () => {
  it('deletes until rtpengine confirms: a session it creates late is deleted at the next tick, then no more deletes', async () => {
    const held = new Set<string>();
    const { ng, sent } = fakeNg(held);
    sweeper = new OrphanSweeper(ng, silentLogger(), { intervalMs: 20, keepMs: 10_000 });
    sweeper.add(T, 'late', 'offer timed out');
    await waitFor(() => sent.length >= 2, { what: 'a delete at once and one at a tick' });
    expect(sweeper.deleted).toBe(0);
    held.add('late'); // rtpengine carries out the offer now
    await waitFor(() => sweeper!.deleted === 1, { what: 'the late session deleted' });
    const count = sent.length;
    await waitFor(() => sweeper!.pending === 0, { what: 'the entry dropped' });
    expect(sent.length).toBe(count);
  });

  it('gives up after keepMs when rtpengine never creates the session', async () => {
    const { ng } = fakeNg(new Set());
    sweeper = new OrphanSweeper(ng, silentLogger(), { intervalMs: 20, keepMs: 100 });
    sweeper.add(T, 'never', 'offer timed out');
    await waitFor(() => sweeper!.expired === 1, { what: 'the entry to expire' });
    expect(sweeper.pending).toBe(0);
    expect(sweeper.deleted).toBe(0);
  });

  it('is bounded: at most `max` entries (the oldest give way) and `perTick` deletes a tick', async () => {
    const { ng, sent } = fakeNg(new Set());
    sweeper = new OrphanSweeper(ng, silentLogger(), { intervalMs: 60_000, keepMs: 60_000, max: 3, perTick: 2 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) sweeper.add(T, id, 'offer timed out');
    expect(sweeper.pending).toBe(3);
    expect(sweeper.displaced).toBe(2);
    await waitFor(() => sent.length === 5, { what: 'the first deletes' });
    (sweeper as unknown as { tick(): void }).tick();
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent.length).toBe(7); // two more, not three
  });
});
