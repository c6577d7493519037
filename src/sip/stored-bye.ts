/**
 * BYE for a dialog this process did not set up: a dead cluster instance's call, from the dialog
 * state it kept in Redis. Built as the dialog itself would (RFC 3261 section 12.2.1.1), with a
 * CSeq well above the last one stored (the dead instance may have sent requests since).
 */
import type { SipCore } from './core.js';
import type { LibEndpoint, TransportName } from './lib.js';
import type * as sip from 'sip';
import type { StoredDialog } from './types.js';

const CSEQ_MARGIN = 100;

export function sendStoredBye(core: SipCore, endpoints: ReadonlyMap<TransportName, LibEndpoint>, d: StoredDialog, reason?: string, timeoutMs = 32_000): Promise<number | undefined> {
  const fallback = endpoints.get(d.transport) ?? [...endpoints.values()][0];
  const ep = core.endpointFor(d.remoteTarget, d.routeSet, fallback);
  const rq: sip.Message = {
    method: 'BYE',
    uri: d.remoteTarget,
    headers: {
      via: [],
      to: d.remoteHeader,
      from: d.localHeader,
      'call-id': d.callId,
      cseq: { seq: d.localSeq + CSEQ_MARGIN, method: 'BYE' },
      'max-forwards': '70',
      route: d.routeSet.map((uri) => ({ uri })),
      'user-agent': core.userAgent,
      ...(reason ? { reason } : {}),
    },
    content: '',
  };
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    timer.unref();
    core.request(ep, rq, (rs) => {
      if ((rs.status ?? 0) < 200) return;
      clearTimeout(timer);
      core.logger.info({ sipCallId: d.callId, status: rs.status }, 'sip: BYE for a stored dialog answered');
      resolve(rs.status);
    });
  });
}
