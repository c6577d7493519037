import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { PbxLeg, type PbxSourceRules } from '../../src/media/embedded/pbx-leg.js';
import { PortAllocator } from '../../src/media/embedded/ports.js';
import { buildRtp } from '../../src/media/embedded/rtp.js';
import type { PlainMedia } from '../../src/media/embedded/sdp.js';
import { silentLogger } from '../../src/util/log.js';

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c();
});

async function socket(host = '127.0.0.1'): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, host, () => res()));
  open.push(() => new Promise((res) => s.close(() => res())));
  return s;
}

/** A PBX leg on its own port pair, and the SSRCs of the RTP it let through. */
async function leg(rules: PbxSourceRules) {
  const base = 42000 + 2 * Math.floor(Math.random() * 3000);
  const alloc = new PortAllocator('0.0.0.0', base, base + 9);
  const ssrcs: number[] = [];
  const l = new PbxLeg('unit', silentLogger(), (rtp) => ssrcs.push(rtp.ssrc), rules);
  const port = await l.open(alloc);
  open.push(() => l.close(alloc));
  return { l, port, ssrcs };
}

const plain = (host: string, port: number): PlainMedia => ({ host, port, rtcpPort: port + 1, rtcpMux: false, codecs: [], tePt: undefined, direction: 'sendrecv', ptime: 20 });

/** Send one RTP packet and wait for the leg to have seen it (accepted or dropped). */
async function send(from: dgram.Socket, to: number, ssrc: number, l: PbxLeg): Promise<void> {
  const seen = l.packetsIn + l.dropped;
  from.send(buildRtp(0, false, 1, 160, ssrc, new Uint8Array(160)), to, '127.0.0.1');
  const deadline = performance.now() + 2000; // bounded: loopback delivers in well under that
  while (l.packetsIn + l.dropped === seen && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

describe('PBX leg address rules', () => {
  it('strict: only the SDP address and port; others dropped and counted', async () => {
    const { l, port, ssrcs } = await leg({ mode: 'strict', learnWindowMs: 3000 });
    const pbx = await socket();
    const other = await socket();
    await send(pbx, port, 1, l); // before any SDP: nobody is the PBX
    l.setRemote(plain('127.0.0.1', pbx.address().port));
    await send(pbx, port, 1, l);
    await send(other, port, 2, l);
    expect(ssrcs).toEqual([1]);
    expect(l.dropped).toBe(2);
  });

  it('learn: first source and SSRC latched in the window; another source with another SSRC dropped', async () => {
    const { l, port, ssrcs } = await leg({ mode: 'learn', learnWindowMs: 3000 });
    const natted = await socket();
    const attacker = await socket('127.0.0.2');
    l.setRemote(plain('192.0.2.10', 30000)); // the PBX's private address, never the source
    await send(natted, port, 7, l);
    await send(attacker, port, 9, l);
    await send(natted, port, 7, l);
    expect(ssrcs).toEqual([7, 7]);
    expect(l.dropped).toBe(1);
    expect(l.latchedTo).toBe(`127.0.0.1:${natted.address().port}`);
  });

  it('learn: the SDP address wins over an earlier stranger within the window; after it, the source is locked', async () => {
    const { l, port, ssrcs } = await leg({ mode: 'learn', learnWindowMs: 300 });
    const pbx = await socket();
    const stranger = await socket('127.0.0.2');
    l.setRemote(plain('127.0.0.1', pbx.address().port));
    await send(stranger, port, 5, l); // latched first...
    await send(pbx, port, 6, l); // ...but the SDP's address takes over
    expect(l.latchedTo).toBe(`127.0.0.1:${pbx.address().port}`);
    await new Promise((r) => setTimeout(r, 350)); // past the 300 ms window (what is tested)
    await send(stranger, port, 6, l); // even with the PBX's SSRC
    await send(pbx, port, 6, l);
    expect(ssrcs).toEqual([5, 6, 6]);
    expect(l.dropped).toBe(1);
  });
});
