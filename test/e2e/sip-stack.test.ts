import { describeWithPeers } from '../support/peers.js';
/**
 * The SIP stack against SIPp on loopback: our stack on 127.0.0.1, SIPp on 127.0.0.2 (the `sip`
 * package answers requests addressed to its own listen IP locally). One scenario per behaviour;
 * assertions on what SIPp received and on our API results.
 */
import { createSocket } from 'node:dgram';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createSipStack } from '../../src/sip/stack.js';
import { SipFailure, type IncomingInvite, type SipDialog, type SipStack } from '../../src/sip/types.js';
import { silentLogger } from '../../src/util/log.js';
import { firstLines, headerOf, sippMessages, startSipp, stopAllSipp, type SippHandle } from '../harness/sipp.js';
import { freeDualPort, freePort, waitListening } from '../harness/ports.js';

const US = '127.0.0.1';
const PEER = '127.0.0.2';
const SDP = ['v=0', 'o=- 1000 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');

const stacks: SipStack[] = [];

async function newStack(extra: Partial<Parameters<typeof createSipStack>[0]> = {}): Promise<{ stack: SipStack; port: number }> {
  const port = await freeDualPort(US);
  const stack = await createSipStack({ udp: { host: US, port }, tcp: { host: US, port }, logger: silentLogger(), ...extra });
  stacks.push(stack);
  return { stack, port };
}

async function peer(scenario: string, transport: 'udp' | 'tcp' = 'udp', args?: { remote?: string; extra?: string[] }): Promise<{ sipp: SippHandle; port: number }> {
  const port = await freePort(PEER, transport);
  const sipp = startSipp({ scenario, ip: PEER, port, transport, ...(args?.remote ? { remote: args.remote } : {}), ...(args?.extra ? { args: args.extra } : {}) });
  // As the called side, a UDP INVITE sent before SIPp binds is lost (only its retransmission
  // would come). As the caller (`remote`), it starts the exchange itself.
  if (!args?.remote) await waitListening(PEER, port, transport);
  return { sipp, port };
}

function waitBye(d: SipDialog): Promise<void> {
  return new Promise((resolve) => d.on('bye', () => resolve()));
}

async function failureOf(p: Promise<unknown>): Promise<SipFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SipFailure);
  return err as SipFailure;
}

const from = { uri: 'sip:+4915112345678@wa.example.com', displayName: 'Ana "The Boss" \\ Müller' };

describeWithPeers('SIP stack against SIPp', ['sipp'], () => {
  beforeEach(() => {
    stacks.length = 0;
  });
  afterEach(async () => {
    stopAllSipp();
    await Promise.all(stacks.map((s) => s.close()));
  });

  it('places a call, ACKs the 200, and receives the BYE from the PBX (UDP)', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-answer-bye.xml');
    const progress: number[] = [];
    const call = stack.invite(
      { uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP, headers: { 'X-WA-Call-Id': 'wacid.HBgL' } },
      { onProgress: (p) => progress.push(p.status) },
    );
    const dialog = await call.established;
    expect(dialog.callId).toBe(call.callId);
    expect(dialog.remoteSdp).toContain('m=audio');
    expect(progress).toEqual([180]);
    await waitBye(dialog);
    expect(dialog.state).toBe('terminated');

    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const { received, sent } = sippMessages(res.messages);
    expect(firstLines(received)).toEqual([`INVITE sip:1001@${PEER}:${port} SIP/2.0`, expect.stringMatching(/^ACK /), 'SIP/2.0 200 OK']);
    const invite = received[0]!;
    expect(headerOf(invite, 'X-WA-Call-Id')).toBe('wacid.HBgL');
    // RFC 3261 section 25.1: quoted-string with quoted-pairs; UTF-8 bytes preserved.
    expect(headerOf(invite, 'From')).toMatch(/^"Ana \\"The Boss\\" \\\\ Müller" <sip:\+4915112345678@wa\.example\.com>;tag=\w+$/);
    expect(headerOf(invite, 'CSeq')).toBe('1 INVITE');
    expect(headerOf(invite, 'Contact')).toBe(`<sip:${US}:${stackPort(invite)}>`);
    expect(headerOf(received[1]!, 'CSeq')).toBe('1 ACK');
    expect(headerOf(received[1]!, 'To')).toContain('tag=');
    expect(firstLines(sent)).toContain('SIP/2.0 180 Ringing');
  });

  it('sends BYE with the next CSeq when we hang up (UDP)', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-answer-wait-bye.xml');
    const dialog = await stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established;
    await dialog.bye();
    await dialog.bye(); // idempotent
    expect(dialog.state).toBe('terminated');
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const { received } = sippMessages(res.messages);
    const bye = received.find((m) => m.startsWith('BYE '))!;
    expect(bye).toBeDefined();
    expect(bye.split(/\r?\n/)[0]).toBe(`BYE sip:${PEER}:${port};transport=UDP SIP/2.0`);
    expect(headerOf(bye, 'CSeq')).toBe('2 BYE');
    expect(received.filter((m) => m.startsWith('BYE '))).toHaveLength(1);
  });

  it('places and ends a call over TCP', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-answer-wait-bye.xml', 'tcp');
    const dialog = await stack.invite({ uri: `sip:1001@${PEER}:${port};transport=tcp`, from, sdp: SDP }).established;
    await dialog.bye();
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const { received } = sippMessages(res.messages);
    expect(firstLines(received).map((l) => l.split(' ')[0])).toEqual(['INVITE', 'ACK', 'BYE']);
    expect(headerOf(received[0]!, 'Via')).toMatch(/^SIP\/2\.0\/TCP 127\.0\.0\.1:\d+;branch=z9hG4bK/);
    expect(headerOf(received[0]!, 'Contact')).toMatch(/;transport=tcp>$/);
  });

  it('rejects with the final status (486) and the Reason header; the transaction ACKs it', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-busy.xml');
    const err = await failureOf(stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established);
    expect(err.status).toBe(486);
    expect(err.reason).toBe('Busy Here');
    expect(err.reasonHeader).toContain('cause=17');
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    expect(firstLines(sippMessages(res.messages).received).map((l) => l.split(' ')[0])).toEqual(['INVITE', 'ACK']);
  });

  it('advertises contactHost in Via and Contact', async () => {
    const { stack } = await newStack({ contactHost: 'bridge.example.com:5999' });
    const { sipp, port } = await peer('sip-uas-busy.xml');
    await failureOf(stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const invite = sippMessages(res.messages).received[0]!;
    expect(headerOf(invite, 'Via')).toMatch(/^SIP\/2\.0\/UDP bridge\.example\.com:5999;branch=/);
    expect(headerOf(invite, 'Contact')).toBe('<sip:bridge.example.com:5999>');
  });

  it('rejects with 503 for a Request-URI it cannot route, and when the stack closes', async () => {
    const { stack } = await newStack();
    expect((await failureOf(stack.invite({ uri: 'tel:+4915112345678', from, sdp: SDP }).established)).status).toBe(503);
    // A peer that receives the INVITE and never answers: close the stack once it is out.
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, PEER, () => r()));
    const received = new Promise<void>((r) => silent.once('message', () => r()));
    try {
      const pending = stack.invite({ uri: `sip:1001@${PEER}:${silent.address().port}`, from, sdp: SDP });
      await received;
      await stack.close();
      expect((await failureOf(pending.established)).status).toBe(503);
    } finally {
      silent.close();
    }
  });

  it('cancel() sends CANCEL after the 180 and rejects with 487', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-ring-cancel.xml');
    const call = stack.invite(
      { uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP },
      {
        onProgress: () => {
          call.cancel();
          call.cancel();
        },
      },
    );
    const err = await failureOf(call.established);
    expect(err.status).toBe(487);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const { received } = sippMessages(res.messages);
    expect(firstLines(received).map((l) => l.split(' ')[0])).toEqual(['INVITE', 'CANCEL', 'ACK']);
    const [invite, cancel] = received;
    expect(headerOf(cancel!, 'CSeq')).toBe('1 CANCEL');
    expect(headerOf(cancel!, 'Via')?.replace(/;received=.*$/, '')).toBe(headerOf(invite!, 'Via'));
  });

  it('a 2xx racing our CANCEL is ACKed and ended with BYE', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-cancel-race.xml');
    const call = stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }, { onProgress: () => call.cancel() });
    expect((await failureOf(call.established)).status).toBe(487);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const { received } = sippMessages(res.messages);
    expect(firstLines(received).map((l) => l.split(' ')[0])).toEqual(['INVITE', 'CANCEL', 'ACK', 'BYE']);
    expect(headerOf(received[3]!, 'CSeq')).toBe('2 BYE');
  });

  it('gives up after inviteTimeoutMs: CANCEL, then 408', async () => {
    const { stack } = await newStack({ inviteTimeoutMs: 1000 });
    const { sipp, port } = await peer('sip-uas-ring-cancel.xml');
    const started = performance.now();
    const err = await failureOf(stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established);
    expect(err.status).toBe(408);
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const cancel = sippMessages(res.messages).received.find((m) => m.startsWith('CANCEL '));
    expect(headerOf(cancel!, 'Reason')).toContain('cause=408');
  });

  it('answers a 401 with digest credentials, CSeq incremented', async () => {
    const { stack } = await newStack({ credentials: { username: 'alice', password: 's3cret' } });
    const { sipp, port } = await peer('sip-uas-auth.xml');
    const dialog = await stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established;
    await dialog.bye();
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const { received } = sippMessages(res.messages);
    expect(firstLines(received).map((l) => l.split(' ')[0])).toEqual(['INVITE', 'ACK', 'INVITE', 'ACK', 'BYE']);
    expect(headerOf(received[0]!, 'CSeq')).toBe('1 INVITE');
    expect(headerOf(received[2]!, 'CSeq')).toBe('2 INVITE');
    expect(headerOf(received[2]!, 'Authorization')).toMatch(/^Digest .*username="alice"/);
    expect(headerOf(received[3]!, 'Authorization')).toMatch(/^Digest /); // ACK of 2xx keeps credentials
    expect(headerOf(received[4]!, 'CSeq')).toBe('3 BYE');
    expect(headerOf(received[0]!, 'Call-ID')).toBe(headerOf(received[2]!, 'Call-ID'));
  });

  it('fails with the 401 when it has no credentials', async () => {
    const { stack } = await newStack();
    const { port } = await peer('sip-uas-auth.xml');
    const err = await failureOf(stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established);
    expect(err.status).toBe(401);
  });

  it('retransmits the INVITE over UDP when the first is lost', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-drop-first.xml');
    const dialog = await stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established;
    await dialog.bye();
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const invites = sippMessages(res.messages).received.filter((m) => m.startsWith('INVITE '));
    expect(invites.length).toBeGreaterThanOrEqual(2);
    expect(headerOf(invites[1]!, 'Via')).toBe(headerOf(invites[0]!, 'Via')); // same transaction
  });

  it('answers a hold re-INVITE without a handler: direction mirrored, o= version bumped', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-reinvite-hold.xml');
    const dialog = await stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established;
    await waitBye(dialog);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const ok = sippMessages(res.messages).received.find((m) => m.startsWith('SIP/2.0 200') && /CSeq:\s*1 INVITE/i.test(m))!;
    expect(ok).toContain('a=recvonly');
    expect(ok).toMatch(/o=- 1000 2 IN IP4/);
    expect(headerOf(ok, 'Contact')).toBeDefined();
  });

  it('answers a hold re-INVITE with the ReinviteHandler result', async () => {
    const { stack } = await newStack();
    const { sipp, port } = await peer('sip-uas-reinvite-hold.xml');
    const dialog = await stack.invite({ uri: `sip:1001@${PEER}:${port}`, from, sdp: SDP }).established;
    const offers: Array<string | undefined> = [];
    dialog.setReinviteHandler(async (offer) => {
      offers.push(offer);
      return SDP.replace('o=- 1000 1', 'o=- 1000 7').replace('a=sendrecv', 'a=recvonly');
    });
    await waitBye(dialog);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    expect(offers[0]).toContain('a=sendonly');
    const ok = sippMessages(res.messages).received.find((m) => m.startsWith('SIP/2.0 200') && /CSeq:\s*1 INVITE/i.test(m))!;
    expect(ok).toMatch(/o=- 1000 7 /);
  });
});

describeWithPeers('SIP stack as UAS against SIPp', ['sipp'], () => {
  afterEach(async () => {
    stopAllSipp();
    await Promise.all(stacks.splice(0).map((s) => s.close()));
  });

  async function call(scenario: string, handler?: (inv: IncomingInvite) => void) {
    const { stack, port } = await newStack();
    const invited = new Promise<IncomingInvite>((resolve) =>
      stack.onInvite((inv) => {
        handler?.(inv);
        resolve(inv);
      }),
    );
    const { sipp } = await peer(scenario, 'udp', { remote: `${US}:${port}`, extra: ['-s', '1001'] });
    return { stack, port, sipp, invited };
  }

  it('takes an INVITE: 100 at once, 180, 200 with SDP, ACK resolves accept(); BYE from the PBX', async () => {
    const { sipp, invited, port } = await call('sip-uac-call-bye.xml');
    const inv = await invited;
    expect(inv.from.displayName).toBe('PBX "Ops" \\ 7');
    expect(inv.from.uri).toBe(`sip:7001@${PEER}:${inv.source.port}`);
    expect(inv.to.uri).toBe(`sip:1001@${US}:${port}`);
    expect(inv.requestUri).toBe(`sip:1001@${US}:${port}`);
    expect(inv.header('x-pbx-ref')).toBe('ref-42');
    expect(inv.header('CSeq')).toBe('1 INVITE');
    expect(inv.sdp).toContain('m=audio');
    expect(inv.source).toMatchObject({ address: PEER, transport: 'udp' });
    inv.progress(180, 'Ringing');
    const dialog = await inv.accept(SDP);
    expect(dialog.remoteSdp).toBe(inv.sdp);
    await waitBye(dialog);
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const { received } = sippMessages(res.messages);
    expect(firstLines(received)).toEqual(['SIP/2.0 100 Trying', 'SIP/2.0 180 Ringing', 'SIP/2.0 200 OK', 'SIP/2.0 200 OK']);
    const ok = received[2]!;
    expect(headerOf(ok, 'To')).toMatch(/;tag=\w+$/);
    expect(headerOf(ok, 'To')).toBe(headerOf(received[1]!, 'To')); // same tag in 180 and 200
    expect(headerOf(ok, 'Contact')).toBe(`<sip:${US}:${port}>`);
    expect(ok).toContain('o=- 1000 1 IN IP4');
  });

  it('retransmits the 200 until the late ACK, then ends the call with BYE', async () => {
    const { sipp, invited } = await call('sip-uac-late-ack.xml');
    const inv = await invited;
    const dialog = await inv.accept(SDP);
    await dialog.bye();
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const { received } = sippMessages(res.messages);
    expect(received.filter((m) => m.startsWith('SIP/2.0 200 OK')).length).toBeGreaterThanOrEqual(2);
    const bye = received.find((m) => m.startsWith('BYE '))!;
    expect(bye.split(/\r?\n/)[0]).toBe(`BYE sip:7001@${PEER}:${inv.source.port};transport=UDP SIP/2.0`);
    expect(headerOf(bye, 'From')).toMatch(/^<sip:1001@127\.0\.0\.1:\d+>;tag=\w+$/);
    expect(headerOf(bye, 'To')).toMatch(/^"PBX \\"Ops\\" \\\\ 7" <sip:7001@/);
  });

  it('CANCEL from the PBX: 200 to the CANCEL, 487 to the INVITE, onCancel called', async () => {
    let cancelled = false;
    const { sipp, invited } = await call('sip-uac-cancel.xml', (inv) => {
      inv.onCancel(() => (cancelled = true));
      inv.progress(180, 'Ringing');
    });
    const inv = await invited;
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    expect(cancelled).toBe(true);
    await expect(inv.accept(SDP)).rejects.toBeInstanceOf(SipFailure);
    const { received } = sippMessages(res.messages);
    expect(firstLines(received).filter((l) => !l.includes('100 Trying'))).toEqual(['SIP/2.0 180 Ringing', 'SIP/2.0 200 OK', 'SIP/2.0 487 Request Terminated']);
  });

  it('reject() sends the final status with extra headers', async () => {
    const { sipp } = await call('sip-uac-rejected.xml', (inv) => inv.reject(480, 'Temporarily Unavailable', { Warning: '399 bridge "WhatsApp user offline"' }));
    const res = await sipp.exited;
    expect(res.code, res.errors).toBe(0);
    const final = sippMessages(res.messages).received.find((m) => m.startsWith('SIP/2.0 480'))!;
    expect(headerOf(final, 'Warning')).toBe('399 bridge "WhatsApp user offline"');
  });

  it('answers 403 when no handler is set, and survives a throwing handler', async () => {
    const { stack, port } = await newStack();
    const first = await peer('sip-uac-rejected.xml', 'udp', { remote: `${US}:${port}`, extra: ['-s', '1001'] });
    const r1 = await first.sipp.exited;
    expect(r1.code, r1.errors).toBe(0);
    expect(firstLines(sippMessages(r1.messages).received)).toContain('SIP/2.0 403 Forbidden');

    stack.onInvite((inv) => {
      inv.reject(480, 'Temporarily Unavailable');
      throw new Error('handler bug');
    });
    const second = await peer('sip-uac-rejected.xml', 'udp', { remote: `${US}:${port}`, extra: ['-s', '1001'] });
    const r2 = await second.sipp.exited;
    expect(r2.code, r2.errors).toBe(0);
  });
});

function stackPort(msg: string): string {
  return /Via: SIP\/2\.0\/\w+ [\d.]+:(\d+)/.exec(msg)?.[1] ?? '';
}
