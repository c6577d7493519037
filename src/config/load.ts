import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.js';
import { webhookAuthProblems } from '../whatsapp/webhook-auth.js';
import { webhookAuthOf } from './webhook.js';

/** Thrown at start-up with every problem found, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/**
 * Environment variables the bridge reads, all here: secrets stay out of config files.
 * Nothing else in the code base reads `process.env`.
 */
export const ENV = {
  configFile: 'WA_SIP_BRIDGE_CONFIG',
  accessToken: 'WA_ACCESS_TOKEN',
  appSecret: 'WA_APP_SECRET',
  verifyToken: 'WA_VERIFY_TOKEN',
  dialog360ApiKey: 'WA_360DIALOG_API_KEY',
  webhookHeaderSecret: 'WA_WEBHOOK_HEADER_SECRET',
  sipAuthPassword: 'SIP_AUTH_PASSWORD',
  sipInboundPassword: 'SIP_INBOUND_PASSWORD',
  logLevel: 'LOG_LEVEL',
  metricsToken: 'WA_SIP_BRIDGE_METRICS_TOKEN',
  adminToken: 'WA_SIP_BRIDGE_ADMIN_TOKEN',
  cdrAuthorization: 'WA_SIP_BRIDGE_CDR_AUTH',
  clusterSecret: 'WA_SIP_BRIDGE_CLUSTER_SECRET',
} as const;

type Env = Record<string, string | undefined>;

/**
 * Read the file named by WA_SIP_BRIDGE_CONFIG (if any), apply env overrides, validate, and refuse
 * a configuration that would take webhooks from anyone (docs/security.md "Webhooks").
 * With no config file at all and no WA_APP_SECRET, the bridge runs the README's local trial:
 * unsigned webhooks are accepted from this machine only, and it says so loudly at start.
 */
export function loadConfig(env: Env = process.env): Readonly<Config> {
  const file = env[ENV.configFile];
  const raw = file ? readConfigFile(file) : env[ENV.appSecret] ? {} : { whatsapp: { provider: 'meta', allowUnsignedWebhooks: 'loopback' } };
  const cfg = buildConfig(raw, env);
  const problems = webhookAuthProblems(webhookAuthOf(cfg.whatsapp));
  if (problems.length) throw new ConfigError(problems);
  return cfg;
}

export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read config file ${path}: ${(err as Error).message}`]);
  }
  try {
    return extname(path) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError([`cannot parse config file ${path}: ${(err as Error).message}`]);
  }
}

/** Validate `raw` (the parsed file) with env overrides into a frozen, typed config. */
export function buildConfig(raw: unknown, env: Env = {}): Readonly<Config> {
  const input = structuredClone(raw ?? {}) as Record<string, any>;
  if (typeof input !== 'object' || Array.isArray(input)) throw new ConfigError(['config must be an object']);
  applyEnv(input, env);
  const result = configSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
  }
  const cfg = result.data;
  const problems = crossCheck(cfg);
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(cfg);
}

function applyEnv(input: Record<string, any>, env: Env): void {
  const set = (path: string[], value: string | undefined) => {
    if (value === undefined || value === '') return;
    let o = input;
    for (const k of path.slice(0, -1)) o = o[k] ??= {};
    o[path[path.length - 1]!] = value;
  };
  const wa = (input.whatsapp ??= {}) as Record<string, unknown>;
  wa.provider ??= 'meta';
  set(['whatsapp', 'accessToken'], env[ENV.accessToken]);
  set(['whatsapp', 'appSecret'], env[ENV.appSecret]);
  set(['whatsapp', 'verifyToken'], env[ENV.verifyToken]);
  set(['whatsapp', 'apiKey'], env[ENV.dialog360ApiKey]);
  if (wa.webhookAuthHeader) set(['whatsapp', 'webhookAuthHeader', 'value'], env[ENV.webhookHeaderSecret]);
  if (input.sip?.auth) set(['sip', 'auth', 'password'], env[ENV.sipAuthPassword]);
  if (input.outbound?.auth) set(['outbound', 'auth', 'password'], env[ENV.sipInboundPassword]);
  if (input.cluster) set(['cluster', 'secret'], env[ENV.clusterSecret]);
  set(['log', 'level'], env[ENV.logLevel]);
  set(['ops', 'metrics', 'token'], env[ENV.metricsToken]);
  set(['ops', 'cdr', 'postAuthorization'], env[ENV.cdrAuthorization]);
  const adminToken = env[ENV.adminToken];
  if (adminToken) {
    const ops = (input.ops ??= {}) as { admin?: { tokens?: unknown[] } };
    const admin = (ops.admin ??= {});
    admin.tokens = [...(admin.tokens ?? []), { name: 'env', token: adminToken }];
  }
}

function crossCheck(cfg: Config): string[] {
  const problems: string[] = [];
  if (cfg.media.embedded.portMin >= cfg.media.embedded.portMax) {
    problems.push('media.embedded: portMin must be below portMax');
  }
  const o = cfg.outbound;
  if (o.enabled) {
    if (o.allowFrom.length === 0 && !o.auth) {
      problems.push('outbound: enabled with neither outbound.allowFrom nor outbound.auth: anyone could dial WhatsApp numbers through the bridge');
    }
    if (o.auth && o.auth.password === '') problems.push('outbound.auth: set the password in SIP_INBOUND_PASSWORD');
    if (!o.phoneNumberId && !o.callerRules.length && cfg.whatsapp.phoneNumberIds.length === 0) {
      problems.push('outbound: say which business number places calls (outbound.phoneNumberId, outbound.callerRules or whatsapp.phoneNumberIds)');
    }
  }
  if (!cfg.sip.udp && !cfg.sip.tcp) problems.push('sip: at least one of sip.udp and sip.tcp must be set');
  for (const [i, r] of cfg.routing.rules.entries()) {
    if (r.hours) {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: r.hours.timezone });
      } catch {
        problems.push(`routing.rules.${i}.hours.timezone: unknown time zone "${r.hours.timezone}"`);
      }
    }
  }
  return problems;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
