import { describe, expect, it } from 'vitest';
import { BridgeMetrics } from '../../src/ops/metrics.js';

describe('bridge metrics', () => {
  it('counts calls, set-up latency and SIP messages in Prometheus text', async () => {
    const m = new BridgeMetrics({ processMetrics: false });
    m.callStarted('inbound');
    m.callStarted('inbound');
    m.callEnded('inbound', 'answered', 'whatsapp-hung-up');
    m.setup('webhook_to_invite', 1.5);
    m.sip('out', 'INVITE');
    m.sip('in', 'INVITE', 486);
    m.sip('in', 'X-EVIL\r\nfoo', 200);
    const text = await m.text();
    expect(text).toContain('wasip_calls_active{direction="inbound"} 1');
    expect(text).toContain('wasip_calls_total{direction="inbound",outcome="answered",cause="whatsapp-hung-up"} 1');
    expect(text).toContain('wasip_setup_seconds_bucket{le="0.002",stage="webhook_to_invite"} 1');
    expect(text).toContain('wasip_setup_seconds_bucket{le="0.001",stage="webhook_to_invite"} 0');
    expect(text).toContain('wasip_sip_messages_total{direction="in",method="INVITE",code="486"} 1');
    // A method nobody knows is not a label value (bounded cardinality, no injected text).
    expect(text).toContain('wasip_sip_messages_total{direction="in",method="other",code="200"} 1');
    expect(text).not.toContain('X-EVIL');
  });

  it('keeps each instance on its own registry', async () => {
    const a = new BridgeMetrics({ processMetrics: false });
    const b = new BridgeMetrics({ processMetrics: false });
    a.webhook('bad_signature');
    expect(await a.text()).toContain('wasip_webhooks_total{outcome="bad_signature"} 1');
    expect(await b.text()).not.toContain('outcome="bad_signature"');
  });

  it('reports process metrics (event-loop delay, memory) when asked', async () => {
    const m = new BridgeMetrics();
    const text = await m.text();
    expect(text).toContain('wasip_nodejs_eventloop_lag_seconds');
    expect(text).toContain('wasip_process_resident_memory_bytes');
  });
});
