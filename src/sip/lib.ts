/**
 * One `sip` package instance listening on one transport (UDP or TCP), typed and made safe:
 * - `sip.create` binds its socket itself and attaches no 'error' listener, so a bind error
 *   (EADDRINUSE) would crash the process. We capture the socket/server it creates (by wrapping
 *   `dgram.createSocket` / `net.createServer` for the duration of that synchronous call), add
 *   error listeners, and resolve `openEndpoint` once it listens (reject on a bind error).
 * - Via: `sip` writes its listen address into our Via; we rewrite it to the advertised address
 *   (`contactHost`) in its `logger.send` hook, which runs after that and before the write.
 * - ACK: an ACK whose branch equals the INVITE's (some peers do this for a 2xx ACK) is swallowed
 *   by the INVITE server transaction in its Accepted state and never reaches the callback, so
 *   every ACK is taken in the `logger.recv` hook, which sees all incoming messages.
 * - Every callback into our code is guarded: an exception is logged, never thrown into `sip`.
 * - The front door (./front-door.ts) sits between the sockets and `sip`'s parser: the UDP
 *   message listener and the TCP connection listener `sip` passes to `createSocket` /
 *   `createServer` are wrapped, so `sip` only ever parses checked, well-framed messages.
 *   Connections `sip` opens itself (to the PBX) are not wrapped: they go to configured peers.
 */
import { createRequire } from 'node:module';
import { connect as netConnect, type Server, type Socket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import sip from 'sip';
import type { Logger } from 'pino';
import { checkDatagram, StreamFramer, type FrontDoor } from './front-door.js';
import type { SipWireEvent } from './types.js';

const require = createRequire(import.meta.url);
// The same CommonJS module objects `sip` requires, so wrapping their functions is seen by it.
const dgramModule = require('dgram') as { createSocket: (...args: unknown[]) => UdpSocket };
const netModule = require('net') as { createServer: (...args: unknown[]) => Server };

export type TransportName = 'udp' | 'tcp';

/**
 * Requests that must leave with the top Via they carry: a CANCEL (and the ACK of its 487) that
 * a cluster survivor sends for a dead instance's INVITE. RFC 3261 sections 9.1 and 17.2.3: the
 * PBX matches them to its INVITE transaction by that Via's branch *and* sent-by, so the dead
 * instance's sent-by must stay. `sip` keeps the branch of a CANCEL (and of an ACK with a Via) but
 * writes its own listen address into the top Via of every request it sends; the send hook puts
 * the stored one back. Over UDP the Via has `rport`, so the PBX answers the survivor's source.
 */
const foreignVia = new WeakMap<sip.Message, { host: string; port: number | undefined }>();

export function keepTopVia(m: sip.Message): sip.Message {
  const via = m.headers.via?.[0];
  if (via?.host) foreignVia.set(m, { host: via.host, port: via.port });
  return m;
}

export interface HostPort {
  host: string;
  port: number;
}

export interface EndpointOptions {
  transport: TransportName;
  listen: HostPort;
  /** Written into Via (and used for Contact by callers). */
  advertised: HostPort;
  logger: Logger;
  /** Limits, rate limiter and counters shared by the stack's endpoints. */
  frontDoor: FrontDoor;
  /** A request outside any transaction, ACK excluded; a server transaction already exists. */
  onRequest: (rq: sip.Message, remote: sip.Remote, ep: LibEndpoint) => void;
  /** Every received ACK. */
  onAck: (ack: sip.Message, remote: sip.Remote, ep: LibEndpoint) => void;
  /** Told of every message sent and received (after the front door), if set. */
  tap?: ((e: SipWireEvent) => void) | undefined;
}

function wireEvent(direction: 'in' | 'out', m: sip.Message, peer: { address: string; port: number }): SipWireEvent {
  return {
    direction,
    callId: callId(m),
    method: m.method ?? m.headers.cseq?.method ?? '',
    status: m.status,
    peer: `${peer.address}:${peer.port}`,
    text: () => sip.stringify(m),
  };
}

export interface LibEndpoint {
  readonly transport: TransportName;
  readonly listen: HostPort;
  readonly advertised: HostPort;
  /** Send a request (responses to `cb`) or a response (on its server transaction). */
  send(m: sip.Message, cb?: (rs: sip.Message) => void): void;
  /**
   * Send a response for a server transaction this process does not hold (a dead cluster
   * instance's INVITE): `sip` only sends a response through its own transaction, so it is
   * serialised by `sip` and written here, to `target` (RFC 3261 section 18.2.2). UDP: one
   * datagram from our socket; TCP: a new connection, closed after the write.
   */
  sendStateless(m: sip.Message, target: { address: string; port: number }): void;
  close(): Promise<void>;
}

function callId(m: sip.Message): string | undefined {
  return m.headers['call-id'];
}

export async function openEndpoint(opts: EndpointOptions): Promise<LibEndpoint> {
  const log = opts.logger.child({ sipTransport: opts.transport });
  let udpSocket: UdpSocket | undefined;
  let tcpServer: Server | undefined;
  const accepted = new Set<Socket>();
  let endpoint: LibEndpoint | undefined;
  let closed = false;

  const guard = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      log.error({ err, what }, 'sip: handler threw');
    }
  };

  const libLogger: sip.Logger = {
    send: (m, target) =>
      guard('send-hook', () => {
        const via = m.headers.via?.[0];
        const kept = foreignVia.get(m);
        if (m.method !== undefined && via) {
          // RFC 3261 section 18.1.1: Via sent-by is the address we want responses at.
          via.host = kept?.host ?? opts.advertised.host;
          via.port = kept ? kept.port : opts.advertised.port;
        }
        if (log.isLevelEnabled('trace')) {
          log.trace({ sipCallId: callId(m), to: `${target.address}:${target.port}`, msg: sip.stringify(m) }, 'sip: send');
        }
        opts.tap?.(wireEvent('out', m, target));
      }),
    recv: (m, remote) =>
      guard('recv-hook', () => {
        if (log.isLevelEnabled('trace')) {
          log.trace({ sipCallId: callId(m), from: `${remote.address}:${remote.port}`, msg: sip.stringify(m) }, 'sip: recv');
        }
        opts.tap?.(wireEvent('in', m, remote));
        if (m.method === 'ACK' && endpoint && !closed) {
          const ep = endpoint;
          opts.onAck(m, remote, ep);
        }
      }),
    error: (e) => log.warn({ err: e }, 'sip: package error'),
  };

  const origCreateSocket = dgramModule.createSocket;
  const origCreateServer = netModule.createServer;
  const door = opts.frontDoor;
  dgramModule.createSocket = (type: unknown, onMessage: unknown) =>
    (udpSocket = origCreateSocket.call(dgramModule, type, guardDatagrams(door, onMessage as DatagramListener)));
  netModule.createServer = (onConnection: unknown) =>
    (tcpServer = origCreateServer.call(netModule, guardConnections(door, onConnection as (s: Socket) => void, log)));
  let stack: sip.Stack;
  try {
    stack = sip.create(
      {
        address: opts.listen.host,
        port: opts.listen.port,
        udp: opts.transport === 'udp',
        tcp: opts.transport === 'tcp',
        logger: libLogger,
      },
      (rq, remote) => {
        if (rq.method === 'ACK' || closed || !endpoint) return; // ACKs are taken in the recv hook
        const ep = endpoint;
        guard('request', () => opts.onRequest(rq, remote, ep));
      },
    );
  } finally {
    dgramModule.createSocket = origCreateSocket;
    netModule.createServer = origCreateServer;
  }

  const handle: UdpSocket | Server | undefined = opts.transport === 'udp' ? udpSocket : tcpServer;
  if (!handle) throw new Error(`sip: no ${opts.transport} socket was created`);
  tcpServer?.on('connection', (s: Socket) => {
    if (s.destroyed) return;
    accepted.add(s);
    s.on('close', () => accepted.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      handle.off('listening', onListening);
      stack.destroy();
      reject(err);
    };
    const onListening = (): void => {
      handle.off('error', onError);
      resolve();
    };
    handle.once('error', onError);
    handle.once('listening', onListening);
  });
  handle.on('error', (err: Error) => log.error({ err }, 'sip: socket error'));

  let closing: Promise<void> | undefined;
  endpoint = {
    transport: opts.transport,
    listen: opts.listen,
    advertised: opts.advertised,
    send(m, cb) {
      if (closed) {
        if (m.method !== undefined && m.method !== 'ACK' && cb) {
          queueMicrotask(() => cb(sip.makeResponse(m, 503, 'Service Unavailable')));
        }
        return;
      }
      try {
        stack.send(m, cb ? (rs) => guard('response', () => cb(rs)) : undefined);
      } catch (err) {
        // e.g. a Request-URI `sip` cannot parse: fail the request like a transport error.
        log.error({ err, sipCallId: callId(m) }, 'sip: send failed');
        if (m.method !== undefined && m.method !== 'ACK' && cb) {
          queueMicrotask(() => guard('response', () => cb(sip.makeResponse(m, 503, 'Service Unavailable'))));
        }
      }
    },
    sendStateless(m, target) {
      if (closed) return;
      const bytes = Buffer.from(sip.stringify(m), 'latin1');
      opts.tap?.(wireEvent('out', m, target));
      if (udpSocket) {
        udpSocket.send(bytes, target.port, target.address, (err) => err && log.warn({ err, sipCallId: callId(m) }, 'sip: stateless send failed'));
        return;
      }
      const conn = netConnect({ host: target.address, port: target.port }, () => conn.end(bytes));
      conn.setTimeout(5000, () => conn.destroy());
      conn.on('error', (err) => log.warn({ err, sipCallId: callId(m) }, 'sip: stateless send failed'));
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        handle.once('close', () => resolve());
        stack.destroy(); // ends transactions and closes the socket / server
        for (const s of accepted) s.destroy();
      });
      return closing;
    },
  };
  return endpoint;
}

type DatagramListener = (data: Buffer | string, rinfo: { address: string; port: number }) => void;

/** `sip`'s UDP listener, behind the rate limit and the datagram checks. */
function guardDatagrams(door: FrontDoor, onMessage: DatagramListener): DatagramListener {
  return (data, rinfo) =>
    door.timed(() => {
      if (!door.rate.take(rinfo.address)) return door.drop('rate', rinfo.address, 'udp');
      const text = typeof data === 'string' ? data : data.length > door.limits.maxMessageBytes ? undefined : data.toString('latin1');
      const checked = text === undefined ? ({ ok: false, reason: 'too-large' } as const) : checkDatagram(text, door.limits);
      if (!checked.ok) return door.drop(checked.reason, rinfo.address, 'udp');
      door.accept(() => onMessage(checked.text, rinfo));
    });
}

/**
 * `sip`'s TCP connection listener, behind the connection limits: the 'data' listener `sip`
 * registers on the socket is replaced by a framer that hands it one checked message at a time.
 */
function guardConnections(door: FrontDoor, onConnection: (s: Socket) => void, log: Logger): (s: Socket) => void {
  return (stream) => {
    const source = stream.remoteAddress ?? '?';
    if (!door.openConnection(source)) {
      door.drop('tcp-connections', source, 'tcp');
      stream.destroy();
      return;
    }
    stream.once('close', () => door.releaseConnection(source));
    const framer = new StreamFramer(door.limits);
    let deadline: NodeJS.Timeout | undefined;
    const kill = (reason: Parameters<FrontDoor['drop']>[0]): void => {
      door.drop(reason, source, 'tcp');
      stream.destroy();
    };
    stream.once('close', () => clearTimeout(deadline));
    const on = stream.on.bind(stream);
    let wrapped = false;
    // `sip` registers exactly one 'data' listener, right after setEncoding('binary').
    stream.on = ((event: string, listener: (...a: unknown[]) => void) => {
      if (event !== 'data' || wrapped) return on(event, listener);
      wrapped = true;
      return on('data', (chunk: string | Buffer) =>
        door.timed(() => {
          const messages = framer.push(typeof chunk === 'string' ? chunk : chunk.toString('latin1'));
          if (framer.failed) return kill(framer.failed);
          for (const m of messages) {
            if (!door.rate.take(source)) return kill('rate');
            door.accept(() => listener(m));
          }
          if (!framer.partial) {
            clearTimeout(deadline);
            deadline = undefined;
          } else {
            deadline ??= setTimeout(() => kill('tcp-timeout'), door.limits.tcpMessageTimeoutMs).unref();
          }
        }),
      );
    }) as Socket['on'];
    onConnection(stream);
    stream.on = on as Socket['on'];
    // `sip` closes idle connections after 120 s only while it holds no reference; ours is absolute.
    stream.setTimeout(door.limits.tcpIdleTimeoutMs, () => {
      log.debug({ source }, 'sip: closing idle TCP connection');
      stream.destroy();
    });
  };
}
