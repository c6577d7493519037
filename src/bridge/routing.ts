import type { Config, RouteRule } from '../config/schema.js';

/** What a routing decision is made on: the business number called, the caller, the time. */
export interface RouteInput {
  phoneNumberId: string;
  businessNumber: string;
  callerWaId: string;
  at: Date;
}

export interface RouteDecision {
  target: string;
  /** The rule's name or index, or "default": logged with the call. */
  rule: string;
}

/**
 * Rules are tried in order; the first whose every condition holds wins; otherwise the default.
 * A rule with no condition at all matches every call.
 */
export function route(routing: Config['routing'], input: RouteInput): RouteDecision {
  for (const [i, r] of routing.rules.entries()) {
    if (matches(r, input)) return { target: r.target, rule: r.name ?? `rules[${i}]` };
  }
  return { target: routing.default, rule: 'default' };
}

function matches(r: RouteRule, input: RouteInput): boolean {
  if (r.businessNumber !== undefined && digits(r.businessNumber) !== digits(input.businessNumber)) return false;
  if (r.phoneNumberId !== undefined && r.phoneNumberId !== input.phoneNumberId) return false;
  if (r.callerPrefix !== undefined && !digits(input.callerWaId).startsWith(r.callerPrefix)) return false;
  if (r.hours && !withinHours(r.hours, input.at)) return false;
  return true;
}

function digits(s: string): string {
  return s.replace(/\D/g, '');
}

/** Whether `at` falls on one of `days` between `open` (inclusive) and `close` (exclusive) in `timezone`. */
export function withinHours(h: NonNullable<RouteRule['hours']>, at: Date): boolean {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: h.timezone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(get('weekday'));
  const minutes = Number(get('hour')) * 60 + Number(get('minute'));
  if (!h.days.includes(day)) return false;
  const open = hhmm(h.open);
  const close = hhmm(h.close);
  // A window past midnight (22:00-06:00) wraps.
  return open <= close ? minutes >= open && minutes < close : minutes >= open || minutes < close;
}

function hhmm(s: string): number {
  const [h, m] = s.split(':').map(Number);
  return h! * 60 + m!;
}
