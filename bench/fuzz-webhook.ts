/**
 * The full seeded webhook fuzz: ≥ 100,000 hostile webhooks through the real parser, the real HTTP
 * route and, for every user-initiated connect that survives, the real bridge and SIP stack to a
 * capturing UDP "PBX" (see test/fuzz/webhook-fuzz.ts for what is generated and checked).
 *
 *   npx tsx bench/fuzz-webhook.ts [cases=100000] [seed=20261201] [budgetMs=5]
 *
 * Prints the report; exits 1 on any violation (crash, 5xx, a non-strict value toward SIP, an
 * injected INVITE line) or a message over the parser budget. The parser's cost is given as a
 * ratio against V8's JSON.parse of the same bytes, measured in the same run.
 */
import { runWebhookFuzz } from '../test/fuzz/webhook-fuzz.js';

const [cases = 100_000, seed = 20261201, budgetMs = 5] = process.argv.slice(2).map(Number);
const started = performance.now();
const r = await runWebhookFuzz({
  seed,
  cases,
  budgetMs,
  onProgress: (n) => {
    if (n % 10_000 === 0 && n > 0) process.stderr.write(`  ${n} cases, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  },
});
const summary = {
  seed,
  cases: r.cases,
  eventsParsed: r.events,
  invitesChecked: r.invitesChecked,
  httpStatuses: r.statuses,
  parserMsP99: +r.parseMsP99.toFixed(3),
  parserMsMax: +r.parseMsMax.toFixed(3),
  parserVsJsonParse: +(r.parseMsTotal / Math.max(r.jsonParseMsTotal, 1e-9)).toFixed(2),
  overBudget: r.overBudget.length,
  violations: r.violations.length,
  heapMB: { start: r.heapStartMB, peak: r.heapPeakMB, end: r.heapEndMB },
  seconds: +r.seconds.toFixed(1),
};
console.log(JSON.stringify(summary, null, 2));
for (const line of [...r.violations, ...r.overBudget].slice(0, 20)) console.log(`  ${line}`);
process.exit(r.violations.length || r.overBudget.length ? 1 : 0);
