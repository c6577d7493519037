/**
 * The WhatsApp number an agent dialled, from the INVITE's Request-URI user part
 * (`sip:9+5511987654321@bridge`): dial prefix stripped, visual separators dropped, digits-only
 * E.164 as Graph's `to` expects.
 */
export type DialedNumber = { ok: true; e164: string } | { ok: false; reason: string };

/** E.164 allows at most 15 digits; no country code plus subscriber number is shorter than 7. */
const MIN_DIGITS = 7;
const MAX_DIGITS = 15;

export function parseDialedNumber(requestUri: string, dialPrefix: string): DialedNumber {
  const m = /^sips?:([^@;?]+)@/i.exec(requestUri);
  if (!m?.[1]) return { ok: false, reason: 'the Request-URI has no user part to dial' };
  let user: string;
  try {
    user = decodeURIComponent(m[1]);
  } catch {
    // `%ZZ`, or escapes that are not UTF-8: a clean refusal, not an exception.
    return { ok: false, reason: 'the number has invalid percent-encoding' };
  }
  if (dialPrefix !== '') {
    if (!user.startsWith(dialPrefix)) return { ok: false, reason: `number does not start with the dial prefix "${dialPrefix}"` };
    user = user.slice(dialPrefix.length);
  }
  // RFC 3966 visual separators (and spaces) and a leading + or international 00 are fine; anything else is not a number.
  const shown = shownUser(user);
  const compact = user.replace(/[ \-.()]/g, '');
  if (!/^(\+|00)?\d+$/.test(compact)) return { ok: false, reason: `"${shown}" is not a phone number` };
  const digits = compact.replace(/^(\+|00)/, '');
  if (digits.startsWith('0')) return { ok: false, reason: `"${shown}" has no country code (E.164 needed, e.g. +5511987654321)` };
  if (digits.length < MIN_DIGITS) return { ok: false, reason: `"${shown}" is too short for an E.164 number` };
  if (digits.length > MAX_DIGITS) return { ok: false, reason: `"${shown}" is too long for an E.164 number` };
  return { ok: true, e164: digits };
}

/**
 * The dialled user part as it may appear in a reason (which ends up in a log and a Warning):
 * controls (a percent-encoded CR/LF), quotes and backslashes shown as `?`, capped.
 */
function shownUser(user: string): string {
  const s = user.replace(/[\u0000-\u001f\u007f-\u009f"\\]/g, '?');
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}
