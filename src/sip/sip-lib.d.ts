/**
 * Types for the untyped npm package `sip` (kirm/sip.js 0.0.6), only the parts we use.
 * Messages are plain objects: header names are lower-case keys; some headers are parsed
 * (via, to, from, contact, route, record-route, cseq, auth headers), the rest are strings.
 * Text is handled as "binary" (latin1) strings: see `toWire`/`fromWire` in ./headers.ts.
 */
declare module 'sip' {
  namespace sip {
    interface UriObject {
      schema?: string;
      user?: string;
      password?: string;
      host: string;
      port?: number;
      params: Record<string, string | null>;
      headers?: Record<string, string>;
    }
    interface NameAddrObject {
      /** Display name as on the wire (quotes included). */
      name?: string;
      uri: string | UriObject;
      params?: Record<string, string | null>;
    }
    interface Via {
      version?: string;
      protocol?: string;
      host?: string;
      port?: number;
      params: Record<string, string | number | null>;
    }
    interface CSeq {
      seq: number;
      method: string;
    }
    interface AuthHeader {
      scheme?: string;
      [param: string]: string | undefined;
    }
    interface Headers {
      via?: Via[];
      to?: NameAddrObject | string;
      from?: NameAddrObject | string;
      'call-id'?: string;
      cseq?: CSeq;
      contact?: NameAddrObject[] | '*' | string;
      route?: NameAddrObject[] | string;
      'record-route'?: NameAddrObject[];
      'content-type'?: string;
      'content-length'?: number;
      'www-authenticate'?: AuthHeader[];
      'proxy-authenticate'?: AuthHeader[];
      authorization?: AuthHeader[];
      'proxy-authorization'?: AuthHeader[];
      [name: string]: unknown;
    }
    interface Message {
      method?: string;
      uri?: string | UriObject;
      status?: number;
      reason?: string;
      version?: string;
      headers: Headers;
      content?: string;
    }
    interface Remote {
      protocol: string;
      address: string;
      port: number;
      local?: { address: string; port: number };
    }
    interface Logger {
      send?: (m: Message, target: Remote) => void;
      recv?: (m: Message, remote: Remote) => void;
      error?: (e: unknown) => void;
    }
    interface CreateOptions {
      address?: string;
      port?: number;
      udp?: boolean;
      tcp?: boolean;
      publicAddress?: string;
      hostname?: string;
      rport?: boolean;
      logger?: Logger;
    }
    interface Stack {
      /** Requests: starts a client transaction, `cb` gets every response. Responses: sent on the matching server transaction. */
      send(m: Message, cb?: (rs: Message) => void): void;
      destroy(): void;
      hostname(): string;
    }
    interface Extension {
      headers?: Headers;
      content?: string;
    }
  }
  const sip: {
    create(options: sip.CreateOptions, onRequest: (rq: sip.Message, remote: sip.Remote) => void): sip.Stack;
    makeResponse(rq: sip.Message, status: number, reason?: string, ext?: sip.Extension): sip.Message;
    stringify(m: sip.Message): string;
    parse(s: string): sip.Message | undefined;
    parseUri(s: string | sip.UriObject): sip.UriObject | undefined;
    stringifyUri(u: string | sip.UriObject): string;
    stringifyAuthHeader(a: sip.AuthHeader): string;
    generateBranch(): string;
  };
  export = sip;
}

declare module 'sip/digest.js' {
  import type sip from 'sip';
  namespace digest {
    interface ClientContext {
      realm?: string;
      nonce?: string;
      [k: string]: unknown;
    }
    interface Credentials {
      user: string;
      password: string;
      realm?: string;
    }
  }
  const digest: {
    /** Adds (Proxy-)Authorization for challenge `rs` to `rq`; mutates `ctx`. Throws on a malformed challenge. */
    signRequest(
      ctx: digest.ClientContext,
      rq: sip.Message,
      rs: sip.Message | undefined,
      creds: digest.Credentials,
    ): digest.ClientContext | null;
  };
  export = digest;
}
