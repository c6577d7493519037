import { describe, expect, it } from 'vitest';
import { pbxSdpProblem } from '../../src/media/pbx-sdp.js';
import { parsePlain } from '../../src/media/embedded/sdp.js';
import { createEmbeddedEngine, EmbeddedEngine } from '../../src/media/embedded/index.js';
import { MediaError } from '../../src/media/types.js';
import { WhatsAppMediaPeer } from '../../src/simulator/webrtc-peer.js';
import { silentLogger } from '../../src/util/log.js';

/** A PBX answer with the given c= address, m= port and extra media lines. */
function pbxSdp(opts: { host?: string; port?: number | string; extra?: string[] } = {}): string {
  return [
    'v=0',
    `o=- 1 1 IN IP4 127.0.0.1`,
    's=pbx',
    `c=IN IP4 ${opts.host ?? '127.0.0.1'}`,
    't=0 0',
    `m=audio ${opts.port ?? 30000} RTP/AVP 0 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    ...(opts.extra ?? []),
    'a=sendrecv',
    '',
  ].join('\r\n');
}

describe('PBX SDP addresses and ports', () => {
  it('accepts an ordinary answer, rtcp-mux on 65535, and c=0.0.0.0 (hold)', () => {
    expect(pbxSdpProblem(pbxSdp())).toBeUndefined();
    expect(pbxSdpProblem(pbxSdp({ port: 65535, extra: ['a=rtcp-mux'] }))).toBeUndefined();
    expect(pbxSdpProblem(pbxSdp({ host: '0.0.0.0' }))).toBeUndefined();
    expect(parsePlain(pbxSdp({ extra: ['a=rtcp:30011'] })).rtcpPort).toBe(30011);
  });

  it.each([
    ['m=audio 0', pbxSdp({ port: 0 }), /rejected \(port 0\)/],
    ['m=audio 65535 without rtcp-mux', pbxSdp({ port: 65535 }), /RTCP port 65536 out of range/],
    ['a=rtcp:0', pbxSdp({ extra: ['a=rtcp:0'] }), /a=rtcp port "0" out of range/],
    ['a host name', pbxSdp({ host: 'pbx.example.com' }), /not an IPv4 address/],
    ['junk in c=', pbxSdp({ host: '1.2.3.4.5\u0000' }), /not an IPv4 address/],
    ['IPv4 out of range', pbxSdp({ host: '300.1.1.1' }), /not an IPv4 address/],
    ['multicast', pbxSdp({ host: '239.1.1.1' }), /multicast/],
    ['broadcast', pbxSdp({ host: '255.255.255.255' }), /multicast or reserved/],
    ['no audio', 'v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 4000 RTP/AVP 96\r\n', /no audio m-line/],
  ])('refuses %s with a clear reason', (_name, sdp, reason) => {
    expect(pbxSdpProblem(sdp)).toMatch(reason);
  });

  it('the embedded engine refuses such an answer with a MediaError at answer time', async () => {
    const engine = (await createEmbeddedEngine({
      rtpHost: '127.0.0.1',
      rtpAdvertiseHost: '127.0.0.1',
      iceAddresses: ['127.0.0.1'],
      portMin: 47000 + Math.floor(Math.random() * 900) * 2,
      portMax: 48999,
      logger: silentLogger(),
    })) as EmbeddedEngine;
    const peer = new WhatsAppMediaPeer();
    try {
      const s = engine.createSession('bad-ports');
      await s.offerFromWhatsApp(await peer.createOffer());
      const err = await s.answerFromPbx(pbxSdp({ port: 65535 })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MediaError);
      expect((err as MediaError).message).toMatch(/unusable PBX answer: RTCP port 65536/);
      await s.close();
    } finally {
      await peer.close();
      await engine.close();
    }
  });
});

describe('the shared 20 ms tick', () => {
  it('a session whose tick throws does not keep the others from ticking', async () => {
    const engine = (await createEmbeddedEngine({
      rtpHost: '127.0.0.1',
      rtpAdvertiseHost: '127.0.0.1',
      iceAddresses: ['127.0.0.1'],
      portMin: 47000,
      portMax: 47001,
      logger: silentLogger(),
    })) as EmbeddedEngine;
    const ticks: string[] = [];
    // Stand-ins for live sessions in the engine's registry: the first throws on every tick.
    const registry = (engine as unknown as { sessions: Map<string, { callId: string; tick(now: number): void }> }).sessions;
    registry.set('a', { callId: 'a', tick: () => { ticks.push('a'); throw new Error('send failed'); } });
    registry.set('b', { callId: 'b', tick: () => void ticks.push('b') });
    try {
      // Wait (bounded) for three ticks of b: the engine ticks every 20 ms.
      const deadline = performance.now() + 5000;
      while (ticks.filter((t) => t === 'b').length < 3 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(ticks.filter((t) => t === 'b').length).toBeGreaterThanOrEqual(3);
      expect(ticks.filter((t) => t === 'a').length).toBeGreaterThanOrEqual(3);
    } finally {
      registry.clear();
      await engine.close();
    }
  });
});
