/**
 * Size limits for SDP from the network (the PBX's, WhatsApp's), checked before any parsing:
 * sdp-transform tries every attribute grammar on every line, so parse time grows with the
 * lines and their length, and a hostile SDP of thousands of lines (or one line of megabytes)
 * would cost milliseconds to seconds of the event loop that carries every call's audio. Real
 * SDP is far below these: WhatsApp's offer is ~30 lines of < 200 characters, a PBX's < 40.
 * Measured with bench/fuzz-sdp.ts.
 */
export const MAX_SDP_BYTES = 16 * 1024;
export const MAX_SDP_LINES = 200;
export const MAX_SDP_LINE = 1024;

/** Why an SDP is too big to parse, or undefined. */
export function sdpSizeProblem(sdp: string): string | undefined {
  if (typeof sdp !== 'string') return 'SDP is not text';
  if (sdp.length > MAX_SDP_BYTES) return `SDP of ${sdp.length} characters exceeds ${MAX_SDP_BYTES}`;
  let lines = 0;
  let start = 0;
  for (let i = 0; i <= sdp.length; i++) {
    if (i === sdp.length || sdp.charCodeAt(i) === 10) {
      if (i - start > MAX_SDP_LINE) return `SDP line ${lines + 1} of ${i - start} characters exceeds ${MAX_SDP_LINE}`;
      if (++lines > MAX_SDP_LINES) return `SDP of more than ${MAX_SDP_LINES} lines`;
      start = i + 1;
    }
  }
  return undefined;
}

/** Throw an Error when the SDP is too big to parse. */
export function assertSdpSize(sdp: string): void {
  const p = sdpSizeProblem(sdp);
  if (p) throw new Error(p);
}
