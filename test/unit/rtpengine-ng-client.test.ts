import dgram from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NgClient } from '../../src/media/rtpengine/ng-client.js';
import { MediaError } from '../../src/media/types.js';
import { silentLogger } from '../../src/util/log.js';

/** A fake rtpengine on loopback that answers each ng request `delayMs` late with a bencoded pong. */
async function slowNg(delayMs: number): Promise<{ port: number; answered: () => number; close(): void }> {
  const s = dgram.createSocket('udp4');
  let answered = 0;
  s.on('message', (msg, rinfo) => {
    const cookie = msg.subarray(0, msg.indexOf(' ')).toString();
    setTimeout(() => {
      s.send(Buffer.from(`${cookie} d6:result4:ponge`), rinfo.port, rinfo.address, () => answered++);
    }, delayMs);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return { port: s.address().port, answered: () => answered, close: () => s.close() };
}

describe('NgClient', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a reply that comes after its request timed out is counted and dropped, not printed', async () => {
    const log = vi.spyOn(console, 'log');
    const ng = await slowNg(250);
    const client = new NgClient(100, silentLogger());
    try {
      const err = await client.request({ host: '127.0.0.1', port: ng.port }, 'ping').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MediaError);
      expect((err as MediaError).reason).toBe('timeout');
      // Bounded wait for the late reply to reach the client (sent 250 ms after the request).
      const until = performance.now() + 3000;
      while (client.lateReplies === 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(ng.answered()).toBe(1);
      expect(client.lateReplies).toBe(1);
      // rtpengine-client itself would console.log the whole late reply.
      expect(log).not.toHaveBeenCalled();
    } finally {
      client.close();
      ng.close();
    }
  });

  it('a reply in time still resolves its request', async () => {
    const ng = await slowNg(0);
    const client = new NgClient(1000, silentLogger());
    try {
      await expect(client.request({ host: '127.0.0.1', port: ng.port }, 'ping')).resolves.toMatchObject({ result: 'pong' });
      expect(client.lateReplies).toBe(0);
    } finally {
      client.close();
      ng.close();
    }
  });
});
