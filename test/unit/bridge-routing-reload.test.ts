import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { BridgeScenario } from '../support/bridge-scenario.js';

describe('routing reload', () => {
  it('new calls take the new routing; a call in progress keeps its target', async () => {
    const s = new BridgeScenario();
    const first = await s.inboundRinging();
    expect(first.invite.req.uri).toBe('sip:queue@pbx.test');
    const next = buildConfig({ routing: { default: 'sip:night@pbx.test', rules: [{ callerPrefix: '55', target: 'sip:brazil@pbx.test' }] } }, {});
    s.bridge.setRouting(next.routing);
    const second = await s.inboundRinging();
    expect(second.invite.req.uri).toBe('sip:brazil@pbx.test');
    // The first call was not moved: still ringing its own target, not cancelled.
    expect(first.invite.cancelled).toBe(false);
    expect(first.invite.req.uri).toBe('sip:queue@pbx.test');
  });
});
