/**
 * WhatsApp calling error codes, as listed on Meta's calling troubleshooting page (TS) and
 * summarised in docs/whatsapp-calling-api.md section 4. The one table of them: it labels Graph
 * API errors and terminate-webhook errors in logs, gives the SIP final response an agent's
 * phone gets for each (bridge/failure-map.ts), and names the codes the simulator answers with.
 *
 * 138008, 138010, 138011 and 138016 are undefined by Meta and deliberately absent.
 */

/** What an error is about, for routing it to the right handling. */
export type WaErrorCategory =
  | 'parameter' // bad request, including SDP validation (100)
  | 'permission' // call permission missing, request limits, permission already granted
  | 'limit' // rate, concurrency and per-pair limits
  | 'media' // ICE/DTLS/relay setup and media timeouts
  | 'config' // calling not enabled, SIP mode, eligibility, payment
  | 'recipient' // the user cannot be called
  | 'transient'; // a WhatsApp-side connection error worth a later retry by the caller

export interface WaErrorInfo {
  code: number;
  description: string;
  category: WaErrorCategory;
  /** HTTP status Meta is known to use with this code, when documented. */
  httpStatus?: number;
  /**
   * The SIP final response an agent's phone gets when an outbound call fails with this code
   * (a PBX shows 403/404/408/480/486/503 sensibly); `text` goes in the Warning header.
   */
  sip?: WaErrorSip;
}

export interface WaErrorSip {
  status: number;
  reason: string;
  text: string;
  /** Short, stable label for logs and metrics. */
  label: string;
}

const forbidden = (text: string, label: string): WaErrorSip => ({ status: 403, reason: 'Forbidden', text, label });
const unavailable = (text: string, label: string): WaErrorSip => ({ status: 503, reason: 'Service Unavailable', text, label });
const CALLING_DISABLED = forbidden('calling not enabled for this business number', 'wa-calling-disabled');
const RATE_LIMIT = unavailable('WhatsApp call rate limit reached', 'wa-rate-limit');
const MEDIA_TIMEOUT: WaErrorSip = { status: 480, reason: 'Temporarily Unavailable', text: 'WhatsApp media failed', label: 'wa-media-timeout' };

/** Codes the bridge and the simulator act on by name. */
export const WA_ERROR = {
  invalidParameter: 100,
  invalidToken: 190,
  noPermission: 138006,
} as const;

const table: readonly WaErrorInfo[] = [
  { code: WA_ERROR.invalidParameter, description: 'Invalid parameter (including SDP validation); details in error_data', category: 'parameter', httpStatus: 400 },
  { code: WA_ERROR.invalidToken, description: 'Invalid OAuth access token', category: 'config', httpStatus: 401, sip: unavailable('bridge cannot authenticate to WhatsApp', 'wa-auth') },
  { code: 613, description: 'Call-permission API rate limit', category: 'limit', httpStatus: 429, sip: RATE_LIMIT },
  { code: 131009, description: 'voice_call interactive message not supported', category: 'parameter' },
  { code: 131044, description: 'No valid payment method', category: 'config' },
  { code: 131055, description: 'Graph calling not allowed on a SIP-enabled number', category: 'config', sip: CALLING_DISABLED },
  { code: 138000, description: 'Calling not enabled', category: 'config', sip: CALLING_DISABLED },
  { code: 138001, description: 'Receiver uncallable', category: 'recipient', sip: { status: 404, reason: 'Not Found', text: 'this number cannot receive WhatsApp calls', label: 'wa-uncallable' } },
  { code: 138002, description: 'Concurrent-call limit reached', category: 'limit', sip: unavailable('too many concurrent WhatsApp calls', 'wa-concurrency-limit') },
  { code: 138003, description: 'Duplicate call', category: 'limit', sip: { status: 486, reason: 'Busy Here', text: 'a call to this user is already in progress', label: 'wa-duplicate-call' } },
  { code: 138004, description: 'Connection error', category: 'transient', httpStatus: 500 },
  { code: 138005, description: 'Call rate limit (new calls per 24 h per number)', category: 'limit', sip: RATE_LIMIT },
  { code: WA_ERROR.noPermission, description: 'No approved call permission', category: 'permission', sip: forbidden('no WhatsApp call permission from this user', 'wa-no-permission') },
  { code: 138007, description: 'Connect timeout: SDP not applied in time', category: 'media', sip: { status: 408, reason: 'Request Timeout', text: 'WhatsApp connect timeout', label: 'wa-connect-timeout' } },
  { code: 138009, description: 'Call-permission request limit reached', category: 'permission' },
  { code: 138012, description: '100 connected business-initiated calls per 24 h reached for this user', category: 'limit', sip: forbidden('daily limit of calls to this user reached', 'wa-user-daily-limit') },
  { code: 138013, description: 'Business-initiated calling unavailable in this country', category: 'config', sip: forbidden('business-initiated calls unavailable in this country', 'wa-country') },
  { code: 138014, description: 'Calling temporarily disabled for low quality', category: 'config', sip: CALLING_DISABLED },
  { code: 138015, description: 'Cannot enable calling: messaging limit too low', category: 'config', sip: CALLING_DISABLED },
  { code: 138017, description: 'Permanent call permission already exists', category: 'permission' },
  { code: 138018, description: 'Technical prerequisites not met', category: 'config', sip: CALLING_DISABLED },
  { code: 138019, description: 'Call setup failed', category: 'media' },
  { code: 138020, description: 'Relay connection failed', category: 'media' },
  { code: 138021, description: 'Media receive timeout', category: 'media', sip: MEDIA_TIMEOUT },
  { code: 138022, description: 'Media transmit timeout', category: 'media', sip: MEDIA_TIMEOUT },
  { code: 138023, description: 'Call accepted but no media', category: 'media', sip: MEDIA_TIMEOUT },
];

/** Every known code, keyed by number. Frozen. */
export const WA_ERROR_CODES: ReadonlyMap<number, Readonly<WaErrorInfo>> = new Map(
  table.map((e) => [e.code, Object.freeze({ ...e })] as const),
);

/** The table entry for a code, or undefined for a code Meta does not document. */
export function describeWaError(code: number): Readonly<WaErrorInfo> | undefined {
  return WA_ERROR_CODES.get(code);
}

/** A short label for logs: `138021 Media receive timeout (media)` or `999 unknown`. */
export function waErrorLabel(code: number): string {
  const info = WA_ERROR_CODES.get(code);
  return info ? `${code} ${info.description} (${info.category})` : `${code} unknown`;
}

export function isPermissionError(code: number): boolean {
  return WA_ERROR_CODES.get(code)?.category === 'permission';
}

export function isLimitError(code: number): boolean {
  return WA_ERROR_CODES.get(code)?.category === 'limit';
}

export function isMediaError(code: number): boolean {
  return WA_ERROR_CODES.get(code)?.category === 'media';
}

/** Graph error subcode (with code 100) for an SDP Meta refused (`error_data.details` says why). */
export const SDP_VALIDATION_SUBCODE = 2494010;

/** A WhatsApp API failure with no Graph error at all (no answer, connection refused). */
export const WA_UNREACHABLE_SIP: WaErrorSip = unavailable('WhatsApp API unreachable', 'wa-unreachable');
