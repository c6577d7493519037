import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { HttpCdrPoster, JsonlCdrFile, type CallRecord } from '../../src/ops/cdr.js';

const log = pino({ level: 'silent' });

function record(n: number): CallRecord {
  return {
    direction: 'inbound',
    waCallId: `wacid.${n}`,
    sipCallId: `sip-${n}`,
    phoneNumberId: '1234',
    whatsappUser: '15551234567',
    businessNumber: '15550001111',
    pbxTarget: 'sip:queue@pbx',
    route: 'default',
    receivedAt: new Date(0).toISOString(),
    endedAt: new Date(1000).toISOString(),
    durationSec: 0,
    outcome: 'unanswered',
    cause: 'caller-hung-up',
    whatsappEnd: { action: 'none' },
    sipEnd: { message: 'cancel' },
  };
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('JSON-lines call records', () => {
  it('writes one parsable line per call, in order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdr-'));
    dirs.push(dir);
    const f = new JsonlCdrFile({ path: join(dir, 'calls.jsonl'), maxBytes: 1e6, keep: 2 }, log);
    for (let i = 0; i < 5; i++) f.write(record(i));
    await f.close();
    const lines = (await readFile(join(dir, 'calls.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as CallRecord).waCallId)).toEqual(['wacid.0', 'wacid.1', 'wacid.2', 'wacid.3', 'wacid.4']);
  });

  it('rotates by size and keeps a bounded number of files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdr-'));
    dirs.push(dir);
    const lineBytes = JSON.stringify(record(0)).length + 1;
    const f = new JsonlCdrFile({ path: join(dir, 'calls.jsonl'), maxBytes: lineBytes * 3, keep: 2 }, log);
    for (let i = 0; i < 20; i++) f.write(record(i));
    await f.close();
    expect((await readdir(dir)).sort()).toEqual(['calls.jsonl', 'calls.jsonl.1', 'calls.jsonl.2']);
    const current = (await readFile(join(dir, 'calls.jsonl'), 'utf8')).trim().split('\n');
    expect(current.length).toBeLessThanOrEqual(3);
    expect((JSON.parse(current.at(-1)!) as CallRecord).waCallId).toBe('wacid.19');
  });
});

describe('call records POSTed to a URL', () => {
  async function receiver(answer: (n: number) => number): Promise<{ url: string; got: CallRecord[]; hits: () => number; close: () => Promise<void> }> {
    const got: CallRecord[] = [];
    let hits = 0;
    const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const status = answer(hits++);
        if (status === 200) got.push(JSON.parse(body) as CallRecord);
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const { port } = srv.address() as { port: number };
    return { url: `http://127.0.0.1:${port}/cdr`, got, hits: () => hits, close: () => new Promise((r) => srv.close(() => r())) };
  }

  it('retries a 503 and delivers the record once', async () => {
    const rx = await receiver((n) => (n < 2 ? 503 : 200));
    const p = new HttpCdrPoster({ url: rx.url, attempts: 4, backoffMs: 1, timeoutMs: 2000, maxQueue: 10 }, log);
    p.write(record(1));
    await p.close();
    expect(rx.got.map((r) => r.waCallId)).toEqual(['wacid.1']);
    expect(rx.hits()).toBe(3);
    expect(p.posted).toBe(1);
    await rx.close();
  });

  it('does not retry a 400 (the receiver refuses the record) and counts it failed', async () => {
    const rx = await receiver(() => 400);
    const p = new HttpCdrPoster({ url: rx.url, attempts: 4, backoffMs: 1, timeoutMs: 2000, maxQueue: 10 }, log);
    p.write(record(1));
    await p.close();
    expect(rx.hits()).toBe(1);
    expect(p.failed).toBe(1);
    await rx.close();
  });

  it('drops the oldest record when its queue is full, and says how many', async () => {
    const rx = await receiver(() => 200);
    const p = new HttpCdrPoster({ url: rx.url, attempts: 1, backoffMs: 1, timeoutMs: 2000, maxQueue: 2 }, log);
    for (let i = 0; i < 5; i++) p.write(record(i)); // the first is in flight; 1 and 2 are dropped
    await p.close();
    expect(p.dropped).toBe(2);
    expect(rx.got.map((r) => r.waCallId)).toEqual(['wacid.0', 'wacid.3', 'wacid.4']);
    await rx.close();
  });
});
