import { describe, expect, it } from 'vitest';
import { defaultReinviteAnswer, sdpSendsAudio } from '../../src/sip/sdp-answer.js';

const local = ['v=0', 'o=- 1000 4 IN IP4 10.0.0.1', 's=-', 'c=IN IP4 10.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');
const offer = (dir?: string): string =>
  ['v=0', 'o=pbx 1 2 IN IP4 10.0.0.2', 's=-', 'c=IN IP4 10.0.0.2', 't=0 0', 'm=audio 5000 RTP/AVP 0', ...(dir ? [`a=${dir}`] : []), ''].join('\r\n');

describe('sdpSendsAudio: will the PBX send audio (hold detection)', () => {
  it.each([
    ['sendrecv', true],
    ['sendonly', true], // hold with music on hold
    ['recvonly', false],
    ['inactive', false], // hold without music
    [undefined, true],
  ])('a=%s -> %s', (dir, expected) => {
    expect(sdpSendsAudio(offer(dir))).toBe(expected);
  });

  it('a session-level direction applies when the stream has none; the stream wins when it has one', () => {
    const s = (session: string, media?: string) =>
      ['v=0', 'o=pbx 1 2 IN IP4 10.0.0.2', 's=-', 'c=IN IP4 10.0.0.2', 't=0 0', `a=${session}`, 'm=audio 5000 RTP/AVP 0', ...(media ? [`a=${media}`] : []), ''].join('\r\n');
    expect(sdpSendsAudio(s('inactive'))).toBe(false);
    expect(sdpSendsAudio(s('inactive', 'sendrecv'))).toBe(true);
  });

  it('RFC 2543 hold (c=0.0.0.0) and a refused stream (port 0) send nothing; no audio stream says nothing', () => {
    expect(sdpSendsAudio(offer().replace('c=IN IP4 10.0.0.2', 'c=IN IP4 0.0.0.0'))).toBe(false);
    expect(sdpSendsAudio(offer().replace('m=audio 5000', 'm=audio 0'))).toBe(false);
    expect(sdpSendsAudio(offer().replace('m=audio 5000 RTP/AVP 0', 'm=video 5000 RTP/AVP 96'))).toBeUndefined();
  });
});

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
