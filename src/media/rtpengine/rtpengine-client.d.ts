/** Minimal typings for rtpengine-client 0.4 (it ships none): the UDP ng client we use. */
declare module 'rtpengine-client' {
  import { EventEmitter } from 'node:events';

  export type NgValue = string | number | NgValue[] | { [key: string]: NgValue };
  export type NgMessage = Record<string, NgValue>;
  export interface NgTarget {
    host: string;
    port: number;
  }

  export class Client extends EventEmitter {
    constructor(opts?: { localPort?: number; localAddress?: string; timeout?: number; rejectOnError?: boolean });
    offer(target: NgTarget, opts: NgMessage): Promise<NgMessage>;
    answer(target: NgTarget, opts: NgMessage): Promise<NgMessage>;
    delete(target: NgTarget, opts: NgMessage): Promise<NgMessage>;
    list(target: NgTarget, opts?: NgMessage): Promise<NgMessage>;
    ping(target: NgTarget, opts?: NgMessage): Promise<NgMessage>;
    query(target: NgTarget, opts: NgMessage): Promise<NgMessage>;
    statistics(target: NgTarget, opts?: NgMessage): Promise<NgMessage>;
    /** `play media` (file, blob or db-id) to the participant named by `from-tag`. */
    playMedia(target: NgTarget, opts: NgMessage): Promise<NgMessage>;
    stopMedia(target: NgTarget, opts: NgMessage): Promise<NgMessage>;
    close(): void;
  }
  export class RtpEngineError extends Error {}
  const _default: { Client: typeof Client; RtpEngineError: typeof RtpEngineError };
  export default _default;
}
