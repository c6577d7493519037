import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import sip from 'sip';
import { createSipStack, type SipStackWithStats } from '../../src/sip/stack.js';
import type { StoredClientInvite } from '../../src/sip/types.js';
import { createLogger } from '../../src/util/log.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../support/wait.js';

/**
 * A survivor's CANCEL of a dead instance's INVITE, against a PBX played by a UDP socket that
 * answers the CANCEL at once and sends its 487 (to the dead instance) only later, as a B2BUA
 * does while it cancels its own downstream leg.
 */
const T1 = 100;
let stack: SipStackWithStats | undefined;
let pbx: Socket | undefined;
afterEach(async () => {
  await stack?.close();
  pbx?.close();
  stack = pbx = undefined;
});

describe('CANCEL of a stored INVITE', () => {
  it('the ACK for the 487 is sent again after the CANCEL is answered, so a 487 that comes later is still acknowledged', async () => {
    const port = await freePort('127.0.0.1');
    stack = await createSipStack({ udp: { host: '127.0.0.1', port }, logger: createLogger({ level: 'silent' }), timers: { t1: T1, t2: 4 * T1 } });
    pbx = createSocket('udp4');
    const pbxPort = await new Promise<number>((ok) => pbx!.bind(0, '127.0.0.2', () => ok(pbx!.address().port)));
    const inv: StoredClientInvite = {
      kind: 'client',
      callId: 'stored-cancel-1',
      uri: `sip:1001@127.0.0.2:${pbxPort}`,
      via: { version: '2.0', protocol: 'UDP', host: '127.0.0.9', port: 5099, params: { branch: 'z9hG4bKdead1', rport: null } },
      from: '<sip:+5511@127.0.0.9>;tag=dead',
      to: `<sip:1001@127.0.0.2:${pbxPort}>`,
      cseq: 1,
      transport: 'udp',
      early: { remoteHeader: `<sip:1001@127.0.0.2:${pbxPort}>;tag=pbx1`, remoteTarget: `sip:1001@127.0.0.2:${pbxPort}`, routeSet: [] },
    };
    const DELAY_487_MS = 4 * T1;
    let sent487At: number | undefined;
    const acks: Array<{ at: number; branch: unknown; cseq: string }> = [];
    pbx.on('message', (buf, rinfo) => {
      const m = sip.parse(buf.toString('latin1'));
      if (!m?.method) return;
      const reply = (status: number, reason: string) => pbx!.send(sip.stringify(sip.makeResponse(m, status, reason)), rinfo.port, rinfo.address);
      if (m.method === 'CANCEL') {
        reply(200, 'OK');
        // The 487 goes to the INVITE's Via (the dead instance), later.
        setTimeout(() => (sent487At = performance.now()), DELAY_487_MS);
      } else if (m.method === 'ACK') {
        acks.push({ at: performance.now(), branch: m.headers.via?.[0]?.params['branch'], cseq: `${m.headers.cseq?.seq} ${m.headers.cseq?.method}` });
      } else if (m.method === 'BYE') reply(481, 'Call/Transaction Does Not Exist');
    });
    const outcome = await stack.cancelStored!(inv, 'Q.850;cause=41');
    expect(outcome).toEqual({ cancel: 200, ackSent: true, bye: 481 });
    // Bounded wait: the ACK is repeated over about 7 T1 (Timer G's doubling); the 487 came at 4 T1.
    await waitFor(() => sent487At !== undefined && acks.some((a) => a.at >= sent487At!), { what: 'an ACK after the late 487', timeoutMs: 5000 });
    // RFC 3261 section 17.1.1.3: every one is the ACK of the INVITE's own transaction.
    expect(new Set(acks.map((a) => `${String(a.branch)} ${a.cseq}`))).toEqual(new Set(['z9hG4bKdead1 1 ACK']));
  });
});
