import { afterEach, expect, it } from 'vitest';
import { WhatsAppSimulator } from '../../src/simulator/whatsapp.js';
import { createSipStack } from '../../src/sip/stack.js';
import type { IncomingInvite, SipDialog, SipStack } from '../../src/sip/types.js';
import { silentLogger } from '../../src/util/log.js';
import { startLoopbackBridge } from '../support/bridge-config.js';
import { firstLines, headerOf, sippMessages, startSipp, stopAllSipp, type SippHandle } from '../harness/sipp.js';
import { freeDualPort, freePort } from '../harness/ports.js';
import { describeWithPeers } from '../support/peers.js';

/**
 * RFC 4028 session timers and RFC 3311 UPDATE against SIPp: our stack on 127.0.0.1, SIPp on
 * 127.0.0.2. Intervals are a few seconds (Min-SE lowered to 2 for the test) so each case runs
 * in well under ten; every wait is for a wire event, bounded by SIPp's own timeout.
 */
const US = '127.0.0.1';
const PEER = '127.0.0.2';
const SDP = ['v=0', 'o=- 1000 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');
const from = { uri: 'sip:+4915112345678@wa.example.com' };
const stacks: SipStack[] = [];

async function newStack(expiresSec: number): Promise<{ stack: SipStack; port: number }> {
  const port = await freeDualPort(US);
  const stack = await createSipStack({ udp: { host: US, port }, logger: silentLogger(), sessionTimers: { expiresSec, minSec: 2 } });
  stacks.push(stack);
  return { stack, port };
}

async function peer(scenario: string, remote?: string): Promise<{ sipp: SippHandle; port: number }> {
  const port = await freePort(PEER, 'udp');
  const sipp = startSipp({ scenario, ip: PEER, port, timeoutSec: 15, ...(remote ? { remote, args: ['-s', '1001'] } : {}) });
  // SIPp needs a moment to bind before a UDP INVITE would be lost (the retransmission would still come).
  await new Promise((r) => setTimeout(r, 250));
  return { sipp, port };
}

const byeEvent = (d: SipDialog): Promise<number> => new Promise((resolve) => d.on('bye', () => resolve(performance.now())));

/** We call SIPp running `scenario`; resolves once the dialog ended and SIPp exited cleanly. */
async function callUntilBye(scenario: string, expiresSec: number, onDialog?: (d: SipDialog) => void) {
  const { stack } = await newStack(expiresSec);
  const { sipp, port } = await peer(scenario);
  const dialog = await stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established;
  onDialog?.(dialog);
  const t0 = performance.now();
  const ended = await byeEvent(dialog);
  const res = await sipp.exited;
  expect(res.code, res.errors).toBe(0);
  return { dialog, afterMs: ended - t0, received: sippMessages(res.messages).received };
}

describeWithPeers('SIP session timers (RFC 4028) and UPDATE (RFC 3311) against SIPp', ['sipp'], () => {
  afterEach(async () => {
    stopAllSipp();
    await Promise.all(stacks.splice(0).map((s) => s.close()));
  });

  it('we refresh by UPDATE at half the interval; a refresh answered 481 ends the call with BYE and a bye event', async () => {
    const { dialog, afterMs, received } = await callUntilBye('sip-uas-timer-update.xml', 4);
    const invite = received.find((m) => m.startsWith('INVITE'))!;
    expect(headerOf(invite, 'Supported')).toBe('timer');
    expect(headerOf(invite, 'Session-Expires')).toBe('4');
    expect(headerOf(invite, 'Min-SE')).toBe('2');
    const updates = received.filter((m) => m.startsWith('UPDATE'));
    expect(updates).toHaveLength(2);
    for (const u of updates) expect(headerOf(u, 'Session-Expires')).toBe('4;refresher=uac');
    expect(firstLines(received).at(-1)).toMatch(/^BYE /);
    // Two refreshes at 2 s each, then the BYE: about 4 s after the call was set up.
    expect(afterMs).toBeGreaterThan(3500);
    expect(dialog.state).toBe('terminated');
  });

  it('a 422 from the PBX: the INVITE is sent again once, with the interval its Min-SE asks for', async () => {
    const { received } = await callUntilBye('sip-uas-timer-422.xml', 4);
    const invites = received.filter((m) => m.startsWith('INVITE'));
    expect(invites.map((m) => headerOf(m, 'Session-Expires'))).toEqual(['4', '6']);
    expect(invites.map((m) => headerOf(m, 'CSeq'))).toEqual(['1 INVITE', '2 INVITE']);
  });

  it('the PBX is the refresher and never refreshes: BYE before the interval ends', async () => {
    const { afterMs, received } = await callUntilBye('sip-uas-timer-silent.xml', 0);
    expect(firstLines(received).at(-1)).toMatch(/^BYE /);
    // RFC 4028 section 10: at interval - min(32, interval / 3) = 3 - 1 = 2 s.
    expect(afterMs).toBeGreaterThan(1800);
    expect(afterMs).toBeLessThan(3000);
  });

  it('UPDATE from the PBX: with a hold offer, 200 with our answer; without a body, 200 (not 501)', async () => {
    const offers: Array<string | undefined> = [];
    const { received } = await callUntilBye('sip-uas-update.xml', 0, (d) => d.on('reinvite', (o) => offers.push(o)));
    const oks = received.filter((m) => m.startsWith('SIP/2.0 200') && /CSeq:\s*\d+ UPDATE/i.test(m));
    expect(oks).toHaveLength(2);
    expect(oks[0]).toContain('a=recvonly');
    expect(headerOf(oks[0]!, 'Content-Type')).toBe('application/sdp');
    expect(headerOf(oks[1]!, 'Content-Length')).toBe('0');
    expect(headerOf(oks[1]!, 'Allow')).toContain('UPDATE');
    expect(offers).toHaveLength(1);
    expect(offers[0]).toContain('a=sendonly');
  });

  it('as UAS: the PBX asks to refresh (refresher=uac) and does not: our 200 says so, and we BYE', async () => {
    const { stack, port } = await newStack(0);
    const invited = new Promise<IncomingInvite>((resolve) => stack.onInvite(resolve));
    const { sipp } = await peer('sip-uac-timer-silent.xml', `${US}:${port}`);
    const dialog = await (await invited).accept(SDP);
    const t0 = performance.now();
    const ended = await byeEvent(dialog);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const ok = sippMessages(res.messages).received.find((m) => m.startsWith('SIP/2.0 200'))!;
    expect(headerOf(ok, 'Session-Expires')).toBe('3;refresher=uac');
    expect(headerOf(ok, 'Require')).toBe('timer');
    expect(ended - t0).toBeGreaterThan(1500);
    expect(ended - t0).toBeLessThan(3000);
  });

  it('as UAS: an interval below Min-SE gets 422 with Min-SE, and never reaches the application', async () => {
    const { stack, port } = await newStack(0);
    let invites = 0;
    stack.onInvite(() => invites++);
    const { sipp } = await peer('sip-uac-timer-too-small.xml', `${US}:${port}`);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const r422 = sippMessages(res.messages).received.find((m) => m.startsWith('SIP/2.0 422'))!;
    expect(headerOf(r422, 'Min-SE')).toBe('2');
    expect(invites).toBe(0);
  });
});

describeWithPeers('session timer through the bridge (simulator + bridge + SIPp as the PBX)', ['sipp'], () => {
  afterEach(() => stopAllSipp());

  it('the PBX leg stops refreshing: BYE to the PBX and terminate to WhatsApp, as for a BYE from the PBX', async () => {
    const sim = await WhatsAppSimulator.start({ phoneNumberId: '1', businessNumber: '13175551399', accessToken: 't', appSecret: 's' });
    const port = await freePort(PEER, 'udp');
    const sipp = startSipp({ scenario: 'sip-uas-timer-silent.xml', ip: PEER, port, timeoutSec: 15 });
    const { app } = await startLoopbackBridge(
      sim,
      { sip: { tcp: null, sessionExpiresSec: 3, minSessionExpiresSec: 2 }, rest: { routing: { default: `sip:support@${PEER}:${port}` } } },
      silentLogger(),
    );
    try {
      const ended = new Promise<unknown>((resolve) => app.bridge.onCallEnded(resolve));
      const call = await sim.userCalls({ userWaId: '5511987654321' });
      await call.waitFor('accept');
      const t0 = performance.now();
      await call.waitFor('terminate', 10_000);
      // The PBX asked to be the refresher (3 s) and never refreshed: ended at 3 - 1 = 2 s.
      expect(performance.now() - t0).toBeGreaterThan(1500);
      expect(await ended).toMatchObject({ label: 'agent-hung-up', whatsapp: 'terminate', sip: 'none' });
      const res = await sipp.exited;
      expect(res.code, res.errors).toBe(0);
      const invite = sippMessages(res.messages).received.find((m) => m.startsWith('INVITE'))!;
      expect(headerOf(invite, 'Session-Expires')).toBe('3');
      expect(firstLines(sippMessages(res.messages).received).at(-1)).toMatch(/^BYE /);
    } finally {
      await app.close();
      await sim.close();
    }
  });
});
