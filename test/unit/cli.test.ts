import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { chosenCodec, hasTelephoneEvent } from '../../src/cli/observe.js';
import { describeSipFailure } from '../../src/cli/simulate-call.js';
import { dtmfEvent } from '../../src/cli/simulate-media.js';
import { dialUri, inboundTarget, simulateConfig } from '../../src/cli/simulate.js';
import { UsageError } from '../../src/cli/common.js';

const answer = (mline: string, extra: string[] = []) =>
  ['v=0', 'o=- 1 1 IN IP4 10.0.0.1', 's=-', 'c=IN IP4 10.0.0.1', 't=0 0', mline, ...extra, ''].join('\r\n');

describe('cli: what simulate reads from SDP', () => {
  it('the chosen codec is the first non-telephone-event payload, static ones named without rtpmap', () => {
    expect(chosenCodec(answer('m=audio 4000 RTP/AVP 101 9 0', ['a=rtpmap:101 telephone-event/8000']))).toBe('G722/8000');
    expect(chosenCodec(answer('m=audio 4000 RTP/AVP 8 101', ['a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000']))).toBe('PCMA/8000');
    expect(chosenCodec(answer('m=audio 4000 RTP/AVP 111', ['a=rtpmap:111 opus/48000/2']))).toBe('opus/48000');
    expect(chosenCodec(answer('m=audio 0 RTP/AVP 0'))).toBeUndefined(); // refused stream
    expect(chosenCodec(undefined)).toBeUndefined();
  });

  it('telephone-event is noticed only when present', () => {
    expect(hasTelephoneEvent(answer('m=audio 4000 RTP/AVP 0 101', ['a=rtpmap:101 telephone-event/8000']))).toBe(true);
    expect(hasTelephoneEvent(answer('m=audio 4000 RTP/AVP 0'))).toBe(false);
  });
});

describe('cli: simulate options', () => {
  const config = buildConfig({ routing: { default: 'sip:whatsapp@pbx.example.com:5070;transport=tcp' }, sip: { udp: { host: '10.0.0.5', port: 5062 } }, outbound: { enabled: true, allowFrom: ['10.0.0.10'], dialPrefix: '9', phoneNumberId: '1' } });

  it('--to: an extension replaces the user of routing.default; a URI is taken as is; junk is a usage error', () => {
    expect(inboundTarget('600', config)).toBe('sip:600@pbx.example.com:5070;transport=tcp');
    expect(inboundTarget('sip:echo@other:5060', config)).toBe('sip:echo@other:5060');
    expect(inboundTarget(undefined, config)).toBeUndefined();
    expect(() => inboundTarget('6 0 0', config)).toThrow(UsageError);
  });

  it('DTMF digits map to RFC 4733 events', () => {
    expect([dtmfEvent('0'), dtmfEvent('9'), dtmfEvent('*'), dtmfEvent('#'), dtmfEvent('A'), dtmfEvent('d')]).toEqual([0, 9, 10, 11, 12, 15]);
    expect(dtmfEvent('x')).toBeUndefined();
  });

  it('--outbound prints the URI an agent dials: dial prefix, number, the bridge\'s SIP address', () => {
    expect(dialUri(config, '5511987654321')).toBe('sip:95511987654321@10.0.0.5:5062');
    expect(dialUri(buildConfig({ sip: { contactHost: 'bridge.example.com:5080' } }), '1555')).toBe('sip:1555@bridge.example.com:5080');
  });

  it('SIP failures read as an integrator would say them', () => {
    expect(describeSipFailure(486, 'Busy Here')).toBe('busy (486 Busy Here)');
    expect(describeSipFailure(404, 'Not Found')).toBe('not found (no such extension) (404 Not Found)');
    expect(describeSipFailure(503, 'Service Unavailable')).toBe('PBX error (503 Service Unavailable)');
  });
});

describe('cli: the config simulate runs the bridge with', () => {
  const sim = { graphUrl: 'http://127.0.0.1:4444' };
  const raw = {
    whatsapp: { provider: '360dialog', baseUrl: 'https://waba-v2.360dialog.io', phoneNumberIds: ['42'] },
    http: { host: '0.0.0.0', port: 8080 },
    sip: { udp: { host: '127.0.0.1', port: 5090 }, tcp: null },
    routing: { default: 'sip:q@pbx', rules: [{ callerPrefix: '55', target: 'sip:pt@pbx' }] },
  };
  // The user's real secrets are in the environment; they must not reach the simulated bridge
  // (the simulator would refuse the token, and the webhooks are signed with its own secret).
  const env = { WA_ACCESS_TOKEN: 'real-token', WA_APP_SECRET: 'real-secret', WA_360DIALOG_API_KEY: 'real-key', SIP_AUTH_PASSWORD: 'pbx-pw' };

  it('WhatsApp is the simulator (Meta shape, its token and secret); HTTP on loopback; the rest is the user\'s', () => {
    const c = simulateConfig(raw, env, sim, 'sim-token', 'sim-secret', undefined);
    expect(c.whatsapp).toMatchObject({ provider: 'meta', graphBaseUrl: 'http://127.0.0.1:4444', accessToken: 'sim-token', appSecret: 'sim-secret', phoneNumberIds: ['42'] });
    expect(c.http).toEqual({ host: '127.0.0.1', port: 0 });
    expect(c.sip.udp).toEqual({ host: '127.0.0.1', port: 5090 });
    expect(c.routing.rules).toHaveLength(1);
    expect(JSON.stringify(c)).not.toMatch(/real-(token|secret|key)/);
  });

  it('--to replaces the routing with one default route', () => {
    const c = simulateConfig(raw, env, sim, 't', 's', 'sip:600@pbx');
    expect(c.routing).toEqual({ default: 'sip:600@pbx', rules: [] });
  });
});
