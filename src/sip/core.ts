/**
 * What the dialog, UAC and UAS modules need from the stack (the "transaction user" services),
 * so they do not depend on `stack.ts` or on each other.
 */
import type sip from 'sip';
import type { Logger } from 'pino';
import type { LibEndpoint } from './lib.js';
import type { StoredDialog } from './types.js';
import type { SessionTimerConfig } from './session-timer.js';

/** RFC 3261 section 17.1.1.1 timer values, injectable for tests. */
export interface SipTimers {
  t1: number;
  t2: number;
}

export const DEFAULT_TIMERS: SipTimers = Object.freeze({ t1: 500, t2: 4000 });

export interface Credentials {
  username: string;
  password: string;
}

export interface DialogRegistry {
  add(key: string, handler: DialogHandle): void;
  remove(key: string): void;
}

/** The part of a dialog the stack dispatches to. */
export interface DialogHandle {
  handleRequest(rq: sip.Message, ep: LibEndpoint): void;
  handleAck(ack: sip.Message): void;
  /** Stop timers (stack closing). */
  dispose(): void;
  /** The dialog as data (cluster takeover); absent: nothing another instance could end. */
  snapshot?(): StoredDialog | undefined;
}

export interface SipCore {
  readonly logger: Logger;
  readonly userAgent: string;
  readonly credentials: Credentials | undefined;
  readonly timers: SipTimers;
  /** RFC 4028 session timers (./session-timer.ts). */
  readonly session: SessionTimerConfig;
  readonly dialogs: DialogRegistry;
  /**
   * Send a request; `onResponse` gets every response (1xx included). When the stack closes
   * before a final response, it gets a synthesized 503.
   */
  request(ep: LibEndpoint, rq: sip.Message, onResponse: (rs: sip.Message) => void): void;
  /** Send a response to `rq` on its server transaction. */
  reply(ep: LibEndpoint, rq: sip.Message, status: number, reason: string, ext?: sip.Extension): void;
  /** Our Contact header value for requests/responses sent on `ep`. */
  contact(ep: LibEndpoint): string;
  /** The endpoint to send a request to `uri` (first hop: `route[0]` if any) on. */
  endpointFor(uri: string, route: readonly string[], fallback?: LibEndpoint): LibEndpoint;
}

/** Key under which a dialog is registered: RFC 3261 section 12 dialog ID, as seen locally. */
export function dialogKey(callId: string, localTag: string): string {
  return `${callId}\n${localTag}`;
}

/** Run `fn`, logging instead of throwing: user callbacks must never break the stack. */
export function guarded(log: Logger, what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.error({ err, what }, 'sip: callback threw');
  }
}
