/**
 * Digest authentication of the PBX's INVITEs (outbound calls), through the real `sip` parser:
 * the Authorization header is parsed by `sip` and turned back into text by `headerText`, as the
 * stack does. Replay: nonce bound to source and expiry, uri = Request-URI, nc per nonce, qop.
 */
import { createHash } from 'node:crypto';
import sip from 'sip';
import { describe, expect, it } from 'vitest';
import { CallAdmission } from '../../src/bridge/admission.js';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { headerText } from '../../src/sip/headers.js';
import { DigestAuthenticator } from '../../src/sip/uas-auth.js';
import { FailureLimiter } from '../../src/util/failure-limiter.js';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
const URI = 'sip:9+5511987654321@bridge.test';
const PBX = '10.0.0.5';

function nonceOf(challenge: string): string {
  return /nonce="([^"]+)"/.exec(challenge)![1]!;
}

/** The Authorization header a PBX would send, as the stack hands it over after `sip` parsed it. */
function authorization(o: { nonce: string; uri?: string; pw?: string; nc?: string; qop?: string | null; user?: string }): string {
  const uri = o.uri ?? URI;
  const nc = o.nc ?? '00000001';
  const ha1 = md5(`${o.user ?? 'pbx'}:wa:${o.pw ?? 'pw'}`);
  const ha2 = md5(`INVITE:${uri}`);
  const qop = o.qop === undefined ? 'auth' : o.qop;
  const response = qop ? md5(`${ha1}:${o.nonce}:${nc}:c0ffee:${qop}:${ha2}`) : md5(`${ha1}:${o.nonce}:${ha2}`);
  const params = [`username="${o.user ?? 'pbx'}"`, 'realm="wa"', `nonce="${o.nonce}"`, `uri="${uri}"`, `response="${response}"`, 'algorithm=MD5'];
  if (qop) params.push(`qop=${qop}`, `nc=${nc}`, 'cnonce="c0ffee"');
  const wire = `INVITE ${URI} SIP/2.0\r\nAuthorization: Digest ${params.join(', ')}\r\n\r\n`;
  return headerText(sip.parse(wire)!, 'authorization')!;
}

describe('headerText on a parsed Authorization header', () => {
  it('gives back the Digest credentials, not a name-addr', () => {
    const text = authorization({ nonce: 'n1' });
    expect(text).toMatch(/^Digest /);
    expect(text).toContain(`uri="${URI}"`);
    expect(text).toContain('nc=00000001');
  });
});

describe('DigestAuthenticator', () => {
  const make = (t = { now: 1_000_000 }) => ({ t, d: new DigestAuthenticator({ username: 'pbx', password: 'pw', realm: 'wa' }, 60_000, () => t.now) });
  const rq = (authz: string | undefined, over: Partial<{ requestUri: string; source: string }> = {}) => ({
    authorization: authz,
    method: 'INVITE',
    requestUri: URI,
    source: PBX,
    ...over,
  });

  it('accepts a correct answer once; the same nc again is a replay, a higher nc is fine', () => {
    const { d } = make();
    const nonce = nonceOf(d.challenge(PBX));
    expect(d.verify(rq(authorization({ nonce })))).toEqual({ ok: true });
    expect(d.verify(rq(authorization({ nonce })))).toMatchObject({ ok: false, reason: expect.stringContaining('replayed') });
    expect(d.verify(rq(authorization({ nonce, nc: '00000002' })))).toEqual({ ok: true });
  });

  it('refuses the answer from another source, for another number, without qop, or with a wrong password', () => {
    const { d } = make();
    const nonce = nonceOf(d.challenge(PBX));
    expect(d.verify(rq(authorization({ nonce }), { source: '10.0.0.6' }))).toMatchObject({ ok: false, reason: 'nonce not issued to this source' });
    const other = 'sip:9+4915112345678@bridge.test';
    expect(d.verify(rq(authorization({ nonce }), { requestUri: other }))).toMatchObject({ ok: false, reason: expect.stringContaining('not the Request-URI') });
    expect(d.verify(rq(authorization({ nonce, qop: null })))).toMatchObject({ ok: false, reason: expect.stringContaining('qop=auth') });
    expect(d.verify(rq(authorization({ nonce, pw: 'guess' })))).toMatchObject({ ok: false, reason: 'wrong password' });
    // None of the failures consumed nc 1: the PBX's genuine first answer still works.
    expect(d.verify(rq(authorization({ nonce })))).toEqual({ ok: true });
  });

  it('expires nonces (stale) and refuses forged ones', () => {
    const { t, d } = make();
    const nonce = nonceOf(d.challenge(PBX));
    t.now += 61_000;
    expect(d.verify(rq(authorization({ nonce })))).toMatchObject({ ok: false, stale: true });
    const [exp] = nonce.split('.');
    expect(d.verify(rq(authorization({ nonce: `${exp}.00112233445566778899aabbccddeeff` })))).toMatchObject({ ok: false, reason: 'nonce not issued to this source' });
    expect(d.verify(rq(undefined))).toMatchObject({ ok: false, reason: 'no credentials' });
  });
});

describe('FailureLimiter', () => {
  it('blocks a source after maxFailures in the window, for blockMs', () => {
    let t = 0;
    const f = new FailureLimiter(3, 60_000, 300_000, () => t);
    f.fail('a');
    f.fail('a');
    expect(f.blocked('a')).toBe(false);
    f.fail('a');
    expect(f.blocked('a')).toBe(true);
    expect(f.blocked('b')).toBe(false);
    t += 300_001;
    expect(f.blocked('a')).toBe(false);
  });
});

describe('CallAdmission', () => {
  const inv = (authz: string | undefined, transport: 'udp' | 'tcp' = 'udp', address = PBX) => ({
    source: { address, port: 5060, transport },
    requestUri: URI,
    header: (n: string) => (n === 'authorization' ? authz : undefined),
  });

  it('with requireTcp, an INVITE over UDP from an allowed address is refused', () => {
    const a = new CallAdmission({ allowFrom: ['10.0.0.0/24'], requireTcp: true });
    expect(a.check(inv(undefined, 'udp'))).toMatchObject({ ok: false, status: 403, warning: 'outbound calls are taken only over TCP' });
    expect(a.check(inv(undefined, 'tcp'))).toEqual({ ok: true });
  });

  it('blocks a guessing source after maxFailures, while another source is still challenged', () => {
    const a = new CallAdmission({ allowFrom: [], auth: { username: 'pbx', password: 'pw', realm: 'wa', maxFailures: 3 } });
    const first = a.check(inv(undefined));
    expect(first).toMatchObject({ ok: false, status: 401 });
    const nonce = nonceOf((first as { challenge: string }).challenge);
    for (let i = 0; i < 3; i++) expect(a.check(inv(authorization({ nonce, pw: `guess${i}` })))).toMatchObject({ status: 403, reason: expect.stringContaining('wrong password') });
    // Even the right password is refused now: the source is blocked.
    expect(a.check(inv(authorization({ nonce })))).toMatchObject({ status: 403, reason: expect.stringContaining('blocked') });
    expect(a.check(inv(undefined, 'udp', '10.0.0.9'))).toMatchObject({ status: 401 });
  });

  it('matches CIDRs exactly', () => {
    const a = new CallAdmission({ allowFrom: ['10.0.0.5/32', '192.168.0.0/16'] });
    expect(['10.0.0.5', '::ffff:10.0.0.5', '192.168.200.1'].map((x) => a.allowed(x))).toEqual([true, true, true]);
    expect(['10.0.0.6', '8.8.8.8', '192.169.0.1', 'not-an-ip'].map((x) => a.allowed(x))).toEqual([false, false, false, false]);
  });
});

describe('allow-list CIDRs in the config', () => {
  it.each(['10.0.0.5/33', '300.1.1.1', '10.0.0.256/24', '10.0.0/24', '10.0.0.5/'])('"%s" is a ConfigError naming the entry', (bad) => {
    let err: unknown;
    try {
      buildConfig({ outbound: { enabled: true, allowFrom: ['127.0.0.1', bad] } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([`outbound.allowFrom.1: "${bad}" is not an IPv4 address or CIDR (a.b.c.d or a.b.c.d/0-32)`]);
  });

  it('accepts good entries and a caller rule source', () => {
    const c = buildConfig({ outbound: { allowFrom: ['10.0.0.0/8', '192.0.2.1'], requireTcp: true, callerRules: [{ source: '10.1.0.0/16', phoneNumberId: '1' }] } });
    expect(c.outbound.allowFrom).toEqual(['10.0.0.0/8', '192.0.2.1']);
    expect(c.outbound.requireTcp).toBe(true);
  });
});
