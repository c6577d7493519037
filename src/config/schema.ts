import { z } from 'zod';

/**
 * The bridge's configuration: one file (YAML or JSON) plus environment overrides for secrets,
 * validated once at start-up (see ./load.ts). Every default here is what `npm start` runs on.
 */

const hostPort = (defaultHost: string, defaultPort: number) =>
  z.object({
    host: z.string().min(1).default(defaultHost),
    port: z.number().int().min(0).max(65535).default(defaultPort),
  });

const sipUri = z
  .string()
  .regex(/^sips?:[^\s]+$/i, 'must be a SIP URI such as sip:queue@pbx.example.com:5060');

/** Weekly opening hours of a routing rule, evaluated in `timezone` (IANA name). */
const hours = z.object({
  timezone: z.string().default('UTC'),
  /** 0 = Sunday ... 6 = Saturday. */
  days: z.array(z.number().int().min(0).max(6)).min(1).default([1, 2, 3, 4, 5]),
  /** "HH:MM", inclusive. */
  open: z.string().regex(/^\d{2}:\d{2}$/),
  /** "HH:MM", exclusive. */
  close: z.string().regex(/^\d{2}:\d{2}$/),
});

const route = z.object({
  /** Free text for logs ("sales line", "after hours"). */
  name: z.string().optional(),
  /** Match the business number (display number, digits) or the phone number id. */
  businessNumber: z.string().optional(),
  phoneNumberId: z.string().optional(),
  /** Match callers whose WhatsApp number starts with this (digits, country code first). */
  callerPrefix: z.string().regex(/^\d*$/).optional(),
  /** Match only inside these hours. */
  hours: hours.optional(),
  /** Where the call goes: an extension or queue URI on the PBX. */
  target: sipUri,
});

/**
 * Webhook intake and Graph resilience (WEBHOOK area; docs/security.md "Webhooks"). Shared by
 * both providers. `allowUnsignedWebhooks`: false (default) refuses to start without a webhook
 * secret; true accepts unsigned webhooks from anywhere (logged loudly, counted);
 * 'loopback' accepts them only from 127.0.0.0/8 and ::1 (the local-trial mode `npm start` runs
 * in when there is no config file at all).
 */
const webhookKeys = {
  allowUnsignedWebhooks: z.union([z.boolean(), z.literal('loopback')]).default(false),
  /** A connect webhook older than this (by its `timestamp`) is not rung; the call is ended on WhatsApp. */
  maxWebhookAgeSec: z.number().int().positive().max(86_400).default(60),
  /** Events (calls[], statuses[], messages[] items) taken from one POST; the rest are dropped and counted. */
  maxEventsPerPost: z.number().int().positive().max(10_000).default(50),
  /** Graph call actions: attempts (first try included) on 5xx, 429, rate limits, timeouts, connection errors. */
  retry: z
    .object({
      attempts: z.number().int().min(1).max(10).default(3),
      baseDelayMs: z.number().int().min(1).default(200),
      maxDelayMs: z.number().int().min(1).default(3000),
    })
    .default({ attempts: 3, baseDelayMs: 200, maxDelayMs: 3000 }),
};
const webhookDefaults = { allowUnsignedWebhooks: false, maxWebhookAgeSec: 60, maxEventsPerPost: 50, retry: { attempts: 3, baseDelayMs: 200, maxDelayMs: 3000 } } as const;

export const configSchema = z.object({
  http: hostPort('0.0.0.0', 8080).default({ host: '0.0.0.0', port: 8080 }),
  log: z
    .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
  whatsapp: z.discriminatedUnion('provider', [
    z.object({
      provider: z.literal('meta'),
      graphBaseUrl: z.url().default('https://graph.facebook.com'),
      graphVersion: z.string().regex(/^v\d+\.\d+$/, 'like v23.0').default('v23.0'),
      /** Phone number ids whose calls this bridge takes; empty takes any. */
      phoneNumberIds: z.array(z.string()).default([]),
      /** Secret: env WA_ACCESS_TOKEN. */
      accessToken: z.string().default(''),
      /** Secret: env WA_APP_SECRET. When set, unsigned or badly signed webhooks get 401. */
      appSecret: z.string().default(''),
      /** Secret: env WA_VERIFY_TOKEN. The `hub.verify_token` of the subscription handshake. */
      verifyToken: z.string().default(''),
      requestTimeoutMs: z.number().int().positive().default(5000),
      ...webhookKeys,
    }),
    z.object({
      provider: z.literal('360dialog'),
      baseUrl: z.url().default('https://waba-v2.360dialog.io'),
      phoneNumberIds: z.array(z.string()).default([]),
      /** Secret: env WA_360DIALOG_API_KEY (sent as D360-API-KEY). */
      apiKey: z.string().default(''),
      /** Secret: env WA_APP_SECRET: 360dialog's partner webhook secret (x-360dialog-signature). */
      appSecret: z.string().default(''),
      verifyToken: z.string().default(''),
      /**
       * 360dialog's custom webhook header (set in 360dialog's webhook configuration), accepted as
       * its authentication; value from env WA_WEBHOOK_HEADER_SECRET, compared in constant time.
       */
      webhookAuthHeader: z
        .object({ name: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name'), value: z.string().default('') })
        .optional(),
      requestTimeoutMs: z.number().int().positive().default(5000),
      ...webhookKeys,
    }),
  ]).default({
    provider: 'meta',
    graphBaseUrl: 'https://graph.facebook.com',
    graphVersion: 'v23.0',
    phoneNumberIds: [],
    accessToken: '',
    appSecret: '',
    verifyToken: '',
    requestTimeoutMs: 5000,
    ...webhookDefaults,
  }),
  sip: z
    .object({
      udp: hostPort('0.0.0.0', 5060).nullable().default({ host: '0.0.0.0', port: 5060 }),
      tcp: hostPort('0.0.0.0', 5060).nullable().default({ host: '0.0.0.0', port: 5060 }),
      /** host[:port] for Via/Contact when the listen address is a wildcard or NATed. */
      contactHost: z.string().optional(),
      /** Domain of the caller's From URI: sip:+<wa_id>@<fromDomain>. Defaults to the contact host. */
      fromDomain: z.string().optional(),
      userAgent: z.string().default('wa-sip-bridge'),
      /** Digest credentials for a PBX that challenges the bridge (401/407). Password: env SIP_AUTH_PASSWORD. */
      auth: z.object({ username: z.string().min(1), password: z.string().default('') }).optional(),
      /** Give up on an INVITE that gets no final response (the PBX is silent). */
      inviteTimeoutSec: z.number().positive().default(64),
    })
    .default({ udp: { host: '0.0.0.0', port: 5060 }, tcp: { host: '0.0.0.0', port: 5060 }, userAgent: 'wa-sip-bridge', inviteTimeoutSec: 64 }),
  media: z
    .object({
      /** `embedded`: in-process (werift), nothing to install. `rtpengine`: the media proxy, for scale. */
      engine: z.enum(['rtpengine', 'embedded']).default('embedded'),
      rtpengine: z
        .object({
          ng: z.array(hostPort('127.0.0.1', 22222)).min(1).default([{ host: '127.0.0.1', port: 22222 }]),
          timeoutMs: z.number().int().positive().default(2000),
        })
        .default({ ng: [{ host: '127.0.0.1', port: 22222 }], timeoutMs: 2000 }),
      embedded: z
        .object({
          /** Address the plain RTP sockets toward the PBX bind to. */
          rtpHost: z.string().default('0.0.0.0'),
          /** Address put in the SDP for the PBX; defaults to the SIP contact host. */
          rtpAdvertiseHost: z.string().optional(),
          /** IPv4 addresses offered to WhatsApp as ICE host candidates; empty: every non-internal one. */
          iceAddresses: z.array(z.string()).default([]),
          /** UDP port range for both sides (RTP toward the PBX, ICE toward WhatsApp). */
          portMin: z.number().int().min(1024).max(65535).default(40000),
          portMax: z.number().int().min(1024).max(65535).default(40999),
        })
        .default({ rtpHost: '0.0.0.0', iceAddresses: [], portMin: 40000, portMax: 40999 }),
    })
    .default({
      engine: 'embedded',
      rtpengine: { ng: [{ host: '127.0.0.1', port: 22222 }], timeoutMs: 2000 },
      embedded: { rtpHost: '0.0.0.0', iceAddresses: [], portMin: 40000, portMax: 40999 },
    }),
  calls: z
    .object({
      /**
       * Stop ringing the PBX this long after WhatsApp's connect webhook if nobody answered.
       * WhatsApp gives up after about 30-60 s; the bridge must never leave a desk phone ringing
       * for a caller who is gone, even if WhatsApp's terminate webhook is lost.
       */
      ringTimeoutSec: z.number().positive().max(120).default(45),
    })
    .default({ ringTimeoutSec: 45 }),
  /** Agents dialling WhatsApp users: the PBX sends INVITEs to the bridge. */
  outbound: z
    .object({
      enabled: z.boolean().default(false),
      /**
       * Sources allowed to place calls: IPv4 addresses or CIDRs (the PBX). An open SIP port that
       * dials WhatsApp numbers is a toll-fraud hole: anything else gets 403.
       */
      allowFrom: z.array(z.string().regex(/^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/, 'an IPv4 address or CIDR')).default([]),
      /** Digest authentication of the PBX (the bridge challenges with 401). Password: env SIP_INBOUND_PASSWORD. */
      auth: z
        .object({ username: z.string().min(1), password: z.string().default(''), realm: z.string().default('wa-sip-bridge') })
        .optional(),
      /** Prefix the PBX dials before the WhatsApp number (e.g. "9"), stripped from the Request-URI user. */
      dialPrefix: z.string().regex(/^[0-9*#+]*$/).default(''),
      /** Business phone number id that places calls, unless a rule below picks another. */
      phoneNumberId: z.string().optional(),
      /** Pick the phone number id by the caller (From user, e.g. the agent's extension) or the source address. */
      callerRules: z
        .array(z.object({ fromUser: z.string().optional(), source: z.string().optional(), phoneNumberId: z.string().min(1) }))
        .default([]),
      /** Send the user a call-permission request when a call fails for lack of permission. */
      requestPermission: z
        .object({ enabled: z.boolean().default(false), bodyText: z.string().optional() })
        .default({ enabled: false }),
      /** How long a permission answer from Graph is trusted. */
      permissionCacheSec: z.number().int().min(0).default(60),
      /** End an unanswered outbound call after this long (480 to the PBX, terminate to WhatsApp). */
      ringTimeoutSec: z.number().positive().max(300).default(60),
    })
    .default({ enabled: false, allowFrom: [], dialPrefix: '', callerRules: [], requestPermission: { enabled: false }, permissionCacheSec: 60, ringTimeoutSec: 60 }),
  routing: z
    .object({
      /** Where calls go when no rule matches. */
      default: sipUri.default('sip:whatsapp@127.0.0.1:5080'),
      rules: z.array(route).default([]),
    })
    .default({ default: 'sip:whatsapp@127.0.0.1:5080', rules: [] }),
});

export type Config = z.infer<typeof configSchema>;
export type RouteRule = z.infer<typeof route>;
export type WhatsAppConfig = Config['whatsapp'];
