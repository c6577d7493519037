/**
 * The zod schemas of WhatsApp's webhook payloads (./webhook.ts parses with them). Permissive on
 * extra fields (zod strips them), strict on every field the bridge relies on: the patterns of
 * ./patterns.ts, so nothing hostile travels on toward SIP.
 */
import { z } from 'zod';
import { GRAPH_ID, MAX_OPAQUE_CHARS, MAX_SDP_CHARS, STATUS_WORD, WA_CALL_ID, WA_NUMBER, isPrintableText } from './patterns.js';

/** Seconds since the epoch; Meta sends strings ("1764000000"), some senders numbers. */
const epochSeconds = z
  .union([z.number(), z.string().regex(/^\s*\d+(\.\d+)?\s*$/)])
  .transform((v) => Number(v))
  .refine((n) => Number.isFinite(n) && n >= 0, 'not a timestamp');

const waCallId = z.string().regex(WA_CALL_ID, 'not a WhatsApp call id (wacid.<base64>)');
const waNumber = z.string().regex(WA_NUMBER, 'not a number (digits only)');
const sdpText = z.string().max(MAX_SDP_CHARS, `SDP over ${MAX_SDP_CHARS} characters`);
const opaque = z.string().max(MAX_OPAQUE_CHARS).refine((s) => s === '' || isPrintableText(s, MAX_OPAQUE_CHARS), 'control characters');
const statusWord = z.string().regex(STATUS_WORD, 'not a status word');

/** An array, checked without visiting (z.array copies every element: O(n) on a huge one). */
const anyArray = z.custom<unknown[]>((v) => Array.isArray(v), 'expected array');

export const envelopeSchema = z.object({
  object: z.string().optional(),
  entry: anyArray,
});

export const entrySchema = z.object({
  id: z.string().optional(),
  changes: anyArray,
});

export const changeSchema = z.object({
  field: z.string(),
  value: z.record(z.string(), z.unknown()),
});

export const metadataSchema = z.object({
  phone_number_id: z.string().regex(GRAPH_ID, 'not a Graph id (digits)'),
  display_phone_number: z.string().optional(),
});

export const contactSchema = z.object({
  wa_id: z.string().optional(),
  profile: z.object({ name: z.string().optional() }).optional(),
});

const directionSchema = z.enum(['USER_INITIATED', 'BUSINESS_INITIATED']);

export const callErrorSchema = z.object({
  code: z.number().int(),
  message: z.string().optional(),
  title: z.string().optional(),
  error_data: z.object({ details: z.string().optional() }).optional(),
});

export const callEventSchema = z.object({ event: z.string() });

export const connectSchema = z.object({
  id: waCallId,
  from: waNumber.optional(),
  to: waNumber.optional(),
  direction: directionSchema.optional(),
  timestamp: epochSeconds,
  biz_opaque_callback_data: opaque.optional(),
  session: z
    .object({
      sdp_type: z.string().optional(),
      sdp: sdpText.optional(),
    })
    .optional(),
  connection: z
    .object({ webrtc: z.object({ sdp: sdpText.optional() }).optional() })
    .optional(),
});

export const terminateSchema = z.object({
  id: waCallId,
  direction: directionSchema.optional(),
  timestamp: epochSeconds,
  status: statusWord.optional(),
  duration: z.union([z.number(), z.string().max(32)]).optional(),
  biz_opaque_callback_data: opaque.optional(),
  errors: z.array(z.unknown()).optional(),
});

export const statusSchema = z.object({
  id: waCallId,
  type: z.string().optional(),
  status: statusWord,
  timestamp: epochSeconds,
  biz_opaque_callback_data: opaque.optional(),
});

export const messageHeadSchema = z.object({
  type: z.string().optional(),
  interactive: z.object({ type: z.string().optional() }).optional(),
});

export const permissionReplySchema = z.object({
  from: waNumber,
  timestamp: epochSeconds,
  interactive: z.object({
    type: z.literal('call_permission_reply'),
    call_permission_reply: z.object({
      response: z.enum(['accept', 'reject']),
      is_permanent: z.boolean().optional(),
      expiration_timestamp: epochSeconds.optional(),
      response_source: z.string().max(64).optional(),
    }),
  }),
});
