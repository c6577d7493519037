import { describe, expect, it } from 'vitest';
import { generateCase, inviteViolations, runWebhookFuzz, seededRandom } from './webhook-fuzz.js';

/**
 * A short, fixed slice of the seeded webhook fuzz (the full ≥100,000-case run is
 * `npx tsx bench/fuzz-webhook.ts`). Same seed every run: a failure names the case to replay.
 */
describe('webhook fuzz (fixed slice)', () => {
  it('the generator is seeded and repeatable', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    for (let i = 0; i < 50; i++) expect(generateCase(a, i).raw.equals(generateCase(b, i).raw)).toBe(true);
  });

  it('the INVITE check catches an injected header and a bare LF (it can fail)', () => {
    expect(inviteViolations('INVITE sip:a@b SIP/2.0\r\nVia: x\r\nX-Injected: 1\r\n\r\n')).toEqual([expect.stringContaining('injected header')]);
    expect(inviteViolations('INVITE sip:a@b SIP/2.0\r\nFrom: "A\nB" <sip:x@y>\r\n\r\n').length).toBeGreaterThan(0);
    expect(inviteViolations('INVITE sip:a@b SIP/2.0\r\nVia: x\r\nFrom: "Ana" <sip:+55@b>\r\n\r\nv=0\r\n')).toEqual([]);
  });

  it('1,000 hostile webhooks: no crash, no 5xx, strict values only, clean INVITEs, parser within budget, bounded heap', async () => {
    const r = await runWebhookFuzz({ seed: 20261201, cases: 1000, budgetMs: 5 });
    expect(r.violations, r.violations.slice(0, 5).join('\n')).toEqual([]);
    expect(r.overBudget, r.overBudget.slice(0, 5).join('\n')).toEqual([]);
    expect(r.cases).toBe(1000);
    // The slice must reach the SIP side and both outcomes of the route, or it tests nothing.
    expect(r.invitesChecked).toBeGreaterThan(40);
    expect(r.statuses[200]).toBeGreaterThan(500);
    expect(r.statuses[400]).toBeGreaterThan(0);
    expect(r.heapPeakMB - r.heapStartMB).toBeLessThan(300);
  }, 120_000);
});
