import { describe, expect, it } from 'vitest';
import { sign, sign360dialog, verifyRequestSignature, verifySignature } from '../../src/whatsapp/signature.js';

const secret = 'app-secret-123';
const body = Buffer.from('{"object":"whatsapp_business_account","entry":[]}');
// Computed independently: printf '%s' "$body" | openssl dgst -sha256 -hmac app-secret-123
const knownHex = '20e391a99a86fc5adf7e3a453236d20c906360291977896cf2f671e03bb95703';

describe('webhook signature (X-Hub-Signature-256)', () => {
  it('sign produces sha256=<64 hex>', () => {
    expect(sign(body, secret)).toMatch(/^sha256=[0-9a-f]{64}$/);
  });

  it('matches an HMAC computed outside node', () => {
    expect(sign(body, secret)).toBe(`sha256=${knownHex}`);
  });

  it('accepts a good signature, also upper-case hex', () => {
    expect(verifySignature(body, sign(body, secret), secret)).toBe(true);
    expect(verifySignature(body, `sha256=${knownHex.toUpperCase()}`, secret)).toBe(true);
  });

  it('rejects a signature of another body or another secret', () => {
    expect(verifySignature(Buffer.from(`${body.toString()} `), sign(body, secret), secret)).toBe(false);
    expect(verifySignature(body, sign(body, 'other'), secret)).toBe(false);
  });

  it('rejects missing, empty and malformed headers', () => {
    expect(verifySignature(body, undefined, secret)).toBe(false);
    expect(verifySignature(body, '', secret)).toBe(false);
    expect(verifySignature(body, knownHex, secret)).toBe(false); // no sha256= prefix
    expect(verifySignature(body, `sha1=${knownHex}`, secret)).toBe(false);
    expect(verifySignature(body, `sha256=${'z'.repeat(64)}`, secret)).toBe(false);
  });

  it('rejects wrong lengths without throwing', () => {
    expect(verifySignature(body, `sha256=${knownHex.slice(0, 62)}`, secret)).toBe(false);
    expect(verifySignature(body, `sha256=${knownHex}00`, secret)).toBe(false);
    expect(verifySignature(body, 'sha256=', secret)).toBe(false);
  });

  it('rejects everything when the secret is empty', () => {
    expect(verifySignature(body, sign(body, ''), '')).toBe(false);
  });
});

describe('360dialog x-360dialog-signature', () => {
  it('is the bare hex HMAC and verifies with provider 360dialog', () => {
    const h = sign360dialog(body, secret);
    expect(h).toBe(knownHex);
    expect(verifySignature(body, h, secret, { provider: '360dialog' })).toBe(true);
    expect(verifySignature(body, `sha256=${h}`, secret, { provider: '360dialog' })).toBe(true);
    expect(verifySignature(body, h, 'other', { provider: '360dialog' })).toBe(false);
    expect(verifySignature(body, undefined, secret, { provider: '360dialog' })).toBe(false);
    // a bare hex is not a valid Meta header
    expect(verifySignature(body, h, secret)).toBe(false);
  });

  it('verifyRequestSignature picks the provider header', () => {
    expect(verifyRequestSignature(body, { 'x-hub-signature-256': sign(body, secret) }, secret)).toBe(true);
    expect(verifyRequestSignature(body, { 'x-360dialog-signature': knownHex }, secret, '360dialog')).toBe(true);
    expect(verifyRequestSignature(body, { 'x-360dialog-signature': knownHex }, secret, 'meta')).toBe(false);
    expect(verifyRequestSignature(body, { 'x-hub-signature-256': [sign(body, secret)] }, secret)).toBe(false);
  });
});
