/**
 * The probes of `wa-sip-bridge check`: each asks one thing the config points at whether it is
 * there, with a bounded wait, and says how to fix it when it is not. They use the bridge's own
 * code paths where it has them (the SIP endpoint of src/sip, the rtpengine engine's ng ping).
 */
import { DEFAULT_SIP_LIMITS, FrontDoor } from '../sip/front-door.js';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { networkInterfaces } from 'node:os';
import sip from 'sip';
import type { Config } from '../config/schema.js';
import { createRtpengineEngine } from '../media/rtpengine/index.js';
import { generateCallId, generateTag, headerText, tagOf } from '../sip/headers.js';
import { openEndpoint, type TransportName } from '../sip/lib.js';
import { silentLogger, type Logger } from '../util/log.js';

export interface ProbeResult {
  /** ok: ✓; bad: ✗ (the command exits non-zero); skip: not probed, with the reason. */
  status: 'ok' | 'bad' | 'skip';
  /** What was probed, e.g. "PBX sip:queue@pbx:5060". */
  subject: string;
  /** What happened: "OPTIONS answered 200 OK in 4 ms". */
  detail: string;
  /** For ✗ (and some –): what to do. */
  fix?: string;
}

const elapsed = (t0: number): string => `${Math.round(performance.now() - t0)} ms`;

// ---- PBX: SIP OPTIONS ------------------------------------------------------------------------

/** A UDP+TCP port free on `host` right now (the probe's own SIP endpoint; never the bridge's). */
async function freeUdpPort(host: string): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, host);
  await once(s, 'listening'); // rejects on a bind error
  const { port } = s.address();
  s.close();
  return port;
}

/** The address a PBX can answer to: the configured contact host, else like the bridge picks it. */
function probeHost(config: Readonly<Config>, targetHost: string): { bind: string; advertised: string } {
  const listen = config.sip.udp ?? config.sip.tcp!;
  const contact = config.sip.contactHost?.replace(/:\d+$/, '');
  if (/^127\./.test(targetHost)) return { bind: '127.0.0.1', advertised: '127.0.0.1' };
  if (contact) return { bind: listen.host, advertised: contact };
  if (listen.host !== '0.0.0.0' && listen.host !== '::') return { bind: listen.host, advertised: listen.host };
  const ip = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1';
  return { bind: '0.0.0.0', advertised: ip };
}

/**
 * SIP OPTIONS to `target` from a fresh endpoint of the bridge's SIP layer. Any final response
 * from the PBX (200, but also 404/405/403) proves it is there; none within `timeoutMs` is ✗.
 * A final response without a To tag is one the `sip` package made up locally (transport error
 * or its own timer), not the PBX's (RFC 3261 section 8.2.6.2: a UAS's responses carry a tag).
 */
export async function probeSipOptions(target: string, config: Readonly<Config>, timeoutMs: number, subject = `PBX ${target}`): Promise<ProbeResult> {
  const uri = sip.parseUri(target);
  if (!uri?.host) return { status: 'bad', subject, detail: 'not a SIP URI the bridge can dial', fix: 'write it as sip:user@host[:port]' };
  const transport: TransportName = String(uri.params['transport'] ?? '').toLowerCase() === 'tcp' ? 'tcp' : 'udp';
  const where = `${uri.host}:${uri.port ?? 5060}/${transport}`;
  const { bind, advertised } = probeHost(config, uri.host);
  let port: number;
  try {
    port = await freeUdpPort(bind);
  } catch (err) {
    return { status: 'bad', subject, detail: `cannot open a local SIP socket on ${bind}: ${(err as Error).message}`, fix: 'check sip.udp.host / sip.tcp.host: it must be an address of this machine' };
  }
  const ep = await openEndpoint({
    transport,
    listen: { host: bind, port },
    advertised: { host: advertised, port },
    logger: silentLogger(),
    frontDoor: new FrontDoor({ ...DEFAULT_SIP_LIMITS, ...config.sip.limits }, () => undefined),
    onRequest: () => undefined,
    onAck: () => undefined,
  });
  const t0 = performance.now();
  try {
    const rs = await new Promise<sip.Message | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      ep.send(
        {
          method: 'OPTIONS',
          uri: target,
          headers: {
            via: [],
            to: `<${target.replace(/[;?].*$/, '')}>`,
            from: `<sip:wa-sip-bridge-check@${advertised}>;tag=${generateTag()}`,
            'call-id': generateCallId(advertised),
            cseq: { seq: 1, method: 'OPTIONS' },
            contact: `<sip:${advertised}:${port}${transport === 'tcp' ? ';transport=tcp' : ''}>`,
            'max-forwards': '70',
            'user-agent': `${config.sip.userAgent} check`,
            accept: 'application/sdp',
          },
        },
        (r) => {
          if ((r.status ?? 0) < 200) return;
          clearTimeout(timer);
          resolve(r);
        },
      );
    });
    if (!rs || tagOf(rs.headers.to) === undefined) {
      return {
        status: 'bad',
        subject,
        detail: rs ? `no answer from ${where} (${rs.status} ${rs.reason ?? ''}, made locally)` : `no answer from ${where} within ${timeoutMs} ms`,
        fix: `is the PBX running and listening on ${where}? Open the firewall for SIP from this host, and let the PBX accept requests from ${advertised} (Asterisk: an endpoint/identify for it; FreeSWITCH: an ACL or gateway)`,
      };
    }
    const server = headerText(rs, 'server') ?? headerText(rs, 'user-agent');
    const note = rs.status === 200 ? '' : ' (reachable: OPTIONS itself need not be allowed)';
    return { status: 'ok', subject, detail: `OPTIONS answered ${rs.status} ${rs.reason ?? ''} in ${elapsed(t0)}${server ? ` by ${server}` : ''}${note}` };
  } finally {
    await ep.close();
  }
}

// ---- rtpengine: ng ping ----------------------------------------------------------------------

/** An ng `ping` through the bridge's own rtpengine engine, one instance at a time. */
export async function probeRtpengine(ng: { host: string; port: number }, timeoutMs: number, log: Logger = silentLogger()): Promise<ProbeResult> {
  const subject = `rtpengine ${ng.host}:${ng.port}`;
  const t0 = performance.now();
  try {
    const engine = await createRtpengineEngine({ ng: [ng], timeoutMs, logger: log });
    await engine.close();
    return { status: 'ok', subject, detail: `ng ping answered in ${elapsed(t0)}` };
  } catch (err) {
    return {
      status: 'bad',
      subject,
      detail: (err as Error).message,
      fix: `start rtpengine with --listen-ng=${ng.host}:${ng.port} (media.rtpengine.ng must name its ng address), or set media.engine: embedded`,
    };
  }
}

// ---- Graph token -----------------------------------------------------------------------------

async function fetchBounded(url: string, init: RequestInit, timeoutMs: number): Promise<{ status: number; text: string } | { error: string }> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    return { status: res.status, text: (await res.text()).slice(0, 2000) };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    return { error: e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message) };
  }
}

/** The error message in Meta's `{error:{message}}` or 360dialog's `{error:"..."}`, if any. */
function errorMessage(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: unknown };
    if (typeof body.error === 'string') return body.error;
    if (body.error && typeof body.error === 'object') {
      const e = body.error as { message?: unknown; code?: unknown };
      return `${String(e.message ?? '')}${e.code !== undefined ? ` (code ${String(e.code)})` : ''}`;
    }
  } catch {
    /* not JSON */
  }
  return undefined;
}

/**
 * A harmless authenticated read: Meta `GET /{version}/{phone_number_id}?fields=id` (or `/me`
 * without a phone number id); 360dialog `GET /calling/settings` (only the status is used).
 */
export async function probeGraph(config: Readonly<Config>, timeoutMs: number): Promise<ProbeResult> {
  const wa = config.whatsapp;
  if (wa.provider === 'meta') {
    const id = wa.phoneNumberIds[0] ?? config.outbound.phoneNumberId ?? 'me';
    const subject = `Graph token (${wa.graphBaseUrl}, ${id === 'me' ? 'GET /me' : `phone number id ${id}`})`;
    if (!wa.accessToken) return { status: 'bad', subject, detail: 'WA_ACCESS_TOKEN is not set', fix: 'export WA_ACCESS_TOKEN=<a System User token with whatsapp_business_messaging>' };
    const r = await fetchBounded(`${wa.graphBaseUrl.replace(/\/$/, '')}/${wa.graphVersion}/${encodeURIComponent(id)}?fields=id`, { headers: { authorization: `Bearer ${wa.accessToken}` } }, timeoutMs);
    return graphResult(subject, r, 'WA_ACCESS_TOKEN', `whatsapp.graphBaseUrl (${wa.graphBaseUrl})`);
  }
  const subject = `360dialog API key (${wa.baseUrl}, GET /calling/settings)`;
  if (!wa.apiKey) return { status: 'bad', subject, detail: 'WA_360DIALOG_API_KEY is not set', fix: 'export WA_360DIALOG_API_KEY=<the channel API key from the 360dialog hub>' };
  const r = await fetchBounded(`${wa.baseUrl.replace(/\/$/, '')}/calling/settings`, { headers: { 'd360-api-key': wa.apiKey } }, timeoutMs);
  return graphResult(subject, r, 'WA_360DIALOG_API_KEY', `whatsapp.baseUrl (${wa.baseUrl})`);
}

function graphResult(subject: string, r: { status: number; text: string } | { error: string }, secret: string, urlKey: string): ProbeResult {
  if ('error' in r) return { status: 'bad', subject, detail: `cannot reach it: ${r.error}`, fix: `check ${urlKey}, DNS and outbound HTTPS from this host` };
  if (r.status >= 200 && r.status < 300) return { status: 'ok', subject, detail: `accepted (HTTP ${r.status})` };
  const msg = errorMessage(r.text) ?? r.text.slice(0, 200);
  if (r.status === 401 || r.status === 403 || /code 190\b/.test(msg)) {
    return { status: 'bad', subject, detail: `refused (HTTP ${r.status}): ${msg}`, fix: `${secret} is wrong or expired: issue a new one and export it` };
  }
  return { status: 'bad', subject, detail: `HTTP ${r.status}: ${msg}`, fix: `check ${urlKey}, whatsapp.graphVersion and the phone number id` };
}

// ---- webhook: the verify handshake from outside in -------------------------------------------

export async function probeWebhook(config: Readonly<Config>, timeoutMs: number): Promise<ProbeResult> {
  const url = config.check.publicWebhookUrl;
  if (!url) {
    return { status: 'skip', subject: 'webhook URL', detail: 'not probed: no public URL configured', fix: 'set check.publicWebhookUrl to the URL given to Meta, to test it from outside in' };
  }
  const subject = `webhook ${url}`;
  const token = config.whatsapp.verifyToken;
  if (!token) return { status: 'bad', subject, detail: 'WA_VERIFY_TOKEN is not set: Meta cannot verify the subscription', fix: 'export WA_VERIFY_TOKEN=<the verify token typed at Meta>' };
  const challenge = randomBytes(8).toString('hex');
  const u = new URL(url);
  u.searchParams.set('hub.mode', 'subscribe');
  u.searchParams.set('hub.verify_token', token);
  u.searchParams.set('hub.challenge', challenge);
  const t0 = performance.now();
  const r = await fetchBounded(u.toString(), {}, timeoutMs);
  if ('error' in r) return { status: 'bad', subject, detail: `unreachable: ${r.error}`, fix: 'is the bridge running, and does the reverse proxy / TLS terminator forward this URL to http.host:http.port?' };
  if (r.status === 200 && r.text.trim() === challenge) return { status: 'ok', subject, detail: `verify handshake answered in ${elapsed(t0)}` };
  if (r.status === 403) return { status: 'bad', subject, detail: 'verify handshake refused (403)', fix: 'the bridge at this URL has another WA_VERIFY_TOKEN' };
  return { status: 'bad', subject, detail: `HTTP ${r.status}, not the challenge back`, fix: 'the URL does not reach the bridge\'s /webhook route: check the path and the proxy' };
}

// ---- secrets that are config, not probes -----------------------------------------------------

export function webhookSecretRow(config: Readonly<Config>): ProbeResult {
  const subject = 'webhook signature secret';
  if (config.whatsapp.appSecret) return { status: 'ok', subject, detail: 'WA_APP_SECRET set: unsigned webhooks are refused' };
  // Read loosely: a later schema may let an operator accept unsigned webhooks on purpose.
  if ((config.whatsapp as Record<string, unknown>)['allowUnsignedWebhooks'] === true) {
    return { status: 'skip', subject, detail: 'whatsapp.allowUnsignedWebhooks: true: anyone who finds the URL can place calls' };
  }
  return { status: 'bad', subject, detail: 'WA_APP_SECRET is not set', fix: 'export WA_APP_SECRET=<the app secret (Meta) or the partner webhook secret (360dialog)>' };
}
