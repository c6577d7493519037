import { describe, expect, it } from 'vitest';
import sip from 'sip';
import {
  formatNameAddr,
  fromWire,
  headerText,
  isReservedHeader,
  parseNameAddr,
  quoteDisplayName,
  tagOf,
  toWire,
  unquoteDisplayName,
} from '../../src/sip/headers.js';

describe('display names (RFC 3261 section 25.1)', () => {
  it.each([
    ['Ana', '"Ana"'],
    ['Ana "The Boss"', '"Ana \\"The Boss\\""'],
    ['back\\slash', '"back\\\\slash"'],
    ['\\"', '"\\\\\\""'],
    ['', '""'],
    ['line\r\nbreak', '"line break"'],
  ])('quotes %j as %s', (name, quoted) => {
    expect(quoteDisplayName(name)).toBe(quoted);
  });

  it.each(['Ana', 'Ana "The Boss"', 'a\\b', 'x\\"y', 'Zoë 😀'])('round-trips %j', (name) => {
    expect(unquoteDisplayName(quoteDisplayName(name))).toBe(name);
  });

  it('leaves a token display name as is', () => {
    expect(unquoteDisplayName('Alice Smith')).toBe('Alice Smith');
  });
});

describe('formatNameAddr', () => {
  it('always uses the <> form, tag after it', () => {
    expect(formatNameAddr({ uri: 'sip:1001@pbx;transport=tcp' }, 'abc')).toBe('<sip:1001@pbx;transport=tcp>;tag=abc');
    expect(formatNameAddr({ uri: 'sip:a@b', displayName: 'A "B"' })).toBe('"A \\"B\\"" <sip:a@b>');
  });

  it('encodes UTF-8 as bytes for the latin1 wire strings of `sip`', () => {
    const wire = formatNameAddr({ uri: 'sip:a@b', displayName: 'José' });
    expect(Buffer.from(wire, 'latin1').toString('utf8')).toBe('"José" <sip:a@b>');
    expect(fromWire(toWire('Zoë 😀'))).toBe('Zoë 😀');
  });
});

describe('parsing what `sip` parsed', () => {
  const raw = [
    'INVITE sip:1001@127.0.0.1 SIP/2.0',
    'Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK1',
    `From: ${toWire('"Zoë \\"Z\\" \\\\ 1"')} <sip:7001@127.0.0.2>;tag=xyz`,
    'To: <sip:1001@127.0.0.1>',
    'Call-ID: c1',
    'CSeq: 7 INVITE',
    'Contact: <sip:7001@127.0.0.2:5070>, <sip:other@x>',
    'X-Pbx-Ref: ref-42',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const msg = sip.parse(raw)!;

  it('reads the display name back, unescaped and decoded', () => {
    expect(parseNameAddr(msg.headers.from)).toEqual({ uri: 'sip:7001@127.0.0.2', displayName: 'Zoë "Z" \\ 1' });
    expect(parseNameAddr(msg.headers.to)).toEqual({ uri: 'sip:1001@127.0.0.1' });
  });

  it('reads tags', () => {
    expect(tagOf(msg.headers.from)).toBe('xyz');
    expect(tagOf(msg.headers.to)).toBeUndefined();
    expect(tagOf('<sip:a@b>;tag=t1')).toBe('t1');
  });

  it('gives headers back as text, case-insensitively', () => {
    expect(headerText(msg, 'x-pbx-ref')).toBe('ref-42');
    expect(headerText(msg, 'X-PBX-REF')).toBe('ref-42');
    expect(headerText(msg, 'CSeq')).toBe('7 INVITE');
    expect(headerText(msg, 'Contact')).toBe('<sip:7001@127.0.0.2:5070>, <sip:other@x>');
    expect(headerText(msg, 'Via')).toBe('SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK1');
    expect(headerText(msg, 'X-Missing')).toBeUndefined();
  });
});

describe('reserved headers', () => {
  it.each(['Via', 'call-id', 'CSeq', 'Content-Length', 'Contact', 'f'])('%s may not be set as an extra header', (h) => {
    expect(isReservedHeader(h)).toBe(true);
  });
  it('X- headers may', () => {
    expect(isReservedHeader('X-WA-Call-Id')).toBe(false);
  });
});
