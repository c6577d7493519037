import { describe, expect, it } from 'vitest';
import { FailureSignal, WhatsAppMediaTimer } from '../../src/media/watchdog.js';
import { tagPackets } from '../../src/media/rtpengine/watchdog.js';
import type { MediaFailure } from '../../src/media/types.js';
import { silentLogger } from '../../src/util/log.js';

describe('FailureSignal', () => {
  it('tells the first failure once, and nothing after close()', () => {
    const got: MediaFailure[] = [];
    const f = new FailureSignal('c1', silentLogger());
    f.onFailure((x) => got.push(x));
    f.fire('webrtc-failed', 'DTLS closed');
    f.fire('whatsapp-media-timeout', 'later');
    expect(got).toEqual([{ kind: 'webrtc-failed', detail: 'DTLS closed' }]);
    const g = new FailureSignal('c2', silentLogger());
    const got2: MediaFailure[] = [];
    g.onFailure((x) => got2.push(x));
    g.close();
    g.fire('engine-dead', 'x');
    expect(got2).toEqual([]);
  });

  it('a failure before the listener is registered is told on registration; a throwing listener is contained', () => {
    const f = new FailureSignal('c3', silentLogger());
    f.fire('engine-dead', 'gone');
    const got: MediaFailure[] = [];
    f.onFailure((x) => got.push(x));
    expect(got.map((x) => x.kind)).toEqual(['engine-dead']);
    const t = new FailureSignal('c4', silentLogger());
    t.onFailure(() => {
      throw new Error('listener bug');
    });
    expect(() => t.fire('engine-dead', 'x')).not.toThrow();
  });
});

describe('WhatsAppMediaTimer', () => {
  it('expires only after the timeout without media, counted from arming, then from the last packet', () => {
    const t = new WhatsAppMediaTimer(2);
    expect(t.expired(100_000)).toBeUndefined(); // not armed: WhatsApp cannot send yet
    t.arm(0);
    expect(t.expired(1999)).toBeUndefined();
    expect(t.expired(2000)).toMatch(/no RTP from WhatsApp for 2 s/);
    t.activity(2500);
    expect(t.expired(4000)).toBeUndefined();
    expect(t.expired(4600)).toMatch(/RTP from WhatsApp stopped/);
    const off = new WhatsAppMediaTimer(0);
    off.arm(0);
    expect(off.expired(1e9)).toBeUndefined();
  });
});

describe('rtpengine query counters', () => {
  it("sums the packets of every stream of one tag's medias", () => {
    const reply = {
      result: 'ok',
      tags: {
        wa: { medias: [{ streams: [{ stats: { packets: 100 } }, { stats: { packets: 3 } }] }] },
        pbx: { medias: [{ streams: [{ stats: { packets: 7 } }] }] },
      },
    };
    expect(tagPackets(reply, 'wa')).toBe(103);
    expect(tagPackets(reply, 'pbx')).toBe(7);
    expect(tagPackets(reply, 'other')).toBeUndefined();
    expect(tagPackets({ result: 'ok' }, 'wa')).toBeUndefined();
  });
});
