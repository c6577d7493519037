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
 */
import { createRequire } from 'node:module';
import type { Server, Socket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import sip from 'sip';
import type { Logger } from 'pino';

const require = createRequire(import.meta.url);
// The same CommonJS module objects `sip` requires, so wrapping their functions is seen by it.
const dgramModule = require('dgram') as { createSocket: (...args: unknown[]) => UdpSocket };
const netModule = require('net') as { createServer: (...args: unknown[]) => Server };

export type TransportName = 'udp' | 'tcp';

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
  /** A request outside any transaction, ACK excluded; a server transaction already exists. */
  onRequest: (rq: sip.Message, remote: sip.Remote, ep: LibEndpoint) => void;
  /** Every received ACK. */
  onAck: (ack: sip.Message, remote: sip.Remote, ep: LibEndpoint) => void;
}

export interface LibEndpoint {
  readonly transport: TransportName;
  readonly listen: HostPort;
  readonly advertised: HostPort;
  /** Send a request (responses to `cb`) or a response (on its server transaction). */
  send(m: sip.Message, cb?: (rs: sip.Message) => void): void;
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
        if (m.method !== undefined && via) {
          // RFC 3261 section 18.1.1: Via sent-by is the address we want responses at.
          via.host = opts.advertised.host;
          via.port = opts.advertised.port;
        }
        if (log.isLevelEnabled('trace')) {
          log.trace({ sipCallId: callId(m), to: `${target.address}:${target.port}`, msg: sip.stringify(m) }, 'sip: send');
        }
      }),
    recv: (m, remote) =>
      guard('recv-hook', () => {
        if (log.isLevelEnabled('trace')) {
          log.trace({ sipCallId: callId(m), from: `${remote.address}:${remote.port}`, msg: sip.stringify(m) }, 'sip: recv');
        }
        if (m.method === 'ACK' && endpoint && !closed) {
          const ep = endpoint;
          opts.onAck(m, remote, ep);
        }
      }),
    error: (e) => log.warn({ err: e }, 'sip: package error'),
  };

  const origCreateSocket = dgramModule.createSocket;
  const origCreateServer = netModule.createServer;
  dgramModule.createSocket = (...args: unknown[]) => (udpSocket = origCreateSocket.apply(dgramModule, args));
  netModule.createServer = (...args: unknown[]) => (tcpServer = origCreateServer.apply(netModule, args));
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
