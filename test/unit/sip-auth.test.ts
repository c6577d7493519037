import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type sip from 'sip';
import { DigestClient } from '../../src/sip/auth.js';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

function invite(seq: number): sip.Message {
  return { method: 'INVITE', uri: 'sip:1001@pbx.test', headers: { cseq: { seq, method: 'INVITE' } }, content: '' };
}

function challenge(status: 401 | 407, nonce: string): sip.Message {
  const h = { scheme: 'Digest', realm: '"pbx.test"', nonce: `"${nonce}"` };
  return { status, reason: '', headers: status === 401 ? { 'www-authenticate': [h] } : { 'proxy-authenticate': [h] } };
}

describe('DigestClient (RFC 3261 section 22.2, RFC 2617)', () => {
  it('answers a 401 with a correct Authorization', () => {
    const c = new DigestClient({ username: 'alice', password: 's3cret' });
    const rq = invite(2);
    expect(c.authorize(rq, challenge(401, 'n1'))).toBe(true);
    const a = rq.headers.authorization![0]!;
    const expected = md5(`${md5('alice:pbx.test:s3cret')}:n1:${md5('INVITE:sip:1001@pbx.test')}`);
    expect(a['response']).toBe(`"${expected}"`);
    expect(a['username']).toBe('"alice"');
    expect(c.current().authorization).toEqual(rq.headers.authorization);
  });

  it('answers a 407 with Proxy-Authorization', () => {
    const c = new DigestClient({ username: 'alice', password: 's3cret' });
    const rq = invite(2);
    expect(c.authorize(rq, challenge(407, 'n1'))).toBe(true);
    expect(rq.headers['proxy-authorization']).toHaveLength(1);
  });

  it('answers the same challenge only once', () => {
    const c = new DigestClient({ username: 'alice', password: 'wrong' });
    expect(c.authorize(invite(2), challenge(401, 'n1'))).toBe(true);
    expect(c.authorize(invite(3), challenge(401, 'n1'))).toBe(false);
    expect(c.authorize(invite(3), challenge(401, 'n2'))).toBe(true);
  });

  it('does not retry without credentials or without a Digest challenge', () => {
    expect(new DigestClient(undefined).authorize(invite(2), challenge(401, 'n1'))).toBe(false);
    const c = new DigestClient({ username: 'a', password: 'b' });
    expect(c.authorize(invite(2), { status: 401, reason: '', headers: {} })).toBe(false);
  });
});
