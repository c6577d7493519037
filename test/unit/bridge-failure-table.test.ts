import { describe, expect, it } from 'vitest';
import { planOutboundTeardown, planTeardown, sipFinalHeaders, sipReasonHeader, sipRefusal, waErrorToSip } from '../../src/bridge/failure-map.js';
import { WA_ERROR_CODES } from '../../src/whatsapp/errors.js';

/** The one failure table: WhatsApp codes, SIP refusals and the Reason a BYE/CANCEL carries. */
describe('failure table', () => {
  it('every WhatsApp code with a SIP mapping in the error table gives that response, with the code in the Warning', () => {
    const mapped = [...WA_ERROR_CODES.values()].filter((e) => e.sip);
    expect(mapped.length).toBeGreaterThan(15);
    for (const e of mapped) {
      const m = waErrorToSip(e.code);
      expect(m.final.status, String(e.code)).toBe(e.sip!.status);
      expect(m.label).toBe(e.sip!.label);
      expect(m.final.warning).toBe(`WhatsApp ${e.code}: ${e.sip!.text}`);
    }
    expect(waErrorToSip(138006).final).toMatchObject({ status: 403, reason: 'Forbidden' });
    expect(waErrorToSip(138003).final.status).toBe(486);
    expect(waErrorToSip(0)).toMatchObject({ final: { status: 503 }, label: 'wa-unreachable' });
    expect(waErrorToSip(100, 2494010)).toMatchObject({ final: { status: 488 }, label: 'wa-sdp-refused' });
    expect(waErrorToSip(100)).toMatchObject({ final: { status: 500 }, label: 'wa-invalid-parameter' });
    expect(waErrorToSip(138019)).toMatchObject({ final: { status: 480 }, label: 'wa-failed' });
  });

  it.each([
    ['outbound-disabled', 403, undefined],
    ['not-allowed', 403, undefined],
    ['bad-number', 484, undefined],
    ['draining', 503, '30'],
    ['over-capacity', 503, '5'],
    ['setup-rate', 503, '1'],
    ['no-business-number', 503, undefined],
  ] as const)('refusal %s: %i, Warning and Reason name the cause, Retry-After %s', (kind, status, retryAfter) => {
    const f = sipRefusal(kind);
    expect(f.status).toBe(status);
    const h = sipFinalHeaders(f);
    expect(h.Warning).toMatch(/^399 wa-sip-bridge "[^"]+"$/);
    expect(h.Reason).toBe(`SIP;cause=${status};text="${f.warning}"`);
    expect(h['Retry-After']).toBe(retryAfter);
  });

  it('a refusal detail with quotes cannot break the Warning header', () => {
    // Escaped as an RFC 3261 quoted-string (quoted-pair), so the header stays one quoted string.
    expect(sipFinalHeaders(sipRefusal('bad-number', 'bad "x\\" number')).Warning).toBe('399 wa-sip-bridge "bad \\"x\\\\\\" number"');
    expect(sipFinalHeaders(sipRefusal('bad-number', 'bad\r\nAlert-Info: x')).Warning).not.toMatch(/[\r\n]/);
  });

  it('BYE/CANCEL Reason: Q.850 16 for a hang-up, 102 for the maximum duration, 41 for failures, label as text', () => {
    expect(sipReasonHeader('caller-hung-up')).toBe('Q.850;cause=16;text="caller-hung-up"');
    expect(sipReasonHeader('max-duration')).toBe('Q.850;cause=102;text="max-duration"');
    expect(sipReasonHeader('whatsapp-media-timeout')).toBe('Q.850;cause=41;text="whatsapp-media-timeout"');
    expect(sipReasonHeader('ring-timeout')).toBe('Q.850;cause=19;text="ring-timeout"');
  });

  it('a media failure or the maximum duration ends both legs of an active call, each labelled', () => {
    const active = { whatsappAccepted: true, sip: 'confirmed' } as const;
    expect(planTeardown({ kind: 'media-failure', failure: { kind: 'webrtc-failed', detail: 'DTLS closed' } }, active)).toEqual({ whatsapp: 'terminate', sip: 'bye', label: 'whatsapp-webrtc-failed' });
    expect(planTeardown({ kind: 'media-failure', failure: { kind: 'engine-dead', detail: 'x' } }, { whatsappAccepted: false, sip: 'inviting' })).toEqual({ whatsapp: 'reject', sip: 'cancel', label: 'media-engine-dead' });
    expect(planTeardown({ kind: 'max-duration' }, active)).toEqual({ whatsapp: 'terminate', sip: 'bye', label: 'max-duration' });
    expect(planOutboundTeardown({ kind: 'media-failure', failure: { kind: 'whatsapp-media-timeout', detail: 'no RTP for 20 s' } }, { whatsappCallStarted: true, sip: 'proceeding' })).toEqual({
      whatsapp: 'terminate',
      sip: { kind: 'final', final: { status: 480, reason: 'Temporarily Unavailable', warning: 'media: no RTP for 20 s' } },
      label: 'whatsapp-media-timeout',
    });
    expect(planOutboundTeardown({ kind: 'max-duration' }, { whatsappCallStarted: true, sip: 'confirmed' })).toEqual({ whatsapp: 'terminate', sip: { kind: 'bye' }, label: 'max-duration' });
  });
});
