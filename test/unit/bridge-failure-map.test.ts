import { describe, expect, it } from 'vitest';
import { planTeardown, pbxFinalLabel, type EndCause, type LegStates } from '../../src/bridge/failure-map.js';
import { GraphApiError } from '../../src/whatsapp/types.js';

const inviting: LegStates = { whatsappAccepted: false, sip: 'inviting' };
const confirmedNotAccepted: LegStates = { whatsappAccepted: false, sip: 'confirmed' };
const active: LegStates = { whatsappAccepted: true, sip: 'confirmed' };
const nothing: LegStates = { whatsappAccepted: false, sip: 'none' };

describe('failure map: a failure on one side becomes an action on the other', () => {
  it.each([
    [486, 'pbx-busy'],
    [600, 'pbx-busy'],
    [603, 'pbx-declined'],
    [404, 'pbx-not-found'],
    [480, 'pbx-unavailable'],
    [408, 'pbx-no-answer'],
    [500, 'pbx-error'],
    [503, 'pbx-error'],
    [487, 'pbx-cancelled'],
    [302, 'pbx-redirect-unsupported'],
    [488, 'pbx-failed'],
  ])('PBX final %i rejects the WhatsApp call (%s) and sends nothing more to the PBX', (status, label) => {
    const plan = planTeardown({ kind: 'pbx-final', status, reason: 'x' }, inviting);
    expect(plan).toEqual({ whatsapp: 'reject', sip: 'none', label });
    expect(pbxFinalLabel(status)).toBe(label);
  });

  it('PBX BYE after answer terminates the WhatsApp call', () => {
    expect(planTeardown({ kind: 'pbx-bye' }, active)).toEqual({ whatsapp: 'terminate', sip: 'none', label: 'agent-hung-up' });
  });

  it('WhatsApp terminate before the PBX answered CANCELs the INVITE', () => {
    expect(planTeardown({ kind: 'wa-terminate', status: 'COMPLETED' }, inviting)).toEqual({
      whatsapp: 'none',
      sip: 'cancel',
      label: 'caller-hung-up',
    });
  });

  it('WhatsApp terminate after answer BYEs the PBX', () => {
    expect(planTeardown({ kind: 'wa-terminate', status: 'COMPLETED' }, active).sip).toBe('bye');
    expect(planTeardown({ kind: 'wa-terminate', status: 'FAILED', errorCode: 138021 }, active).label).toBe('whatsapp-failed');
  });

  it('a Graph error on accept BYEs the PBX and rejects on WhatsApp', () => {
    const cause: EndCause = { kind: 'wa-api-error', action: 'accept', error: new GraphApiError('x', 400, 100) };
    expect(planTeardown(cause, confirmedNotAccepted)).toEqual({ whatsapp: 'reject', sip: 'bye', label: 'whatsapp-accept-failed' });
  });

  it('a ring timeout CANCELs the PBX and rejects the WhatsApp call', () => {
    expect(planTeardown({ kind: 'ring-timeout' }, inviting)).toEqual({ whatsapp: 'reject', sip: 'cancel', label: 'ring-timeout' });
  });

  it('a media failure before any INVITE only rejects on WhatsApp', () => {
    expect(planTeardown({ kind: 'media-error', message: 'down' }, nothing)).toEqual({ whatsapp: 'reject', sip: 'none', label: 'media-failed' });
  });

  it('shutdown ends both sides of an active call', () => {
    expect(planTeardown({ kind: 'shutdown' }, active)).toEqual({ whatsapp: 'terminate', sip: 'bye', label: 'shutdown' });
  });
});
