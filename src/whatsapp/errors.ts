/**
 * WhatsApp calling error codes, as listed on Meta's calling troubleshooting page (TS) and
 * summarised in docs/whatsapp-calling-api.md section 4. Used to label Graph API errors and
 * terminate-webhook errors in logs, and later to map a WhatsApp failure to a SIP response.
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
}

const table: readonly WaErrorInfo[] = [
  { code: 100, description: 'Invalid parameter (including SDP validation); details in error_data', category: 'parameter', httpStatus: 400 },
  { code: 190, description: 'Invalid OAuth access token', category: 'config', httpStatus: 401 },
  { code: 613, description: 'Call-permission API rate limit', category: 'limit', httpStatus: 429 },
  { code: 131009, description: 'voice_call interactive message not supported', category: 'parameter' },
  { code: 131044, description: 'No valid payment method', category: 'config' },
  { code: 131055, description: 'Graph calling not allowed on a SIP-enabled number', category: 'config' },
  { code: 138000, description: 'Calling not enabled', category: 'config' },
  { code: 138001, description: 'Receiver uncallable', category: 'recipient' },
  { code: 138002, description: 'Concurrent-call limit reached', category: 'limit' },
  { code: 138003, description: 'Duplicate call', category: 'limit' },
  { code: 138004, description: 'Connection error', category: 'transient', httpStatus: 500 },
  { code: 138005, description: 'Call rate limit (new calls per 24 h per number)', category: 'limit' },
  { code: 138006, description: 'No approved call permission', category: 'permission' },
  { code: 138007, description: 'Connect timeout: SDP not applied in time', category: 'media' },
  { code: 138009, description: 'Call-permission request limit reached', category: 'permission' },
  { code: 138012, description: '100 connected business-initiated calls per 24 h reached for this user', category: 'limit' },
  { code: 138013, description: 'Business-initiated calling unavailable in this country', category: 'config' },
  { code: 138014, description: 'Calling temporarily disabled for low quality', category: 'config' },
  { code: 138015, description: 'Cannot enable calling: messaging limit too low', category: 'config' },
  { code: 138017, description: 'Permanent call permission already exists', category: 'permission' },
  { code: 138018, description: 'Technical prerequisites not met', category: 'config' },
  { code: 138019, description: 'Call setup failed', category: 'media' },
  { code: 138020, description: 'Relay connection failed', category: 'media' },
  { code: 138021, description: 'Media receive timeout', category: 'media' },
  { code: 138022, description: 'Media transmit timeout', category: 'media' },
  { code: 138023, description: 'Call accepted but no media', category: 'media' },
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

/** Graph error subcode for an SDP Meta refused (`error_data.details` says why). */
export const SDP_VALIDATION_SUBCODE = 2494010;
