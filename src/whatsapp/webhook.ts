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
 * relies on. Anything that is not one of our events becomes an `ignored` entry with a reason.
 * `parseWebhook` never throws, whatever it is given.
 *
 * Parsing is pure and deterministic: the same payload delivered twice (at-least-once delivery)
 * yields equal events, and every event stands alone (a terminate parses the same whether or not
 * its connect was seen), so ordering and dedupe are the caller's business; see `eventKey`.
 */
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
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

// ---- schemas -------------------------------------------------------------------------------

/** Seconds since the epoch; Meta sends strings ("1764000000"), some senders numbers. */
const epochSeconds = z
  .union([z.number(), z.string().regex(/^\s*\d+(\.\d+)?\s*$/)])
  .transform((v) => Number(v))
  .refine((n) => Number.isFinite(n) && n >= 0, 'not a timestamp');

const nonEmpty = z.string().min(1);

const envelopeSchema = z.object({
  object: z.string().optional(),
  entry: z.array(z.unknown()),
});

const entrySchema = z.object({
  id: z.string().optional(),
  changes: z.array(z.unknown()),
});

const changeSchema = z.object({
  field: z.string(),
  value: z.record(z.string(), z.unknown()),
});

const metadataSchema = z.object({
  phone_number_id: nonEmpty,
  display_phone_number: z.string().optional(),
});

const contactSchema = z.object({
  wa_id: z.string().optional(),
  profile: z.object({ name: z.string().optional() }).optional(),
});

const directionSchema = z.enum(['USER_INITIATED', 'BUSINESS_INITIATED']);

const callErrorSchema = z.object({
  code: z.number().int(),
  message: z.string().optional(),
  title: z.string().optional(),
  error_data: z.object({ details: z.string().optional() }).optional(),
});

const callEventSchema = z.object({ event: z.string() });

const connectSchema = z.object({
  id: nonEmpty,
  from: z.string().optional(),
  to: z.string().optional(),
  direction: directionSchema.optional(),
  timestamp: epochSeconds,
  biz_opaque_callback_data: z.string().optional(),
  session: z
    .object({
      sdp_type: z.string().optional(),
      sdp: z.string().optional(),
    })
    .optional(),
  connection: z
    .object({ webrtc: z.object({ sdp: z.string().optional() }).optional() })
    .optional(),
});

const terminateSchema = z.object({
  id: nonEmpty,
  direction: directionSchema.optional(),
  timestamp: epochSeconds,
  status: z.string().optional(),
  duration: z.union([z.number(), z.string()]).optional(),
  biz_opaque_callback_data: z.string().optional(),
  errors: z.array(z.unknown()).optional(),
});

const statusSchema = z.object({
  id: nonEmpty,
  type: z.string().optional(),
  status: nonEmpty,
  timestamp: epochSeconds,
  biz_opaque_callback_data: z.string().optional(),
});

const messageHeadSchema = z.object({
  type: z.string().optional(),
  interactive: z.object({ type: z.string().optional() }).optional(),
});

const permissionReplySchema = z.object({
  from: nonEmpty,
  timestamp: epochSeconds,
  interactive: z.object({
    type: z.literal('call_permission_reply'),
    call_permission_reply: z.object({
      response: z.enum(['accept', 'reject']),
      is_permanent: z.boolean().optional(),
      expiration_timestamp: epochSeconds.optional(),
      response_source: z.string().optional(),
    }),
  }),
});

// ---- helpers -------------------------------------------------------------------------------

function describeIssues(err: z.ZodError): string {
  const first = err.issues[0];
  if (!first) return 'invalid';
  const path = first.path.length ? first.path.map(String).join('.') : '(root)';
  const more = err.issues.length > 1 ? ` (+${err.issues.length - 1} more)` : '';
  return `${path}: ${first.message}${more}`;
}

function ignore(out: ParsedWebhook, reason: string, field?: string): void {
  const entry: WaIgnored = field === undefined ? { reason } : { reason, field };
  out.ignored.push(entry);
}

function asArray(value: unknown): unknown[] | undefined {
  return Array.isArray(value) ? value : undefined;
}

function parseErrors(list: unknown[] | undefined): WaCallError[] {
  if (!list) return [];
  const errors: WaCallError[] = [];
  for (const item of list) {
    const r = callErrorSchema.safeParse(item);
    if (!r.success) continue;
    const e: WaCallError = { code: r.data.code };
    const message = r.data.message ?? r.data.title;
    if (message !== undefined) e.message = message;
    if (r.data.error_data?.details !== undefined) e.details = r.data.error_data.details;
    errors.push(e);
  }
  return errors;
}

function contactName(contacts: unknown, waId: string): string | undefined {
  const list = asArray(contacts);
  if (!list) return undefined;
  const parsed = list
    .map((c) => contactSchema.safeParse(c))
    .flatMap((r) => (r.success ? [r.data] : []));
  const match = parsed.find((c) => c.wa_id === waId) ?? parsed[0];
  const name = match?.profile?.name;
  return name ? name : undefined;
}

// ---- calls field ---------------------------------------------------------------------------

function parseConnect(raw: unknown, base: Omit<WaEventBase, 'timestamp'>, value: Record<string, unknown>): WaConnectEvent | string {
  const r = connectSchema.safeParse(raw);
  if (!r.success) return `connect: ${describeIssues(r.error)}`;
  const c = r.data;
  const sdpTypeRaw = c.session?.sdp_type;
  // Direction is always sent by Meta; if a sender omits it, the SDP type tells it (UIC/BIC).
  const direction: CallDirection | undefined =
    c.direction ??
    (sdpTypeRaw === 'offer' ? 'USER_INITIATED' : sdpTypeRaw === 'answer' ? 'BUSINESS_INITIATED' : undefined);
  if (!direction) return 'connect: no direction and no session.sdp_type';
  const sdpType: 'offer' | 'answer' =
    sdpTypeRaw === 'offer' || sdpTypeRaw === 'answer'
      ? sdpTypeRaw
      : direction === 'USER_INITIATED'
        ? 'offer'
        : 'answer';
  // BIC: Meta's sample duplicates the SDP in connection.webrtc.sdp; session.sdp wins.
  const sdp = c.session?.sdp || c.connection?.webrtc?.sdp;
  if (!sdp) return 'connect: no SDP in session.sdp or connection.webrtc.sdp';
  const userWaId = direction === 'USER_INITIATED' ? c.from : c.to;
  if (!userWaId) return `connect: no ${direction === 'USER_INITIATED' ? 'from' : 'to'} for ${direction}`;
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
  const name = contactName(value['contacts'], userWaId);
  if (name !== undefined) ev.userName = name;
  if (c.biz_opaque_callback_data !== undefined) ev.bizOpaqueCallbackData = c.biz_opaque_callback_data;
  return ev;
}

function parseTerminate(raw: unknown, base: Omit<WaEventBase, 'timestamp'>, value: Record<string, unknown>): WaTerminateEvent | string {
  const r = terminateSchema.safeParse(raw);
  if (!r.success) return `terminate: ${describeIssues(r.error)}`;
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

function parseStatus(raw: unknown, base: Omit<WaEventBase, 'timestamp'>): WaStatusEvent | string {
  const r = statusSchema.safeParse(raw);
  if (!r.success) return `status: ${describeIssues(r.error)}`;
  const s = r.data;
  if (s.type !== undefined && s.type !== 'call') return `status of type ${JSON.stringify(s.type)}, not call`;
  const ev: WaStatusEvent = { kind: 'status', ...base, timestamp: s.timestamp, callId: s.id, status: s.status };
  if (s.biz_opaque_callback_data !== undefined) ev.bizOpaqueCallbackData = s.biz_opaque_callback_data;
  return ev;
}

function baseOf(value: Record<string, unknown>): Omit<WaEventBase, 'timestamp'> | string {
  const m = metadataSchema.safeParse(value['metadata']);
  if (!m.success) return `metadata: ${describeIssues(m.error)}`;
  return { phoneNumberId: m.data.phone_number_id, businessNumber: m.data.display_phone_number ?? '' };
}

function parseCallsChange(value: Record<string, unknown>, out: ParsedWebhook): void {
  const field = 'calls';
  const base = baseOf(value);
  if (typeof base === 'string') return ignore(out, base, field);
  const calls = value['calls'];
  const statuses = value['statuses'];
  if (calls === undefined && statuses === undefined) return ignore(out, 'calls change without calls[] or statuses[]', field);
  if (calls !== undefined) {
    const list = asArray(calls);
    if (!list) ignore(out, 'value.calls is not an array', field);
    for (const raw of list ?? []) {
      const head = callEventSchema.safeParse(raw);
      const event = head.success ? head.data.event : undefined;
      let result: WaEvent | string;
      if (event === 'connect') result = parseConnect(raw, base, value);
      else if (event === 'terminate') result = parseTerminate(raw, base, value);
      else result = event === undefined ? 'call without an event name' : `unknown call event ${JSON.stringify(event)}`;
      if (typeof result === 'string') ignore(out, result, field);
      else out.events.push(result);
    }
  }
  if (statuses !== undefined) {
    const list = asArray(statuses);
    if (!list) ignore(out, 'value.statuses is not an array', field);
    for (const raw of list ?? []) {
      const result = parseStatus(raw, base);
      if (typeof result === 'string') ignore(out, result, field);
      else out.events.push(result);
    }
  }
}

// ---- messages field ------------------------------------------------------------------------

function parseMessagesChange(value: Record<string, unknown>, out: ParsedWebhook): void {
  const field = 'messages';
  const messages = value['messages'];
  if (messages === undefined) {
    // Delivery/read statuses of ordinary messages, errors, etc.
    return ignore(out, 'messages change without messages[]', field);
  }
  const list = asArray(messages);
  if (!list) return ignore(out, 'value.messages is not an array', field);
  const base = baseOf(value);
  for (const raw of list) {
    const head = messageHeadSchema.safeParse(raw);
    if (!head.success) {
      ignore(out, `message: ${describeIssues(head.error)}`, field);
      continue;
    }
    const { type, interactive } = head.data;
    if (type !== 'interactive' || interactive?.type !== 'call_permission_reply') {
      const what = type === 'interactive' ? `interactive ${JSON.stringify(interactive?.type)}` : JSON.stringify(type);
      ignore(out, `message of type ${what}`, field);
      continue;
    }
    if (typeof base === 'string') {
      ignore(out, `call_permission_reply: ${base}`, field);
      continue;
    }
    const r = permissionReplySchema.safeParse(raw);
    if (!r.success) {
      ignore(out, `call_permission_reply: ${describeIssues(r.error)}`, field);
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
    if (reply.response_source !== undefined) ev.responseSource = reply.response_source;
    out.events.push(ev);
  }
}

// ---- entry point ---------------------------------------------------------------------------

function parseInto(body: unknown, out: ParsedWebhook): void {
  const env = envelopeSchema.safeParse(body);
  if (!env.success) return ignore(out, `envelope: ${describeIssues(env.error)}`);
  if (env.data.object !== undefined && env.data.object !== 'whatsapp_business_account') {
    return ignore(out, `object ${JSON.stringify(env.data.object)} is not whatsapp_business_account`);
  }
  for (const rawEntry of env.data.entry) {
    const entry = entrySchema.safeParse(rawEntry);
    if (!entry.success) {
      ignore(out, `entry: ${describeIssues(entry.error)}`);
      continue;
    }
    for (const rawChange of entry.data.changes) {
      const change = changeSchema.safeParse(rawChange);
      if (!change.success) {
        const field = (rawChange as { field?: unknown } | null)?.field;
        ignore(out, `change: ${describeIssues(change.error)}`, typeof field === 'string' ? field : undefined);
        continue;
      }
      const { field, value } = change.data;
      if (field === 'calls') parseCallsChange(value, out);
      else if (field === 'messages') parseMessagesChange(value, out);
      else ignore(out, `field ${JSON.stringify(field)} is not handled`, field);
    }
  }
}

/** Parse a webhook body (already JSON-decoded). Never throws. */
export function parseWebhook(body: unknown): ParsedWebhook {
  const out: ParsedWebhook = { events: [], ignored: [] };
  try {
    parseInto(body, out);
  } catch (err) {
    // Defensive: schemas should make this unreachable (e.g. a hostile getter or a Proxy).
    out.ignored.push({ reason: `parser error: ${err instanceof Error ? err.message : String(err)}` });
  }
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

function safeEqualString(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

function pick(query: unknown, key: 'mode' | 'verify_token' | 'challenge'): string | undefined {
  if (typeof query !== 'object' || query === null) return undefined;
  const q = query as Record<string, unknown>;
  const flat = q[`hub.${key}`];
  if (typeof flat === 'string') return flat;
  const nested = q['hub'];
  if (typeof nested === 'object' && nested !== null) {
    const v = (nested as Record<string, unknown>)[key];
    if (typeof v === 'string') return v;
  }
  return undefined;
}

/**
 * The GET subscription handshake: when `hub.mode=subscribe` and `hub.verify_token` equals
 * `verifyToken`, returns `hub.challenge` (to echo with 200); otherwise undefined (answer 403).
 * Accepts flat (`{"hub.mode": …}`) and nested (`{hub:{mode}}`) query objects.
 */
export function verifyChallenge(query: unknown, verifyToken: string): string | undefined {
  if (!verifyToken) return undefined;
  const mode = pick(query, 'mode');
  const token = pick(query, 'verify_token');
  const challenge = pick(query, 'challenge');
  if (mode !== 'subscribe' || token === undefined || challenge === undefined) return undefined;
  return safeEqualString(token, verifyToken) ? challenge : undefined;
}
