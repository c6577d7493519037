import { networkInterfaces } from 'node:os';
import type { Config } from './config/schema.js';
import type { Logger } from './util/log.js';
import { Bridge } from './bridge/bridge.js';
import { createHttpServer } from './http/server.js';
import { createEmbeddedEngine } from './media/embedded/index.js';
import { createRtpengineEngine } from './media/rtpengine/index.js';
import type { MediaEngine } from './media/types.js';
import { createSipStack } from './sip/stack.js';
import type { SipStack } from './sip/types.js';
import { createCallsApi } from './whatsapp/graph-client.js';
import { verifySignature } from './whatsapp/signature.js';
import { parseWebhook } from './whatsapp/webhook.js';

export interface RunningApp {
  /** Base URL of the HTTP server (webhooks, health). */
  url: string;
  bridge: Bridge;
  sip: SipStack;
  media: MediaEngine;
  close(): Promise<void>;
}

/**
 * The composition root: builds every layer from the validated config, wires them together and
 * starts listening. Nothing below this reads configuration on its own.
 */
export async function startApp(config: Readonly<Config>, log: Logger): Promise<RunningApp> {
  const wa = config.whatsapp;
  const whatsapp =
    wa.provider === 'meta'
      ? createCallsApi({ provider: 'meta', baseUrl: wa.graphBaseUrl, version: wa.graphVersion, accessToken: wa.accessToken, timeoutMs: wa.requestTimeoutMs, logger: log })
      : createCallsApi({ provider: '360dialog', baseUrl: wa.baseUrl, apiKey: wa.apiKey, timeoutMs: wa.requestTimeoutMs, logger: log });
  if (wa.provider === 'meta' && wa.accessToken === '') log.warn('WA_ACCESS_TOKEN is not set: Graph API calls will be refused by Meta');
  if (wa.provider === '360dialog' && wa.apiKey === '') log.warn('WA_360DIALOG_API_KEY is not set: 360dialog will refuse call actions');
  if (wa.appSecret === '') log.warn('WA_APP_SECRET is not set: webhook signatures are NOT verified; anyone who finds the URL can place calls');

  const listen = config.sip.udp ?? config.sip.tcp!;
  const contactHost = config.sip.contactHost ?? defaultContactHost(listen, log);
  const media = await createMediaEngine(config.media, contactHost.replace(/:\d+$/, ''), log);

  const sip = await createSipStack({
    ...(config.sip.udp ? { udp: { ...config.sip.udp } } : {}),
    ...(config.sip.tcp ? { tcp: { ...config.sip.tcp } } : {}),
    contactHost,
    userAgent: config.sip.userAgent,
    ...(config.sip.auth ? { credentials: { ...config.sip.auth } } : {}),
    inviteTimeoutMs: config.sip.inviteTimeoutSec * 1000,
    logger: log,
  });

  const fromDomain = config.sip.fromDomain ?? contactHost.replace(/:\d+$/, '');
  const bridge = new Bridge({ config, sip, media, whatsapp, log, fromDomain });

  const http = createHttpServer({
    log,
    security: {
      appSecret: wa.appSecret,
      signatureHeader: wa.provider === 'meta' ? 'x-hub-signature-256' : 'x-360dialog-signature',
      verify: (raw, header, secret) => verifySignature(raw, header, secret, { provider: wa.provider }),
      verifyToken: wa.verifyToken,
    },
    parse: parseWebhook,
    onEvents: (events) => bridge.handleEvents(events),
    health: async () => {
      let mediaOk = true;
      let mediaError: string | undefined;
      try {
        await media.listSessions();
      } catch (err) {
        mediaOk = false;
        mediaError = (err as Error).message;
      }
      return { ok: mediaOk, activeCalls: bridge.activeCalls, media: { engine: media.name, ok: mediaOk, ...(mediaError ? { error: mediaError } : {}) } };
    },
  });
  const address = await http.listen({ host: config.http.host, port: config.http.port });
  log.info({ http: address, sip: { udp: config.sip.udp, tcp: config.sip.tcp }, media: media.name }, 'wa-sip-bridge started');

  let closing: Promise<void> | undefined;
  return {
    url: address.replace('0.0.0.0', '127.0.0.1'),
    bridge,
    sip,
    media,
    close: () =>
      (closing ??= (async () => {
        await http.close();
        await bridge.close();
        await sip.close();
        await media.close();
        log.info('wa-sip-bridge stopped');
      })()),
  };
}

/**
 * The address the PBX should send requests to, when `sip.contactHost` is not set: the listen
 * address, or for a wildcard listener the host's first non-internal IPv4 address (a Contact of
 * 0.0.0.0 would be unreachable).
 */
function defaultContactHost(listen: { host: string; port: number }, log: Logger): string {
  if (listen.host !== '0.0.0.0' && listen.host !== '::') return `${listen.host}:${listen.port}`;
  const ip =
    Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1';
  log.warn({ contactHost: `${ip}:${listen.port}` }, 'sip.contactHost not set; using the first external IPv4 address (set it when the PBX must reach another address)');
  return `${ip}:${listen.port}`;
}

/** The configured media engine; switching `media.engine` changes nothing else. */
async function createMediaEngine(media: Config['media'], advertiseHost: string, log: Logger): Promise<MediaEngine> {
  if (media.engine === 'rtpengine') {
    return createRtpengineEngine({
      ng: [...media.rtpengine.ng],
      timeoutMs: media.rtpengine.timeoutMs,
      logger: log,
      allowUnreachable: true,
      whatsappMediaTimeoutSec: media.whatsappMediaTimeoutSec,
    });
  }
  const e = media.embedded;
  // Lower half of the range for plain RTP toward the PBX, upper half for ICE toward WhatsApp,
  // so a firewall can open one known range.
  const mid = Math.floor((e.portMin + e.portMax) / 2);
  return createEmbeddedEngine({
    rtpHost: e.rtpHost,
    rtpAdvertiseHost: e.rtpAdvertiseHost ?? advertiseHost,
    iceAddresses: [...e.iceAddresses],
    portMin: e.portMin,
    portMax: mid % 2 === 0 ? mid - 1 : mid,
    icePortRange: [mid + 1, e.portMax],
    pbxSource: { mode: e.pbxSource },
    whatsappMediaTimeoutSec: media.whatsappMediaTimeoutSec,
    logger: log,
  });
}
