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
  let user = decodeURIComponent(m[1]);
  if (dialPrefix !== '') {
    if (!user.startsWith(dialPrefix)) return { ok: false, reason: `number does not start with the dial prefix "${dialPrefix}"` };
    user = user.slice(dialPrefix.length);
  }
  // RFC 3966 visual separators and a leading + or international 00 are fine; anything else is not a number.
  const compact = user.replace(/[\s\-.()]/g, '');
  if (!/^(\+|00)?\d+$/.test(compact)) return { ok: false, reason: `"${user}" is not a phone number` };
  const digits = compact.replace(/^(\+|00)/, '');
  if (digits.startsWith('0')) return { ok: false, reason: `"${user}" has no country code (E.164 needed, e.g. +5511987654321)` };
  if (digits.length < MIN_DIGITS) return { ok: false, reason: `"${user}" is too short for an E.164 number` };
  if (digits.length > MAX_DIGITS) return { ok: false, reason: `"${user}" is too long for an E.164 number` };
  return { ok: true, e164: digits };
}
