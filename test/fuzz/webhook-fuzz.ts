/**
 * Seeded webhook fuzz, shared by the test slice (test/fuzz/webhook.fuzz.test.ts) and the full run
 * (bench/fuzz-webhook.ts, ≥ 100,000 cases).
 *
 * Each case starts from a valid WhatsApp webhook (the simulator's builders) and mutates it: CR/LF,
 * NUL, ESC, DEL, bidi and separator characters, header-injection text (`\r\nX-Injected: 1`,
 * `Alert-Info: …;info=alert-autoanswer`), wrong types, huge strings, huge arrays, deep nesting,
 * truncated or non-JSON bodies. Every case goes
 *   1. through the real parser (`parseWebhook`), timed: min of 3 runs when over budget, so a GC
 *      pause or a busy core does not count against the parser;
 *   2. through the real HTTP route (fastify inject, HMAC-signed): the answer must be 200, 400 or
 *      413, never 5xx;
 *   3. every event that comes out must carry only strict-pattern values toward SIP;
 *   4. every user-initiated connect goes through the real bridge and SIP stack (fake media and
 *      Graph) to a capturing UDP listener that answers 486: the INVITE's wire text is checked for
 *      injected lines, bare CR or LF, and header lines that are not `Name: value`.
 * Memory is sampled (heapUsed) to show it stays bounded.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Bridge } from '../../src/bridge/bridge.js';
import { buildConfig } from '../../src/config/load.js';
import { createHttpServer } from '../../src/http/server.js';
import { createSipStack } from '../../src/sip/stack.js';
import type { SipStack } from '../../src/sip/types.js';
import { silentLogger } from '../../src/util/log.js';
import { GRAPH_ID, WA_CALL_ID, WA_NUMBER, isPrintableText } from '../../src/whatsapp/patterns.js';
import { sign } from '../../src/whatsapp/signature.js';
import type { WaConnectEvent, WaEvent } from '../../src/whatsapp/types.js';
import { parseWebhook } from '../../src/whatsapp/webhook.js';
import { WebhookAuth } from '../../src/whatsapp/webhook-auth.js';
import * as build from '../../src/simulator/webhook-sender.js';
import { FakeMedia, FakeWhatsApp } from '../support/fakes.js';
import { seededRandom } from './seeded.js';

export { seededRandom };



const INJECT = '\r\nX-Injected: 1\r\nAlert-Info: <http://x>;info=alert-autoanswer';
const HOSTILE: readonly unknown[] = [
  INJECT,
  `wacid.A${INJECT}`,
  `5511987654321${INJECT}`,
  'Ana\nX-Injected: 1',
  'Ana\rX-Injected: 1',
  '\u0000',
  'A\u001b[2J',
  'DEL\u007f',
  'a\u2028b\u2029',
  'evil\u202Etxt',
  '\uD800',
  '"quoted" \\ "back"',
  '<sip:evil@example.com>',
  '%0d%0aX-Injected: 1',
  '١٢٣٤',
  '１２３',
  '',
  ' ',
  '+15551234567',
  '__proto__',
  null,
  0,
  -1,
  1e308,
  true,
  [],
  {},
  [1, 'x', null],
  { a: { b: INJECT } },
];

type Json = Record<string, unknown> | unknown[];

function pick<T>(rng: () => number, list: readonly T[]): T {
  return list[Math.floor(rng() * list.length)]!;
}

function template(rng: () => number, i: number): unknown {
  const target = { phoneNumberId: '436666719526789', businessNumber: '13175551399' };
  const callId = `wacid.F${i.toString(36)}`;
  const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n';
  switch (Math.floor(rng() * 6)) {
    case 0:
    case 1:
      return build.buildUserConnectWebhook({ ...target, callId, userWaId: '5511987654321', userName: 'Ana Souza', sdp });
    case 2:
      return build.buildBusinessConnectWebhook({ ...target, callId, userWaId: '12185552828', sdp, bizOpaqueCallbackData: 'wa-sip-bridge:x' } as never);
    case 3:
      return build.buildTerminateWebhook({ ...target, callId, userWaId: '5511987654321', status: 'FAILED', errors: [{ code: 138021, message: 'Media receive timeout' }] } as never);
    case 4:
      return build.buildStatusWebhook({ ...target, callId, userWaId: '12185552828', status: 'RINGING' } as never);
    default:
      return build.buildPermissionReplyWebhook({ ...target, userWaId: '5511987654321', response: 'accept', isPermanent: false } as never);
  }
}

/** Walk to a random node; returns its parent and key (undefined at the root). */
function randomSpot(rng: () => number, root: Json, stopP: number): { parent: Json; key: string | number } | undefined {
  let parent: Json | undefined;
  let key: string | number | undefined;
  let node: unknown = root;
  for (let depth = 0; depth < 12; depth++) {
    if (typeof node !== 'object' || node === null) break;
    const keys: (string | number)[] = Array.isArray(node) ? node.map((_, k) => k) : Object.keys(node);
    if (keys.length === 0 || (depth > 0 && rng() < stopP)) break;
    parent = node as Json;
    key = pick(rng, keys);
    node = (node as Record<string | number, unknown>)[key];
  }
  return parent === undefined || key === undefined ? undefined : { parent, key };
}

function mutateValue(rng: () => number, v: unknown): unknown {
  const r = rng();
  if (typeof v === 'string' && r < 0.4) {
    const at = Math.floor(rng() * (v.length + 1));
    return v.slice(0, at) + String(pick(rng, HOSTILE.filter((h) => typeof h === 'string'))) + v.slice(at);
  }
  if (Array.isArray(v) && r < 0.55) {
    // Huge, but within ~2 MB of JSON for flat elements (the route's limit is 1 MiB: both sides
    // of it get tried) and 200 KB for nested ones (deep JSON costs V8 ~1 µs per level).
    const elLen = v.length ? JSON.stringify(v[0] ?? 0).length : 1;
    const room = elLen < 200 ? 2_000_000 : 200_000;
    const n = Math.min(pick(rng, [2, 100, 1000, 20_000]), Math.max(1, Math.floor(room / elLen)));
    return Array.from({ length: n }, (_, k) => (v.length ? v[k % v.length] : k));
  }
  if (r < 0.6) return 'x'.repeat(pick(rng, [300, 5000, 70_000]));
  if (r < 0.65) {
    let deep: unknown = 'bottom';
    for (let k = 0; k < 500; k++) deep = [deep];
    return deep;
  }
  // A copy: later mutations must never reach into the shared catalogue (cycles, lost replay).
  return structuredClone(pick(rng, HOSTILE));
}

export interface FuzzCase {
  raw: Buffer;
  /** What was done, for a failure message. */
  what: string;
}

export function generateCase(rng: () => number, i: number): FuzzCase {
  const r = rng();
  if (r < 0.02) return { raw: Buffer.from(Array.from({ length: 200 }, () => Math.floor(rng() * 256))), what: 'random bytes' };
  // Builders stamp the time and random message ids: fixed here, so a seed replays exactly.
  const text = JSON.stringify(template(rng, i))
    .replace(/"timestamp":"\d+"/g, '"timestamp":"1764000000"')
    .replace(/wamid\.[A-Za-z0-9_=-]+/g, 'wamid.FIXED');
  if (r < 0.05) return { raw: Buffer.from(text.slice(0, 10 + Math.floor(rng() * 400))), what: 'truncated JSON' };
  const body = JSON.parse(text) as Json;
  // A third of user connects get one targeted hit on a field that travels toward SIP, so many
  // cases reach the INVITE with hostile text in a place the parser must clean or refuse.
  const value = (body as { entry?: { changes?: { value?: any }[] }[] }).entry?.[0]?.changes?.[0]?.value;
  if (value?.calls?.[0]?.direction === 'USER_INITIATED' && rng() < 0.35) {
    const spots = (
      [
        [value.contacts?.[0]?.profile, 'name'],
        [value.calls[0].session, 'sdp'],
        [value.metadata, 'display_phone_number'],
        [value.calls[0], 'biz_opaque_callback_data'],
        [value.calls[0], 'to'],
        [value.contacts?.[0], 'wa_id'],
      ] as [Record<string, unknown> | undefined, string][]
    ).filter((x): x is [Record<string, unknown>, string] => typeof x[0] === 'object' && x[0] !== null);
    const [o, k] = pick(rng, spots);
    o[k] = mutateValue(rng, o[k] ?? 'x');
    return { raw: Buffer.from(JSON.stringify(body)), what: `targeted ${k}` };
  }
  const steps: string[] = [];
  const n = 1 + Math.floor(rng() * 3);
  // Half the cases change leaves only (an event often survives and travels on toward SIP), half
  // hit any level of the envelope.
  const stopP = rng() < 0.5 ? 0 : 0.25;
  for (let k = 0; k < n; k++) {
    const spot = randomSpot(rng, body, stopP);
    if (!spot) continue;
    const { parent, key } = spot;
    const holder = parent as Record<string | number, unknown>;
    const before = holder[key];
    holder[key] = mutateValue(rng, before);
    steps.push(String(key));
    // The copies of a multiplied array share their elements: a later change to one would be
    // multiplied too, past any size. One multiplication per case, and it comes last.
    if (Array.isArray(before) && Array.isArray(holder[key]) && (holder[key] as unknown[]).length > before.length) break;
  }
  let out: string;
  try {
    out = JSON.stringify(body);
  } catch {
    out = 'x'.repeat(5_000_000); // beyond V8's string limit: stands for "over 4 MB" below
  }
  // Keep bodies near the route's 1 MiB limit: past 4 MB they stand for "too big" as a flat body.
  if (out.length > 4_000_000) return { raw: Buffer.from(`{"object":"whatsapp_business_account","entry":[${'0,'.repeat(1_000_000)}0]}`), what: `mutated ${steps.join(', ')} (over 4 MB: flat 2 MB body)` };
  return { raw: Buffer.from(out), what: `mutated ${steps.join(', ')}` };
}

/** What may travel toward SIP: a violation here is a parser bug. */
export function eventViolations(ev: WaEvent): string[] {
  const bad: string[] = [];
  if (!GRAPH_ID.test(ev.phoneNumberId)) bad.push(`phoneNumberId ${JSON.stringify(ev.phoneNumberId)}`);
  if (ev.businessNumber !== '' && !WA_NUMBER.test(ev.businessNumber)) bad.push(`businessNumber ${JSON.stringify(ev.businessNumber)}`);
  if ('callId' in ev && !WA_CALL_ID.test(ev.callId)) bad.push(`callId ${JSON.stringify(ev.callId)}`);
  if ('userWaId' in ev && !WA_NUMBER.test(ev.userWaId)) bad.push(`userWaId ${JSON.stringify(ev.userWaId)}`);
  if (ev.kind === 'connect' && ev.userName !== undefined && !isPrintableText(ev.userName, 256)) bad.push(`userName ${JSON.stringify(ev.userName)}`);
  return bad;
}

/** Problems in one INVITE's wire text: injected headers, bare CR/LF, lines that are not headers. */
export function inviteViolations(text: string): string[] {
  const bad: string[] = [];
  const headEnd = text.indexOf('\r\n\r\n');
  const head = headEnd >= 0 ? text.slice(0, headEnd) : text;
  if (/\r(?!\n)|(?<!\r)\n/.test(head)) bad.push('bare CR or LF in the header block');
  const lines = head.split('\r\n');
  for (const line of lines.slice(1)) {
    if (!/^[!#-'*+.0-9A-Z^-z|~-]+[ \t]*:/.test(line)) bad.push(`not a header line: ${JSON.stringify(line.slice(0, 80))}`);
    if (/^(x-injected|alert-info)\s*:/i.test(line)) bad.push(`injected header: ${JSON.stringify(line.slice(0, 80))}`);
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(line)) bad.push(`control character in ${JSON.stringify(line.slice(0, 40))}`);
  }
  return bad;
}

/** A UDP "PBX" that records every INVITE and answers 486, so each call ends by itself. */
async function startCapturingPbx(host: string): Promise<{ socket: Socket; port: number; invites: Map<string, string> }> {
  const socket = createSocket('udp4');
  const invites = new Map<string, string>();
  socket.on('message', (msg, rinfo) => {
    const text = msg.toString('latin1');
    if (!text.startsWith('INVITE ')) return;
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    const lines = head.split('\r\n');
    const get = (name: string) => lines.filter((l) => l.toLowerCase().startsWith(`${name}:`));
    const waId = /^X-WA-Call-Id:\s*(.*)$/im.exec(head)?.[1] ?? '';
    invites.set(waId, text);
    const to = get('to')[0] ?? 'To: <sip:x@x>';
    const res = ['SIP/2.0 486 Busy Here', ...get('via'), ...get('from'), `${to};tag=fuzz`, ...get('call-id'), ...get('cseq'), 'Content-Length: 0', '', ''].join('\r\n');
    socket.send(res, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, host, r));
  return { socket, port: socket.address().port, invites };
}

export interface FuzzReport {
  cases: number;
  events: number;
  invitesChecked: number;
  statuses: Record<number, number>;
  parseMsMax: number;
  parseMsP99: number;
  /** Sums over the timed cases: our parser, and V8's JSON.parse of the same bytes (the baseline). */
  parseMsTotal: number;
  jsonParseMsTotal: number;
  /** Cases whose parse (min of 3) went over the budget. */
  overBudget: string[];
  violations: string[];
  heapStartMB: number;
  heapPeakMB: number;
  heapEndMB: number;
  seconds: number;
}

export interface FuzzOptions {
  seed: number;
  cases: number;
  /** Per-message parser budget, ms. */
  budgetMs: number;
  /** SIP listener address of the bridge and the capturing PBX (loopback). */
  bridgeHost?: string;
  pbxHost?: string;
  onProgress?: (done: number) => void;
}

const SECRET = 'fuzz-secret';
const HTTP_BODY_LIMIT = 1024 * 1024;

export async function runWebhookFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const t0 = performance.now();
  const rng = seededRandom(opts.seed);
  const log = silentLogger();
  const pbx = await startCapturingPbx(opts.pbxHost ?? '127.0.0.3');
  let sip: SipStack | undefined;
  const report: FuzzReport = {
    cases: 0, events: 0, invitesChecked: 0, statuses: {}, parseMsMax: 0, parseMsP99: 0, parseMsTotal: 0, jsonParseMsTotal: 0, overBudget: [], violations: [],
    heapStartMB: heapMB(), heapPeakMB: 0, heapEndMB: 0, seconds: 0,
  };
  try {
    sip = await createSipStack({ udp: { host: opts.bridgeHost ?? '127.0.0.1', port: 0 }, logger: log, inviteTimeoutMs: 5000 });
    const config = buildConfig({ routing: { default: `sip:fuzz@${opts.pbxHost ?? '127.0.0.3'}:${pbx.port}` }, // Cases come faster than the default set-up rate guard (10/s) admits; every valid connect must ring.
      calls: { ringTimeoutSec: 10, maxSetupsPerSec: 100_000, maxConcurrent: 100_000 } });
    const bridge = new Bridge({ config, sip, media: new FakeMedia(), whatsapp: new FakeWhatsApp(), log, fromDomain: 'bridge.test' });
    const delivered: WaEvent[][] = [];
    const http = createHttpServer({
      log,
      security: new WebhookAuth({ provider: 'meta', appSecret: SECRET, allowUnsignedWebhooks: false, verifyToken: 'vt' }),
      parse: (b) => parseWebhook(b),
      onEvents: (e) => delivered.push(e),
      health: async () => ({ ok: true }),
    });
    const times: number[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < opts.cases; i++) {
      const c = generateCase(rng, i);
      // 1. the parser, timed (min of 3 when over budget: scheduler noise is not the parser's)
      let body: unknown;
      const tJson = performance.now();
      try {
        body = JSON.parse(c.raw.toString('utf8'));
      } catch {
        body = undefined;
      }
      const jsonMs = performance.now() - tJson;
      // Bodies over the route's 1 MiB limit never reach the parser (413): not timed.
      if (c.raw.length <= HTTP_BODY_LIMIT) {
        let ms = timed(() => parseWebhook(body));
        if (ms > opts.budgetMs) ms = Math.min(ms, timed(() => parseWebhook(body)), timed(() => parseWebhook(body)));
        times.push(ms);
        report.parseMsTotal += ms;
        report.jsonParseMsTotal += jsonMs;
        if (ms > opts.budgetMs) report.overBudget.push(`case ${i} (${c.what}): ${ms.toFixed(2)} ms`);
      }
      // 2. the HTTP route
      const res = await http.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(c.raw, SECRET) }, payload: c.raw });
      report.statuses[res.statusCode] = (report.statuses[res.statusCode] ?? 0) + 1;
      if (![200, 400, 413].includes(res.statusCode)) report.violations.push(`case ${i} (${c.what}): HTTP ${res.statusCode}`);
      await new Promise((r) => setImmediate(r));
      // 3. what came out, and 4. the INVITE of each new user-initiated connect
      const connects: WaConnectEvent[] = [];
      for (const ev of delivered.splice(0).flat()) {
        report.events++;
        for (const v of eventViolations(ev)) report.violations.push(`case ${i} (${c.what}): ${v}`);
        if (ev.kind === 'connect' && ev.direction === 'USER_INITIATED' && !seen.has(ev.callId)) {
          seen.add(ev.callId);
          connects.push(ev);
        }
      }
      if (connects.length) {
        bridge.handleEvents(connects);
        for (const ev of connects) {
          const text = await waitForInvite(pbx.invites, ev.callId, 5000);
          if (text === undefined) {
            report.violations.push(`case ${i} (${c.what}): no INVITE for ${ev.callId}`);
            continue;
          }
          report.invitesChecked++;
          for (const v of inviteViolations(text)) report.violations.push(`case ${i} (${c.what}): INVITE ${v}`);
          pbx.invites.delete(ev.callId);
        }
      }
      report.cases++;
      if (i % 500 === 0) {
        report.heapPeakMB = Math.max(report.heapPeakMB, heapMB());
        opts.onProgress?.(i);
      }
    }
    await http.close();
    await bridge.close();
    times.sort((a, b) => a - b);
    report.parseMsMax = times.at(-1) ?? 0;
    report.parseMsP99 = times[Math.floor(times.length * 0.99)] ?? 0;
  } finally {
    await sip?.close();
    pbx.socket.close();
  }
  report.heapEndMB = heapMB();
  report.heapPeakMB = Math.max(report.heapPeakMB, report.heapEndMB);
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

function timed(fn: () => unknown): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

function heapMB(): number {
  return Math.round(process.memoryUsage().heapUsed / 1048576);
}

async function waitForInvite(invites: Map<string, string>, callId: string, timeoutMs: number): Promise<string | undefined> {
  const end = performance.now() + timeoutMs;
  // Bounded wait: the INVITE leaves within a few ms on loopback; 5 s means it never will.
  while (!invites.has(callId) && performance.now() < end) await new Promise((r) => setTimeout(r, 2));
  return invites.get(callId);
}
