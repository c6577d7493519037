/**
 * Header values: name-addr formatting and parsing (RFC 3261 section 20.10, 25.1), tags and
 * Call-IDs, and the text encoding the `sip` package expects.
 */
import { randomBytes } from 'node:crypto';
import sip from 'sip';
import type { NameAddr } from './types.js';

/**
 * `sip` writes and reads messages as "binary" (latin1) strings, so one JS char is one byte.
 * UTF-8 text (a WhatsApp display name) must be turned into bytes-as-chars before it is handed
 * to the package, and back after parsing, or non-ASCII characters are mangled on the wire.
 */
export function toWire(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

export function fromWire(bytes: string): string {
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/*
 * Sanitising: every header value built from outside data (a WhatsApp profile name, a number, a
 * call id, a Warning text) passes one of the functions below before it is written, so nothing
 * from a webhook or a PBX can end a header line, inject another header, or put bytes on the wire
 * that RFC 3261's grammar forbids. `sip` writes header values verbatim.
 */

/** C0 controls (CR, LF, NUL, ESC ...), DEL and C1 controls. */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;
/** Longest display name / header value we write (characters, before UTF-8 encoding). */
const MAX_DISPLAY_NAME = 128;
const MAX_HEADER_VALUE = 1024;

/** Controls become one space, runs of white space collapse, the result is trimmed and capped. */
export function printable(text: string, max = MAX_HEADER_VALUE): string {
  const s = text.replace(CONTROLS, ' ').replace(/\s+/g, ' ').trim();
  return s.length > max ? s.slice(0, max) : s;
}

/**
 * RFC 3261 section 25.1 quoted-string: no CR/LF/NUL/ESC/DEL or other controls (qdtext has none;
 * we do not send them as quoted-pairs either), `"` and `\` escaped as quoted-pair.
 */
export function quotedString(text: string, max = MAX_HEADER_VALUE): string {
  return `"${printable(text, max).replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** A display name as an RFC 3261 quoted-string (see `quotedString`), capped at 128 characters. */
export function quoteDisplayName(name: string): string {
  return quotedString(name, MAX_DISPLAY_NAME);
}

/**
 * A SIP URI safe to put between `<` and `>`: every byte outside visible ASCII, and `<`, `>`, `"`,
 * `%` not starting a valid escape, is percent-encoded (RFC 3261 section 19.1.1 `escaped`), so a
 * CR/LF or space can never end the header.
 */
export function safeUri(uri: string): string {
  return Array.from(Buffer.from(uri, 'utf8'))
    .map((b, i, all) => {
      const c = String.fromCharCode(b);
      const validEscape = c === '%' && /^[0-9a-fA-F]{2}$/.test(String.fromCharCode(all[i + 1] ?? 0, all[i + 2] ?? 0));
      if (b > 0x20 && b < 0x7f && c !== '<' && c !== '>' && c !== '"' && (c !== '%' || validEscape)) return c;
      return `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

/** RFC 3261 section 25.1 user part: unreserved and user-unreserved characters kept, the rest escaped. */
export function escapeUserPart(user: string): string {
  return Array.from(Buffer.from(user, 'utf8'))
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9\-_.!~*'()&=+$,;?/]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

/** `Warning` value (RFC 3261 section 20.43): `code agent "text"` with `text` a clean quoted-string. */
export function warningValue(text: string, code = 399, agent = 'wa-sip-bridge'): string {
  return `${code} ${agent} ${quotedString(text, 200)}`;
}

const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
const WARNING = /^(\d{3}) ([^\s"]+) "(.*)"$/s;

/**
 * An extra header (name, value) as it may be written, or undefined when the name is not a
 * token or is one the stack sets itself. The value is made `printable`; a Warning's text is
 * re-quoted with `warningValue`. Returns wire text (see `toWire`).
 */
export function safeHeader(name: string, value: string): [string, string] | undefined {
  if (!TOKEN.test(name) || isReservedHeader(name)) return undefined;
  const w = name.toLowerCase() === 'warning' ? WARNING.exec(value) : null;
  const v = w ? warningValue(w[3]!.replace(/\\(.)/g, '$1'), Number(w[1]), printable(w[2]!).replace(/\s/g, '')) : printable(value);
  return [name, toWire(v)];
}

/** `safeHeader` over a record; dropped names are passed to `onDropped`. */
export function safeHeaders(headers: Record<string, string> | undefined, onDropped?: (name: string) => void): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const h = safeHeader(name, value);
    if (h) out[h[0]] = h[1];
    else onDropped?.(name);
  }
  return out;
}

/** Inverse of `quoteDisplayName`; a token display name (unquoted) is returned as is. */
export function unquoteDisplayName(raw: string): string {
  const s = raw.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) {
    return s.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return s;
}

/**
 * `"Display" <uri>;tag=...` (RFC 3261 section 20.10: always the `<>` form, so URI parameters
 * are not taken as header parameters). Returns wire text (see `toWire`).
 */
export function formatNameAddr(addr: NameAddr, tag?: string): string {
  const name = addr.displayName !== undefined && addr.displayName !== '' ? `${quoteDisplayName(addr.displayName)} ` : '';
  return toWire(`${name}<${safeUri(addr.uri)}>${tag !== undefined ? `;tag=${tag}` : ''}`);
}

/** A From/To/Contact value as parsed by `sip` (or a raw string), as a `NameAddr`. */
export function parseNameAddr(value: sip.NameAddrObject | string | undefined): NameAddr {
  const obj = typeof value === 'string' ? parseNameAddrText(value) : value;
  if (!obj) return { uri: '' };
  const uri = fromWire(sip.stringifyUri(obj.uri));
  const out: NameAddr = { uri };
  if (obj.name !== undefined && obj.name !== '') out.displayName = unquoteDisplayName(fromWire(obj.name));
  return out;
}

function parseNameAddrText(text: string): sip.NameAddrObject | undefined {
  const m = sip.parse(`OPTIONS sip:x SIP/2.0\r\nTo: ${text}\r\n\r\n`);
  const to = m?.headers.to;
  return typeof to === 'object' ? to : undefined;
}

/** The `tag` parameter of a parsed From/To. */
export function tagOf(value: sip.NameAddrObject | string | undefined): string | undefined {
  const obj = typeof value === 'string' ? parseNameAddrText(value) : value;
  const tag = obj?.params?.['tag'];
  return typeof tag === 'string' ? tag : undefined;
}

/** The URI of a parsed From/To/Contact as a string. */
export function uriOf(value: sip.NameAddrObject | string | undefined): string | undefined {
  const obj = typeof value === 'string' ? parseNameAddrText(value) : value;
  return obj ? sip.stringifyUri(obj.uri) : undefined;
}

/** RFC 3261 section 19.3: tags need 32 bits of randomness. */
export function generateTag(): string {
  return randomBytes(6).toString('hex');
}

/** RFC 3261 section 8.1.1.4: globally unique Call-ID. */
export function generateCallId(host: string): string {
  return `${randomBytes(12).toString('hex')}@${host.replace(/:\d+$/, '')}`;
}

/** Header names `sip` or the dialog layer set themselves; extra headers may not override them. */
const RESERVED = new Set([
  'via', 'from', 'to', 'call-id', 'cseq', 'contact', 'content-length', 'content-type',
  'max-forwards', 'route', 'record-route', 'authorization', 'proxy-authorization', 'f', 't', 'i', 'v', 'm', 'l', 'c',
]);

export function isReservedHeader(name: string): boolean {
  return RESERVED.has(name.toLowerCase());
}

/** Wire text of a name-addr parsed by `sip`, with its tag replaced by `tag` when given. */
export function formatNameAddrObject(a: sip.NameAddrObject, tag?: string): string {
  const params = { ...(a.params ?? {}) };
  if (tag !== undefined) params['tag'] = tag;
  return `${a.name ? `${a.name} ` : ''}<${sip.stringifyUri(a.uri)}>${formatParams(params)}`;
}

function formatParams(params: Record<string, string | number | null>): string {
  return Object.entries(params)
    .map(([k, p]) => `;${k}${p === null ? '' : `=${p}`}`)
    .join('');
}

const AUTH_HEADERS = new Set(['authorization', 'proxy-authorization', 'www-authenticate', 'proxy-authenticate']);

/** A received header as text; structured headers parsed by `sip` are turned back into text. */
export function headerText(msg: sip.Message, name: string): string | undefined {
  const key = name.toLowerCase();
  // RFC 4028 compact form `x`, which `sip` does not expand.
  const v = msg.headers[key] ?? (key === 'session-expires' ? msg.headers['x'] : undefined);
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return fromWire(v);
  if (typeof v === 'number') return String(v);
  if (AUTH_HEADERS.has(key) && Array.isArray(v)) {
    // Parsed by `sip` into { scheme, param: value-as-on-the-wire }; the first one (a request
    // carrying credentials for several realms is not expected from a PBX).
    const first = (v as sip.AuthHeader[])[0];
    return first ? fromWire(sip.stringifyAuthHeader(first)) : undefined;
  }
  if (key === 'cseq' && msg.headers.cseq) return `${msg.headers.cseq.seq} ${msg.headers.cseq.method}`;
  if (key === 'via' && Array.isArray(v)) {
    return (v as sip.Via[])
      .map((h) => `SIP/2.0/${h.protocol ?? ''} ${h.host ?? ''}${h.port ? `:${h.port}` : ''}${formatParams(h.params)}`)
      .join(', ');
  }
  const isAor = (x: unknown): x is sip.NameAddrObject => typeof x === 'object' && x !== null && 'uri' in x;
  if (Array.isArray(v) && v.every(isAor)) return fromWire(v.map((a) => formatNameAddrObject(a)).join(', '));
  if (isAor(v)) return fromWire(formatNameAddrObject(v));
  return undefined;
}

/** The first Contact URI of a message (RFC 3261 section 12.1: the remote target). */
export function contactUri(msg: sip.Message): string | undefined {
  const c = msg.headers.contact;
  if (Array.isArray(c) && c[0]) return sip.stringifyUri(c[0].uri);
  return undefined;
}

/** Record-Route URIs in message order (RFC 3261 section 12.1.1/12.1.2 decide the direction). */
export function recordRouteUris(msg: sip.Message): string[] {
  const rr = msg.headers['record-route'];
  return Array.isArray(rr) ? rr.map((r) => sip.stringifyUri(r.uri)) : [];
}

/** Body if it is SDP (or untyped and non-empty). */
export function sdpBody(msg: sip.Message): string | undefined {
  const body = msg.content;
  if (body === undefined || body === '') return undefined;
  const ct = typeof msg.headers['content-type'] === 'string' ? msg.headers['content-type'].toLowerCase() : '';
  if (ct !== '' && !ct.startsWith('application/sdp')) return undefined;
  return fromWire(body);
}

/** The `Reason` header (RFC 3326), if any. */
export function reasonHeader(msg: sip.Message): string | undefined {
  const r = msg.headers['reason'];
  return typeof r === 'string' ? fromWire(r) : undefined;
}
