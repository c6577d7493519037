/**
 * The DTLS guard of the embedded WhatsApp leg (src/media/embedded/dtls-guard.ts) on a stand-in
 * for werift's transport and socket: which handshake messages reach werift, and the timeout.
 * The real handshake is covered end to end by test/e2e/media-dtls-late-answer.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RTCDtlsTransport } from 'werift';
import { DTLS_HANDSHAKE_TIMEOUT_MS, guardDtlsHandshake } from '../../src/media/embedded/dtls-guard.js';

class FakeEvent<A extends unknown[]> {
  private readonly fns: Array<(...a: A) => void> = [];
  subscribe(fn: (...a: A) => void): { unSubscribe: () => void } {
    this.fns.push(fn);
    return { unSubscribe: () => this.fns.splice(this.fns.indexOf(fn), 1) };
  }
  execute(...a: A): void {
    for (const fn of [...this.fns]) fn(...a);
  }
}

interface Hs {
  msg_type: number;
  fragment: Buffer;
}

function fakeTransport(sessionType: 1 | 2) {
  const handled: number[][] = [];
  const errors: Error[] = [];
  const socket = {
    sessionType,
    connected: false,
    dtls: { flight: 0, cookie: undefined as Buffer | undefined, sequenceNumber: 0 },
    onHandleHandshakes: async (assembled: Hs[]): Promise<void> => {
      handled.push(assembled.map((h) => h.msg_type));
    },
    onError: new FakeEvent<[Error]>(),
  };
  socket.onError.subscribe((e) => errors.push(e));
  const transport = { state: 'new', dtls: undefined as unknown, onStateChange: new FakeEvent<[string]>() };
  const setState = (s: string): void => {
    transport.state = s;
    transport.onStateChange.execute(s);
  };
  /** Like werift's start(): 'connecting', then the socket exists in the same tick. */
  const start = async (): Promise<void> => {
    setState('connecting');
    transport.dtls = socket;
    await Promise.resolve();
  };
  return { transport: transport as unknown as RTCDtlsTransport, socket, handled, errors, start, setState };
}

const helloVerify = (cookie: Buffer): Hs => ({ msg_type: 3, fragment: Buffer.concat([Buffer.from([0xfe, 0xfd, cookie.length]), cookie]) });
const clientHello = (random: Buffer, cookie = Buffer.alloc(0)): Hs => ({
  msg_type: 1,
  fragment: Buffer.concat([Buffer.from([0xfe, 0xfd]), random, Buffer.from([0, cookie.length]), cookie, Buffer.from([0, 2, 0xc0, 0x2b, 1, 0])]),
});

afterEach(() => {
  vi.useRealTimers();
});

describe('DTLS guard, client (inbound: we answer a=setup:active)', () => {
  it('passes the first HelloVerifyRequest, drops repeats of it, restarts flight 3 on a new cookie', async () => {
    const f = fakeTransport(1);
    const g = guardDtlsHandshake(f.transport);
    await f.start();
    const cookie = Buffer.alloc(20, 7);
    f.socket.dtls.flight = 1;
    await f.socket.onHandleHandshakes([helloVerify(cookie)] as never);
    expect(f.handled).toEqual([[3]]);
    // werift's Flight3.exec now runs: flight 3, cookie set.
    f.socket.dtls.flight = 3;
    f.socket.dtls.cookie = cookie;
    f.socket.dtls.sequenceNumber = 2;
    await f.socket.onHandleHandshakes([helloVerify(cookie)] as never);
    await f.socket.onHandleHandshakes([helloVerify(cookie)] as never);
    expect(f.handled).toEqual([[3]]);
    expect(g.stats.duplicateHelloVerify).toBe(2);
    // A new cookie: werift may run flight 3 again (flight back to 2, the hello keeps message_seq 1).
    await f.socket.onHandleHandshakes([helloVerify(Buffer.alloc(20, 8))] as never);
    expect(f.handled).toEqual([[3], [3]]);
    expect(f.socket.dtls).toMatchObject({ flight: 2, sequenceNumber: 1 });
    expect(g.stats.newCookie).toBe(1);
    // Past flight 3 every HelloVerifyRequest is stray; other messages pass.
    f.socket.dtls.flight = 5;
    await f.socket.onHandleHandshakes([helloVerify(Buffer.alloc(20, 9)), { msg_type: 20, fragment: Buffer.alloc(12) }] as never);
    expect(f.handled).toEqual([[3], [3], [20]]);
    g.dispose();
  });
});

describe('DTLS guard, server (outbound: WhatsApp answers a=setup:active)', () => {
  it('drops a retransmitted ClientHello once flight 4 is out, passes a new one and the cookie hello', async () => {
    const f = fakeTransport(2);
    const g = guardDtlsHandshake(f.transport);
    await f.start();
    const random = Buffer.alloc(32, 1);
    await f.socket.onHandleHandshakes([clientHello(random)] as never);
    f.socket.dtls.flight = 2;
    await f.socket.onHandleHandshakes([clientHello(random)] as never); // still flight 2: werift re-sends its HelloVerifyRequest
    await f.socket.onHandleHandshakes([clientHello(random, Buffer.alloc(20, 3))] as never);
    f.socket.dtls.flight = 4;
    await f.socket.onHandleHandshakes([clientHello(random)] as never);
    expect(f.handled).toEqual([[1], [1], [1]]);
    expect(g.stats.duplicateClientHello).toBe(1);
    await f.socket.onHandleHandshakes([clientHello(Buffer.alloc(32, 2))] as never); // another handshake: werift decides
    expect(f.handled).toHaveLength(4);
    g.dispose();
  });
});

describe('DTLS guard, handshake timeout', () => {
  it(`fails the handshake through werift's error path after ${DTLS_HANDSHAKE_TIMEOUT_MS / 1000} s`, async () => {
    vi.useFakeTimers();
    const f = fakeTransport(1);
    const g = guardDtlsHandshake(f.transport);
    await f.start();
    vi.advanceTimersByTime(DTLS_HANDSHAKE_TIMEOUT_MS - 1);
    expect(f.errors).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(f.errors.map((e) => e.message)).toEqual([`DTLS handshake not complete after ${DTLS_HANDSHAKE_TIMEOUT_MS / 1000} s`]);
    expect(g.stats.timedOut).toBe(true);
    g.dispose();
  });

  it('does nothing once the handshake completed, or after dispose', async () => {
    vi.useFakeTimers();
    const a = fakeTransport(1);
    const ga = guardDtlsHandshake(a.transport, 1000);
    await a.start();
    a.setState('connected');
    const b = fakeTransport(2);
    const gb = guardDtlsHandshake(b.transport, 1000);
    await b.start();
    gb.dispose();
    vi.advanceTimersByTime(5000);
    expect([...a.errors, ...b.errors]).toEqual([]);
    expect(ga.stats.timedOut || gb.stats.timedOut).toBe(false);
    ga.dispose();
  });
});
