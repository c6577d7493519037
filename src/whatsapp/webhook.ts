/**
 * WhatsApp webhook payloads → the closed event set of ./types.ts.
 *
 * Envelope (Meta UIC/BIC pages; 360dialog forwards the same):
 *   {"object":"whatsapp_business_account","entry":[{"id","changes":[{"field","value":{…}}]}]}
 * - field `calls`: `value.calls[]` (event connect|terminate) and `value.statuses[]` (type call:
 *   RINGING|ACCEPTED|REJECTED, business-initiated calls only).
 * - field `messages`: `value.messages[]` with `type:"interactive"` and
 *   `interactive.type:"call_permission_reply"` (UCP). Every other message is ignored.
 *
 * Schemas are permissive on extra fields (zod strips them) and strict on the fields the bridge
 * relies on: ids, numbers, names and SDP must match ./patterns.ts before anything reaches SIP; an
 * event that does not is dropped (`ignored` with `invalid` set), the rest of the POST is kept.
 * At most `maxEvents` items (calls[], statuses[], messages[], entries, changes) are taken per
 * POST. Anything that is not one of our events becomes an `ignored` entry with a reason.
 * `parseWebhook` never throws, whatever it is given.
 *
 * Parsing is pure and deterministic: the same payload delivered twice (at-least-once delivery)
 * yields equal events, and every event stands alone (a terminate parses the same whether or not
 * its connect was seen), so ordering and dedupe are the caller's business; see `eventKey`.
 */
import type { z } from 'zod';
import { MAX_NAME_CHARS, WA_CALL_ID, isPrintableText, normaliseDisplayNumber, printableOrTrimmed } from './patterns.js';
import {
  callErrorSchema,
  callEventSchema,
  changeSchema,
  connectSchema,
  contactSchema,
  entrySchema,
  envelopeSchema,
  messageHeadSchema,
  metadataSchema,
  permissionReplySchema,
  statusSchema,
  terminateSchema,
} from './webhook-schemas.js';
import type {
  CallDirection,
  ParsedWebhook,
  WaCallError,
  WaConnectEvent,
  WaEvent,
  WaEventBase,
  WaIgnored,
  WaPermissionReplyEvent,
  WaStatusEvent,
  WaTerminateEvent,
} from './types.js';

// ---- helpers -------------------------------------------------------------------------------

/** A part of the payload that is not an event: why, and whether it was invalid input. */
interface Reject {
  reason: string;
  invalid?: NonNullable<WaIgnored['invalid']>;
  callId?: string;
}

/** Parse state of one POST: the output and what is left of the per-POST event budget. */
interface Ctx {
  out: ParsedWebhook;
  left: number;
  over: number;
}

export const DEFAULT_MAX_EVENTS_PER_POST = 50;

function describeIssues(err: z.ZodError): string {
  const first = err.issues[0];
  if (!first) return 'invalid';
  const path = first.path.length ? first.path.map(String).join('.') : '(root)';
  const more = err.issues.length > 1 ? ` (+${err.issues.length - 1} more)` : '';
  return `${path}: ${first.message}${more}`;
}

const INVALID_BY_FIELD: Record<string, NonNullable<WaIgnored['invalid']>> = {
  id: 'call-id',
  from: 'number',
  to: 'number',
  session: 'sdp',
  connection: 'sdp',
  biz_opaque_callback_data: 'opaque',
  status: 'status',
};

/** A schema failure of an event: invalid input, named by the first field that failed. */
function invalid(what: string, err: z.ZodError, raw: unknown): Reject {
  const head = err.issues[0]?.path[0];
  const r: Reject = { reason: `${what}: ${describeIssues(err)}`, invalid: INVALID_BY_FIELD[String(head)] ?? 'schema' };
  const id = (raw as { id?: unknown } | null)?.id;
  if (typeof id === 'string' && WA_CALL_ID.test(id)) r.callId = id;
  return r;
}

function ignore(out: ParsedWebhook, reason: string | Reject, field?: string): void {
  const r = typeof reason === 'string' ? { reason } : reason;
  const entry: WaIgnored = { reason: r.reason };
  if (field !== undefined) entry.field = field;
  if (r.invalid) entry.invalid = r.invalid;
  if (r.callId) entry.callId = r.callId;
  out.ignored.push(entry);
}

function asArray(value: unknown): unknown[] | undefined {
  return Array.isArray(value) ? value : undefined;
}

/** The items of `list` within the POST's budget; the rest are counted as over the cap. */
function withinBudget(ctx: Ctx, list: unknown[]): unknown[] {
  const take = Math.min(ctx.left, list.length);
  ctx.left -= take;
  ctx.over += list.length - take;
  return take === list.length ? list : list.slice(0, take);
}

function parseErrors(list: unknown[] | undefined): WaCallError[] {
  if (!list) return [];
  const errors: WaCallError[] = [];
  for (const item of list.slice(0, 8)) {
    const r = callErrorSchema.safeParse(item);
    if (!r.success) continue;
    const e: WaCallError = { code: r.data.code };
    const message = r.data.message ?? r.data.title;
    if (message !== undefined) e.message = printableOrTrimmed(message);
    if (r.data.error_data?.details !== undefined) e.details = printableOrTrimmed(r.data.error_data.details);
    errors.push(e);
  }
  return errors;
}

/** The user's profile name, if WhatsApp sent a printable one; a bad one is left out with a note. */
function contactName(ctx: Ctx, contacts: unknown, waId: string, callId: string): string | undefined {
  const list = asArray(contacts);
  if (!list) return undefined;
  const parsed = list
    .slice(0, 8)
    .map((c) => contactSchema.safeParse(c))
    .flatMap((r) => (r.success ? [r.data] : []));
  const match = parsed.find((c) => c.wa_id === waId) ?? parsed[0];
  const name = match?.profile?.name;
  if (!name) return undefined;
  if (isPrintableText(name, MAX_NAME_CHARS)) return name;
  (ctx.out.notes ??= []).push({ kind: 'name-dropped', callId, reason: `profile name (${name.length} chars) has control characters or is over ${MAX_NAME_CHARS} characters` });
  return undefined;
}

// ---- calls field ---------------------------------------------------------------------------

function parseConnect(ctx: Ctx, raw: unknown, base: Omit<WaEventBase, 'timestamp'>, value: Record<string, unknown>): WaConnectEvent | Reject {
  const r = connectSchema.safeParse(raw);
  if (!r.success) return invalid('connect', r.error, raw);
  const c = r.data;
  const sdpTypeRaw = c.session?.sdp_type;
  // Direction is always sent by Meta; if a sender omits it, the SDP type tells it (UIC/BIC).
  const direction: CallDirection | undefined =
    c.direction ??
    (sdpTypeRaw === 'offer' ? 'USER_INITIATED' : sdpTypeRaw === 'answer' ? 'BUSINESS_INITIATED' : undefined);
  if (!direction) return { reason: 'connect: no direction and no session.sdp_type', callId: c.id };
  const sdpType: 'offer' | 'answer' =
    sdpTypeRaw === 'offer' || sdpTypeRaw === 'answer'
      ? sdpTypeRaw
      : direction === 'USER_INITIATED'
        ? 'offer'
        : 'answer';
  // BIC: Meta's sample duplicates the SDP in connection.webrtc.sdp; session.sdp wins.
  const sdp = c.session?.sdp || c.connection?.webrtc?.sdp;
  if (!sdp) return { reason: 'connect: no SDP in session.sdp or connection.webrtc.sdp', callId: c.id };
  const userWaId = direction === 'USER_INITIATED' ? c.from : c.to;
  if (!userWaId) return { reason: `connect: no ${direction === 'USER_INITIATED' ? 'from' : 'to'} for ${direction}`, callId: c.id };
  const ev: WaConnectEvent = {
    kind: 'connect',
    ...base,
    timestamp: c.timestamp,
    callId: c.id,
    direction,
    userWaId,
    sdpType,
    sdp,
  };
  const name = contactName(ctx, value['contacts'], userWaId, c.id);
  if (name !== undefined) ev.userName = name;
  if (c.biz_opaque_callback_data !== undefined) ev.bizOpaqueCallbackData = c.biz_opaque_callback_data;
  return ev;
}

function parseTerminate(raw: unknown, base: Omit<WaEventBase, 'timestamp'>, value: Record<string, unknown>): WaTerminateEvent | Reject {
  const r = terminateSchema.safeParse(raw);
  if (!r.success) return invalid('terminate', r.error, raw);
  const t = r.data;
  // FAILED terminates carry errors[] on the call (pion) or at value.errors (pipecat); take both.
  const own = parseErrors(t.errors);
  const errors = own.length > 0 ? own : parseErrors(asArray(value['errors']));
  const ev: WaTerminateEvent = {
    kind: 'terminate',
    ...base,
    timestamp: t.timestamp,
    callId: t.id,
    status: t.status ?? 'UNKNOWN',
    errors,
  };
  if (t.direction) ev.direction = t.direction;
  const duration = t.duration === undefined ? NaN : Number(t.duration);
  if (Number.isFinite(duration) && duration >= 0) ev.durationSec = duration;
  if (t.biz_opaque_callback_data !== undefined) ev.bizOpaqueCallbackData = t.biz_opaque_callback_data;
  return ev;
}

function parseStatus(raw: unknown, base: Omit<WaEventBase, 'timestamp'>): WaStatusEvent | Reject {
  const r = statusSchema.safeParse(raw);
  if (!r.success) return invalid('status', r.error, raw);
  const s = r.data;
  if (s.type !== undefined && s.type !== 'call') return { reason: `status of type ${JSON.stringify(s.type.slice(0, 32))}, not call` };
  const ev: WaStatusEvent = { kind: 'status', ...base, timestamp: s.timestamp, callId: s.id, status: s.status };
  if (s.biz_opaque_callback_data !== undefined) ev.bizOpaqueCallbackData = s.biz_opaque_callback_data;
  return ev;
}

function baseOf(value: Record<string, unknown>): Omit<WaEventBase, 'timestamp'> | Reject {
  const m = metadataSchema.safeParse(value['metadata']);
  if (!m.success) return { reason: `metadata: ${describeIssues(m.error)}`, invalid: 'phone-number-id' };
  const shown = m.data.display_phone_number;
  const businessNumber = shown === undefined ? '' : normaliseDisplayNumber(shown);
  if (businessNumber === undefined) return { reason: 'metadata.display_phone_number: not a phone number', invalid: 'number' };
  return { phoneNumberId: m.data.phone_number_id, businessNumber };
}

function isReject(v: object): v is Reject {
  return 'reason' in v;
}

function parseCallsChange(ctx: Ctx, value: Record<string, unknown>): void {
  const { out } = ctx;
  const field = 'calls';
  const base = baseOf(value);
  if (isReject(base)) return ignore(out, base, field);
  const calls = value['calls'];
  const statuses = value['statuses'];
  if (calls === undefined && statuses === undefined) return ignore(out, 'calls change without calls[] or statuses[]', field);
  if (calls !== undefined) {
    const list = asArray(calls);
    if (!list) ignore(out, 'value.calls is not an array', field);
    for (const raw of withinBudget(ctx, list ?? [])) {
      const head = callEventSchema.safeParse(raw);
      const event = head.success ? head.data.event : undefined;
      let result: WaEvent | Reject;
      if (event === 'connect') result = parseConnect(ctx, raw, base, value);
      else if (event === 'terminate') result = parseTerminate(raw, base, value);
      else result = { reason: event === undefined ? 'call without an event name' : `unknown call event ${JSON.stringify(event.slice(0, 32))}` };
      if (isReject(result)) ignore(out, result, field);
      else out.events.push(result);
    }
  }
  if (statuses !== undefined) {
    const list = asArray(statuses);
    if (!list) ignore(out, 'value.statuses is not an array', field);
    for (const raw of withinBudget(ctx, list ?? [])) {
      const result = parseStatus(raw, base);
      if (isReject(result)) ignore(out, result, field);
      else out.events.push(result);
    }
  }
}

// ---- messages field ------------------------------------------------------------------------

function parseMessagesChange(ctx: Ctx, value: Record<string, unknown>): void {
  const { out } = ctx;
  const field = 'messages';
  const messages = value['messages'];
  if (messages === undefined) {
    // Delivery/read statuses of ordinary messages, errors, etc.
    return ignore(out, 'messages change without messages[]', field);
  }
  const list = asArray(messages);
  if (!list) return ignore(out, 'value.messages is not an array', field);
  const base = baseOf(value);
  for (const raw of withinBudget(ctx, list)) {
    const head = messageHeadSchema.safeParse(raw);
    if (!head.success) {
      ignore(out, `message: ${describeIssues(head.error)}`, field);
      continue;
    }
    const { type, interactive } = head.data;
    if (type !== 'interactive' || interactive?.type !== 'call_permission_reply') {
      const what = type === 'interactive' ? `interactive ${JSON.stringify(interactive?.type?.slice(0, 32))}` : JSON.stringify(type?.slice(0, 32));
      ignore(out, `message of type ${what}`, field);
      continue;
    }
    if (isReject(base)) {
      ignore(out, { ...base, reason: `call_permission_reply: ${base.reason}` }, field);
      continue;
    }
    const r = permissionReplySchema.safeParse(raw);
    if (!r.success) {
      ignore(out, invalid('call_permission_reply', r.error, raw), field);
      continue;
    }
    const reply = r.data.interactive.call_permission_reply;
    const ev: WaPermissionReplyEvent = {
      kind: 'permission_reply',
      ...base,
      timestamp: r.data.timestamp,
      userWaId: r.data.from,
      response: reply.response,
      isPermanent: reply.is_permanent ?? false,
    };
    if (reply.expiration_timestamp !== undefined) ev.expiresAt = reply.expiration_timestamp;
    if (reply.response_source !== undefined) ev.responseSource = printableOrTrimmed(reply.response_source, 64);
    out.events.push(ev);
  }
}

// ---- entry point ---------------------------------------------------------------------------

function parseInto(body: unknown, ctx: Ctx): void {
  const { out } = ctx;
  const env = envelopeSchema.safeParse(body);
  if (!env.success) return ignore(out, `envelope: ${describeIssues(env.error)}`);
  if (env.data.object !== undefined && env.data.object !== 'whatsapp_business_account') {
    return ignore(out, `object ${JSON.stringify(env.data.object.slice(0, 64))} is not whatsapp_business_account`);
  }
  // Entries and changes spend the budget too (an empty change still costs a schema check), so a
  // POST of a million empty entries is bounded like one of a million calls.
  for (const rawEntry of withinBudget(ctx, env.data.entry)) {
    ctx.left += 1;
    const entry = entrySchema.safeParse(rawEntry);
    if (!entry.success) {
      ignore(out, `entry: ${describeIssues(entry.error)}`);
      continue;
    }
    for (const rawChange of withinBudget(ctx, entry.data.changes)) {
      ctx.left += 1;
      const change = changeSchema.safeParse(rawChange);
      if (!change.success) {
        const field = (rawChange as { field?: unknown } | null)?.field;
        ignore(out, `change: ${describeIssues(change.error)}`, typeof field === 'string' ? field.slice(0, 64) : undefined);
        continue;
      }
      const { field, value } = change.data;
      if (field === 'calls') parseCallsChange(ctx, value);
      else if (field === 'messages') parseMessagesChange(ctx, value);
      else ignore(out, `field ${JSON.stringify(field.slice(0, 64))} is not handled`, field.slice(0, 64));
    }
  }
}

export interface ParseOptions {
  /** Items (calls[], statuses[], messages[], entries, changes) taken from one POST; default 50 (about 2.5 ms of parsing at most). */
  maxEvents?: number;
}

/** Parse a webhook body (already JSON-decoded). Never throws. */
export function parseWebhook(body: unknown, opts: ParseOptions = {}): ParsedWebhook {
  const out: ParsedWebhook = { events: [], ignored: [] };
  const ctx: Ctx = { out, left: opts.maxEvents ?? DEFAULT_MAX_EVENTS_PER_POST, over: 0 };
  try {
    parseInto(body, ctx);
  } catch (err) {
    // Defensive: schemas should make this unreachable (e.g. a hostile getter or a Proxy).
    out.ignored.push({ reason: `parser error: ${err instanceof Error ? printableOrTrimmed(err.message) : 'unknown'}` });
  }
  if (ctx.over > 0) out.ignored.push({ reason: `${ctx.over} items over the cap of ${opts.maxEvents ?? DEFAULT_MAX_EVENTS_PER_POST} per POST`, overCap: ctx.over });
  return out;
}

/**
 * A dedupe key: equal for redeliveries of the same event. Connect and terminate are once per
 * call; statuses once per (call, status); permission replies once per (user, time, response).
 */
export function eventKey(ev: WaEvent): string {
  switch (ev.kind) {
    case 'connect':
    case 'terminate':
      return `${ev.kind}:${ev.callId}`;
    case 'status':
      return `status:${ev.callId}:${ev.status}`;
    case 'permission_reply':
      return `permission_reply:${ev.phoneNumberId}:${ev.userWaId}:${ev.timestamp}:${ev.response}`;
  }
}
