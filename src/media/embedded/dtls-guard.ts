/**
 * Hardening of werift's (0.24.4) DTLS handshake on the WhatsApp leg.
 *
 * The race: on an inbound call we answer `a=setup:active` and werift's DTLS client sends its
 * ClientHello as soon as ICE is up, but WhatsApp only learns our answer (ICE credentials, DTLS
 * fingerprint) when the bridge's Graph `pre_accept` reaches it, which can be seconds later.
 * werift's flight timer (dtls/src/flight/flight.js `transmit`) resends the ClientHello after
 * 0.5 s, 1 s, 1.5 s, ... (11 sends over ~33 s), so the peer may have several copies by the
 * time its DTLS server starts, and answers each with a HelloVerifyRequest. werift's client
 * handles the first (client.js `hello_verify_request_3` -> `Flight3.exec`) and throws on the
 * second: flight/client/flight3.js `if (this.dtls.flight === 3) throw new Error()`; socket.js
 * turns that into `onError`, and the transport goes 'failed' (transport/dtls.js `start`). Any
 * duplicated or retransmission-crossing HelloVerifyRequest does the same.
 *
 * RFC 6347 4.2.1/4.2.4: a repeated HelloVerifyRequest is answered by the ClientHello with the
 * cookie, which the flight-3 retransmission timer already resends; so a HelloVerifyRequest with
 * the cookie we already use is dropped, and one with a new cookie restarts flight 3 with it.
 * Once the handshake is past flight 3, stray HelloVerifyRequests are dropped. The server side
 * (outbound calls where WhatsApp answers `a=setup:active`) gets the mirror guard: a retransmitted
 * ClientHello (same random, no cookie) arriving after we sent our flight 4 would rerun werift's
 * flight 2, which replaces the key pair and random the handshake is using; it is dropped.
 *
 * A real failure still fails: a bad fingerprint fails in werift's own check after the handshake,
 * and a handshake that has not completed `timeoutMs` after it started (the peer never answers)
 * is failed through werift's own error path (the transport goes 'failed').
 */
import type { RTCDtlsTransport } from 'werift';

/** A handshake that has not completed this long after DTLS started fails. */
export const DTLS_HANDSHAKE_TIMEOUT_MS = 20_000;

const CLIENT_HELLO = 1;
const HELLO_VERIFY_REQUEST = 3;
/** werift's SessionType (cipher/suites/abstract). */
const CLIENT = 1;
const SERVER = 2;

type DtlsSocket = NonNullable<RTCDtlsTransport['dtls']>;
type Handshakes = Parameters<DtlsSocket['onHandleHandshakes']>[0];

export interface DtlsGuardStats {
  /** Repeated HelloVerifyRequests dropped (client). */
  duplicateHelloVerify: number;
  /** HelloVerifyRequests with a new cookie that restarted flight 3 (client). */
  newCookie: number;
  /** Retransmitted ClientHellos dropped after our flight 4 (server). */
  duplicateClientHello: number;
  /** Whether the handshake timed out. */
  timedOut: boolean;
}

/** HelloVerifyRequest body: server_version(2) cookie<0..2^8-1>. */
function helloVerifyCookie(body: Buffer): Buffer | undefined {
  if (body.length < 3) return undefined;
  const len = body[2]!;
  return body.length >= 3 + len ? body.subarray(3, 3 + len) : undefined;
}

/** ClientHello body: client_version(2) random(32) session_id<0..32> cookie<0..2^8-1> ... */
function clientHelloParts(body: Buffer): { random: Buffer; cookie: Buffer } | undefined {
  if (body.length < 35) return undefined;
  const sidLen = body[34]!;
  const at = 35 + sidLen;
  if (body.length < at + 1) return undefined;
  const cookieLen = body[at]!;
  if (body.length < at + 1 + cookieLen) return undefined;
  return { random: body.subarray(2, 34), cookie: body.subarray(at + 1, at + 1 + cookieLen) };
}

/**
 * Guard one werift DTLS transport (call before its handshake starts: it hooks the socket when
 * the transport goes 'connecting'). Returns the stats and a dispose function.
 */
export function guardDtlsHandshake(
  transport: RTCDtlsTransport,
  timeoutMs = DTLS_HANDSHAKE_TIMEOUT_MS,
): { stats: DtlsGuardStats; dispose: () => void } {
  const stats: DtlsGuardStats = { duplicateHelloVerify: 0, newCookie: 0, duplicateClientHello: 0, timedOut: false };
  let timer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };

  const hook = (socket: DtlsSocket): void => {
    const original = socket.onHandleHandshakes;
    const seenRandoms: Buffer[] = [];
    socket.onHandleHandshakes = (assembled: Handshakes): Promise<void> => {
      const kept = assembled.filter((h) => {
        if (h.msg_type === HELLO_VERIFY_REQUEST && socket.sessionType === CLIENT && !socket.connected) {
          const ctx = socket.dtls;
          if (ctx.flight < 3) return true; // the first one: flight 3 goes out
          const cookie = helloVerifyCookie(h.fragment);
          if (ctx.flight === 3 && cookie && ctx.cookie && !cookie.equals(ctx.cookie)) {
            // A new cookie: resend the ClientHello with it (the same hello, message_seq 1).
            stats.newCookie++;
            ctx.flight = 2;
            ctx.sequenceNumber = 1;
            return true;
          }
          stats.duplicateHelloVerify++;
          return false;
        }
        if (h.msg_type === CLIENT_HELLO && socket.sessionType === SERVER && !socket.connected) {
          const parts = clientHelloParts(h.fragment);
          if (!parts || parts.cookie.length > 0) return true;
          const repeat = seenRandoms.some((r) => r.equals(parts.random));
          if (!repeat) seenRandoms.push(Buffer.from(parts.random));
          if (repeat && socket.dtls.flight >= 4) {
            stats.duplicateClientHello++;
            return false;
          }
        }
        return true;
      });
      return kept.length > 0 ? original(kept) : Promise.resolve();
    };
  };

  const sub = transport.onStateChange.subscribe((state) => {
    if (state === 'connecting') {
      // werift creates its DTLS socket right after announcing 'connecting', in the same tick.
      queueMicrotask(() => {
        const socket = transport.dtls;
        if (!socket || transport.state !== 'connecting') return;
        hook(socket);
        timer = setTimeout(() => {
          timer = undefined;
          if (transport.state !== 'connecting') return;
          stats.timedOut = true;
          // werift's own failure path: the transport goes 'failed' and start() rejects.
          socket.onError.execute(new Error(`DTLS handshake not complete after ${timeoutMs / 1000} s`));
        }, timeoutMs);
      });
    } else {
      stop();
    }
  });

  return {
    stats,
    dispose: () => {
      stop();
      sub.unSubscribe();
    },
  };
}
