import { z } from 'zod';
import { parseIpv4Cidr } from '../util/cidr.js';

/**
 * The bridge's configuration: one file (YAML or JSON) plus environment overrides for secrets,
 * validated once at start-up (see ./load.ts). Every default here is what `npm start` runs on.
 */

const hostPort = (defaultHost: string, defaultPort: number) =>
  z.object({
    host: z.string().min(1).default(defaultHost),
    port: z.number().int().min(0).max(65535).default(defaultPort),
  });

export const sipUri = z
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

/** An IPv4 address or CIDR, strictly (octets 0-255, prefix 0-32); the message names the bad entry. */
const ipv4Cidr = z.string().superRefine((v, ctx) => {
  if (!parseIpv4Cidr(v)) ctx.addIssue({ code: 'custom', message: `"${v}" is not an IPv4 address or CIDR (a.b.c.d or a.b.c.d/0-32)` });
});

/** SIP front-door limits (src/sip/front-door.ts, DEFAULT_SIP_LIMITS); every key optional. */
const sipLimits = z
  .object({
    maxMessageBytes: z.number().int().min(1500).max(65_535),
    maxBodyBytes: z.number().int().min(0).max(65_535),
    maxHeaders: z.number().int().min(8).max(1000),
    maxHeaderBytes: z.number().int().min(256).max(65_535),
    ratePerSec: z.number().positive(),
    rateBurst: z.number().int().positive(),
    maxTrackedSources: z.number().int().positive(),
    maxTcpConnections: z.number().int().positive(),
    maxTcpConnectionsPerSource: z.number().int().positive(),
    tcpIdleTimeoutMs: z.number().int().positive(),
    tcpMessageTimeoutMs: z.number().int().positive(),
  })
  .partial()
  .default({});

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
      /**
       * RFC 4028 session timers with the PBX: the interval we ask for (we refresh at half of it,
       * by UPDATE or re-INVITE; a call whose refresh fails or does not come ends). 0: we ask for
       * none (a PBX's request is still honoured). 1800 is the RFC's recommendation.
       */
      sessionExpiresSec: z.number().int().min(0).default(0),
      /** Smallest interval accepted (Min-SE; 422 below it). RFC 4028's floor is 90. */
      minSessionExpiresSec: z.number().int().min(1).default(90),
      /** Front-door limits on what reaches the SIP parser (docs/security.md lists each with its default). */
      limits: sipLimits,
    })
    .default({ udp: { host: '0.0.0.0', port: 5060 }, tcp: { host: '0.0.0.0', port: 5060 }, userAgent: 'wa-sip-bridge', inviteTimeoutSec: 64, sessionExpiresSec: 0, minSessionExpiresSec: 90, limits: {} }),
  media: z
    .object({
      /** `embedded`: in-process (werift), nothing to install. `rtpengine`: the media proxy, for scale. */
      engine: z.enum(['rtpengine', 'embedded']).default('embedded'),
      /**
       * End the call when WhatsApp has sent no media this long (at the start, from when it could
       * connect; mid-call, since its last packet). WhatsApp itself gives up after ~20 s at the
       * start and ~30 s mid-call. 0 = off.
       */
      whatsappMediaTimeoutSec: z.number().min(0).max(3600).default(20),
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
          /**
           * Whose RTP/RTCP the PBX side takes (everything else is dropped and counted): `strict`,
           * only the address the PBX's SDP names; `learn` (default, for a PBX behind NAT), the
           * SDP's address or else the first source within 3 s, then locked to it and its SSRC.
           */
          pbxSource: z.enum(['strict', 'learn']).default('learn'),
          /**
           * Worker threads running the calls' media (signalling stays on the main thread): `auto`,
           * one per CPU core up to 64 (none on a 1-core machine), or a count; 0 = in the main thread.
           * The port range is split between them (docs/scaling.md).
           */
          workers: z.union([z.literal('auto'), z.number().int().min(0).max(64)]).default('auto'),
        })
        .default({ rtpHost: '0.0.0.0', iceAddresses: [], portMin: 40000, portMax: 40999, pbxSource: 'learn', workers: 'auto' }),
    })
    .default({
      engine: 'embedded',
      whatsappMediaTimeoutSec: 20,
      rtpengine: { ng: [{ host: '127.0.0.1', port: 22222 }], timeoutMs: 2000 },
      embedded: { rtpHost: '0.0.0.0', iceAddresses: [], portMin: 40000, portMax: 40999, pbxSource: 'learn', workers: 'auto' },
    }),
  calls: z
    .object({
      /**
       * Stop ringing the PBX this long after WhatsApp's connect webhook if nobody answered.
       * WhatsApp gives up after about 30-60 s; the bridge must never leave a desk phone ringing
       * for a caller who is gone, even if WhatsApp's terminate webhook is lost.
       */
      ringTimeoutSec: z.number().positive().max(120).default(45),
      /** End both legs of any call this long after it started (a leg orphaned by a crash ends too); 0: no limit. */
      maxDurationSec: z.number().min(0).default(4 * 3600),
      /** Abandon a media operation (offer, answer, close) that has not settled after this long, so teardown always finishes. */
      mediaOpTimeoutSec: z.number().positive().max(120).default(10),
      /**
       * Most calls at once, both directions; beyond it new calls are refused (WhatsApp reject,
       * SIP 503). Default: the media engine's measured ceiling (embedded: 15 per CPU core, about
       * 30 on 2 cores; rtpengine: 1000).
       */
      maxConcurrent: z.number().int().positive().optional(),
      /** Most new calls (both directions) set up per second; beyond it new calls are refused the same way. */
      maxSetupsPerSec: z.number().positive().default(10),
    })
    .default({ ringTimeoutSec: 45, maxDurationSec: 4 * 3600, mediaOpTimeoutSec: 10, maxSetupsPerSec: 10 }),
  /** Stopping: the first SIGTERM/SIGINT drains (no new calls, calls in progress carry on), a second one ends every call at once. */
  shutdown: z
    .object({
      /** How long calls in progress may carry on after the first signal before both legs are ended. */
      drainSec: z.number().min(0).default(300),
    })
    .default({ drainSec: 300 }),
  /** Agents dialling WhatsApp users: the PBX sends INVITEs to the bridge. */
  outbound: z
    .object({
      enabled: z.boolean().default(false),
      /**
       * Sources allowed to place calls: IPv4 addresses or CIDRs (the PBX). An open SIP port that
       * dials WhatsApp numbers is a toll-fraud hole: anything else gets 403.
       */
      allowFrom: z.array(ipv4Cidr).default([]),
      /** Take outbound INVITEs only over TCP (a UDP source address can be spoofed). */
      requireTcp: z.boolean().default(false),
      /** Digest authentication of the PBX (the bridge challenges with 401). Password: env SIP_INBOUND_PASSWORD. */
      auth: z
        .object({
          username: z.string().min(1),
          password: z.string().default(''),
          realm: z.string().default('wa-sip-bridge'),
          /** A nonce is valid this long, from the source it was issued to only. */
          nonceTtlSec: z.number().int().positive().default(300),
          /** After this many failed attempts within a minute, the source is refused for `blockSec`. */
          maxFailures: z.number().int().positive().default(5),
          blockSec: z.number().int().min(0).default(300),
        })
        .optional(),
      /** Prefix the PBX dials before the WhatsApp number (e.g. "9"), stripped from the Request-URI user. */
      dialPrefix: z.string().regex(/^[0-9*#+]*$/).default(''),
      /** Business phone number id that places calls, unless a rule below picks another. */
      phoneNumberId: z.string().optional(),
      /** Pick the phone number id by the caller (From user, e.g. the agent's extension) or the source address. */
      callerRules: z
        .array(z.object({ fromUser: z.string().optional(), source: ipv4Cidr.optional(), phoneNumberId: z.string().min(1) }))
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
    .default({ enabled: false, allowFrom: [], requireTcp: false, dialPrefix: '', callerRules: [], requestPermission: { enabled: false }, permissionCacheSec: 60, ringTimeoutSec: 60 }),
  routing: z
    .object({
      /** Where calls go when no rule matches. */
      default: sipUri.default('sip:whatsapp@127.0.0.1:5080'),
      rules: z.array(route).default([]),
    })
    .default({ default: 'sip:whatsapp@127.0.0.1:5080', rules: [] }),
  /** What `wa-sip-bridge check` probes besides the config (src/cli/check.ts). */
  check: z
    .object({
      /** The webhook URL as configured at Meta/360dialog; `check` runs its verify handshake from outside in. */
      publicWebhookUrl: z.url().optional(),
      /** Bound of each probe (SIP OPTIONS, ng ping, HTTP). */
      timeoutMs: z.number().int().positive().default(3000),
    })
    .default({ timeoutMs: 3000 }),
  /** Metrics, call records, the admin API and the live call view (docs/operations.md). */
  ops: z
    .object({
      metrics: z
        .object({
          /** Serve Prometheus text at GET /metrics. */
          enabled: z.boolean().default(true),
          /** When set (env WA_SIP_BRIDGE_METRICS_TOKEN), /metrics wants `Authorization: Bearer <token>`. */
          token: z.string().default(''),
        })
        .default({ enabled: true, token: '' }),
      /** Call records, one JSON object per ended call. */
      cdr: z
        .object({
          /** JSON-lines file; empty: no file. */
          file: z.string().default(''),
          /** Rotate the file at this size; keep this many rotated files. */
          maxBytes: z.number().int().min(1024).default(50 * 1024 * 1024),
          keep: z.number().int().min(0).max(100).default(5),
          /** POST each record here (JSON); empty: no POST. */
          postUrl: z.union([z.url(), z.literal('')]).default(''),
          /** Header added to each POST, e.g. `Authorization: Bearer …` (value from env WA_SIP_BRIDGE_CDR_AUTH). */
          postAuthorization: z.string().default(''),
          postAttempts: z.number().int().min(1).max(20).default(5),
          postQueue: z.number().int().min(1).default(10_000),
        })
        .default({ file: '', maxBytes: 50 * 1024 * 1024, keep: 5, postUrl: '', postAuthorization: '', postAttempts: 5, postQueue: 10_000 }),
      /**
       * Admin API and live call view under /admin/, off while no token is set. Tokens by name (for
       * the audit log); env WA_SIP_BRIDGE_ADMIN_TOKEN adds one named "env".
       */
      admin: z
        .object({
          tokens: z.array(z.object({ name: z.string().regex(/^[\w.-]{1,40}$/, 'a short name'), token: z.string().min(16, 'at least 16 characters') })).default([]),
          /** Ended calls kept for the call view. */
          recentCalls: z.number().int().min(0).max(10_000).default(500),
          /** Click to call (POST /admin/calls): how long the WhatsApp user may ring before the call is given up. */
          clickToCallRingSec: z.number().positive().max(300).default(60),
        })
        .default({ tokens: [], recentCalls: 500, clickToCallRingSec: 60 }),
    })
    .default({
      metrics: { enabled: true, token: '' },
      cdr: { file: '', maxBytes: 50 * 1024 * 1024, keep: 5, postUrl: '', postAuthorization: '', postAttempts: 5, postQueue: 10_000 },
      admin: { tokens: [], recentCalls: 500, clickToCallRingSec: 60 },
    }),
  /**
   * Several instances behind one webhook URL, sharing call state in Redis (docs/scaling.md).
   * Absent: one instance, everything in memory, exactly as without it.
   */
  cluster: z
    .object({
      /** `redis://host:port/db` */
      redisUrl: z.string().regex(/^rediss?:\/\//, 'like redis://127.0.0.1:6379'),
      /** This instance's name in Redis; unique per instance. Default: hostname-pid. */
      instanceId: z.string().regex(/^[\w.-]{1,64}$/).optional(),
      /** Where the internal event route listens: an internal address only, never the public one. */
      internal: hostPort('127.0.0.1', 8090).default({ host: '127.0.0.1', port: 8090 }),
      /** This instance's internal HTTP base URL as other instances reach it (`http://10.0.0.5:8090`). */
      advertiseUrl: z.url(),
      /** Shared HMAC key of the internal hop. Env WA_SIP_BRIDGE_CLUSTER_SECRET. */
      secret: z.string().min(16, 'at least 16 characters'),
      /** How often this instance renews its lease. */
      heartbeatMs: z.number().int().min(100).default(1000),
      /** An instance whose lease is not renewed for this long is dead. */
      leaseMs: z.number().int().min(300).default(5000),
      /** Key prefix, so several bridges can share one Redis. */
      keyPrefix: z.string().default('wsb:'),
    })
    .refine((c) => c.leaseMs > 2 * c.heartbeatMs, 'leaseMs must be more than twice heartbeatMs')
    .optional(),
});

export type Config = z.infer<typeof configSchema>;
export type RouteRule = z.infer<typeof route>;
export type WhatsAppConfig = Config['whatsapp'];
