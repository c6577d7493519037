/**
 * Strict shapes of the webhook fields that travel on toward SIP (headers, URIs, logs). Checked in
 * the parser, so nothing downstream ever sees a CR/LF, a control character or an over-long value
 * from the network (issue 8). Patterns are anchored and linear (no nested quantifiers).
 */

/** WhatsApp call ids: `wacid.` + base64/base64url text (Meta: `wacid.HBgL…AA==`). */
export const WA_CALL_ID = /^wacid\.[A-Za-z0-9+/=_-]{1,256}$/;
/** wa_id and other phone numbers: digits only, country code first, no `+`. */
export const WA_NUMBER = /^[0-9]{1,20}$/;
/** Graph object ids (`metadata.phone_number_id`): digits. */
export const GRAPH_ID = /^[0-9]{1,32}$/;
/** Call status words (RINGING, ACCEPTED, COMPLETED, FAILED, …). */
export const STATUS_WORD = /^[A-Za-z_]{1,32}$/;

export const MAX_SDP_CHARS = 64 * 1024;
export const MAX_NAME_CHARS = 256;
export const MAX_OPAQUE_CHARS = 512;
export const MAX_ERROR_TEXT_CHARS = 256;

/**
 * Characters refused in free text: C0/C1 controls (CR, LF, NUL, ESC, DEL…), line/paragraph
 * separators, bidi overrides/isolates (text that displays differently from what it is), BOM,
 * and lone surrogates (`\p{Cs}` in unicode mode: not well-formed UTF-16).
 * Format characters used by emoji (ZWJ, variation selectors) stay allowed.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cs}\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]/u;

/** Printable text of 1..`max` characters. */
export function isPrintableText(s: string, max: number): boolean {
  return s.length > 0 && s.length <= max && !UNPRINTABLE.test(s);
}

/** For free text only logged or shown (error messages): unprintables become spaces, capped. */
export function printableOrTrimmed(s: string, max = MAX_ERROR_TEXT_CHARS): string {
  const t = s.replace(new RegExp(UNPRINTABLE.source, 'gu'), ' ');
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** `display_phone_number` may come formatted (`+1 555-078-3881`): digits only, or undefined. */
export function normaliseDisplayNumber(s: string): string | undefined {
  if (s.length > 40) return undefined;
  const digits = s.replace(/[\s+().-]/g, '');
  return WA_NUMBER.test(digits) ? digits : undefined;
}
