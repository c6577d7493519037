import { describe, expect, it } from 'vitest';
import { defaultReinviteAnswer } from '../../src/sip/sdp-answer.js';

const local = ['v=0', 'o=- 1000 4 IN IP4 10.0.0.1', 's=-', 'c=IN IP4 10.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');
const offer = (dir?: string): string =>
  ['v=0', 'o=pbx 1 2 IN IP4 10.0.0.2', 's=-', 'c=IN IP4 10.0.0.2', 't=0 0', 'm=audio 5000 RTP/AVP 0', ...(dir ? [`a=${dir}`] : []), ''].join('\r\n');

describe('defaultReinviteAnswer (RFC 3264 sections 6.1, 8)', () => {
  it.each([
    ['sendonly', 'recvonly'],
    ['recvonly', 'sendonly'],
    ['inactive', 'inactive'],
    ['sendrecv', 'sendrecv'],
    [undefined, 'sendrecv'],
  ])('answers %s with %s and bumps the o= version', (dir, expected) => {
    const answer = defaultReinviteAnswer(local, offer(dir));
    expect(answer).toContain(`a=${expected}`);
    expect(answer).toContain('o=- 1000 5 IN IP4 10.0.0.1');
    expect(answer).toContain('m=audio 40000 RTP/AVP 0');
  });

  it('offerless re-INVITE: our last SDP, version bumped', () => {
    const answer = defaultReinviteAnswer(local, undefined);
    expect(answer).toContain('o=- 1000 5 ');
    expect(answer).toContain('a=sendrecv');
  });
});
