/**
 * `wa-sip-bridge simulate`: a simulated WhatsApp call into the REAL PBX the config points at,
 * through a bridge started in this process with that config. The built-in simulator stands in
 * for WhatsApp (Graph API, signed webhooks, a WebRTC peer speaking a tone), so the bridge's
 * Graph base URL, token and webhook secret are the simulator's; everything else (SIP, routing,
 * media engine) is the user's. `--outbound` is the other direction: the simulator is a
 * WhatsApp user answering a call an agent dials through the PBX.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { networkInterfaces } from 'node:os';
import sip from 'sip';
import { startApp, type RunningApp } from '../app.js';
import { buildConfig, ConfigError, ENV } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createLogger } from '../util/log.js';
import type { WhatsAppSimulator } from '../simulator/whatsapp.js';
import { configPath, EXIT, loadForCli, parseCliArgs, readRawConfig, stdio, UsageError, type CliIo } from './common.js';
import { LogSink, observeBridge } from './observe.js';
import { dtmfEvent } from './simulate-media.js';
import { simulateInbound, simulateOutbound } from './simulate-call.js';

export const SIMULATE_USAGE = `usage: wa-sip-bridge simulate [--config <file>] [--to <extension|sip-uri>] [--duration <s>] [--tone <Hz>]
                             [--from <wa-id>] [--dtmf <digit>] [--log <file>]
       wa-sip-bridge simulate --outbound [--config <file>] [--to <wa-id>] [--wait <s>] [--duration <s>] [--tone <Hz>]

Places a simulated WhatsApp call into your PBX through a bridge started here with your config
(the built-in simulator stands in for WhatsApp: its Graph API, its signed webhooks, a WebRTC
peer speaking a tone). Reports each set-up step with its time, the PBX's answer and codec,
whether audio crosses both ways (dial an echo extension to see the tone come back), DTMF, and
how the call ended. Stop a running bridge first: this one binds the same SIP ports.

  --to         inbound: the extension (replaces the user part of routing.default) or a SIP URI
               to call; default: your routing rules. --outbound: the WhatsApp number the agent
               dials (default 15550100002).
  --duration   seconds the call lasts once answered (default 10)
  --tone       Hz of the tone the WhatsApp user speaks (default 1000)
  --from       the caller's WhatsApp number (default 15550100001)
  --dtmf       a digit sent as RFC 4733 once audio flows (default 5; "none" to skip)
  --wait       --outbound: seconds to wait for the agent's call (default 60)
  --log        write the bridge's JSON log lines to this file`;

export interface SimulateOptions {
  outbound: boolean;
  to: string | undefined;
  from: string;
  durationSec: number;
  toneHz: number;
  dtmf: string | undefined;
  waitSec: number;
}

function positive(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number`);
  return n;
}

export async function runSimulate(argv: string[], io: CliIo = stdio): Promise<number> {
  const { values: v } = parseCliArgs(argv, {
    outbound: { type: 'boolean' },
    to: { type: 'string' },
    from: { type: 'string' },
    duration: { type: 'string' },
    tone: { type: 'string' },
    dtmf: { type: 'string' },
    wait: { type: 'string' },
    log: { type: 'string' },
  });
  if (v.help) {
    io.out(SIMULATE_USAGE);
    return EXIT.ok;
  }
  const dtmf = v.dtmf === 'none' ? undefined : (v.dtmf ?? '5');
  if (dtmf !== undefined && dtmfEvent(dtmf) === undefined) throw new UsageError('--dtmf must be one of 0-9 * # A-D, or none');
  const from = v.from ?? '15550100001';
  if (!/^\d{6,15}$/.test(from)) throw new UsageError('--from must be a WhatsApp number: digits, country code first');
  const opts: SimulateOptions = {
    outbound: v.outbound ?? false,
    to: v.to,
    from,
    durationSec: positive('duration', v.duration, 10),
    toneHz: positive('tone', v.tone, 1000),
    dtmf,
    waitSec: positive('wait', v.wait, 60),
  };
  const path = configPath(v.config);
  io.out(`wa-sip-bridge simulate${opts.outbound ? ' --outbound' : ''}: ${path ?? '(no config file: built-in defaults)'}`);
  const user = loadForCli(path, io);
  if (!user) return EXIT.badConfig;
  if (opts.outbound && !user.outbound.enabled) {
    io.out('✗ outbound.enabled is false: the bridge takes no calls from the PBX');
    io.out('    fix: set outbound.enabled: true with outbound.allowFrom (the PBX\'s address) or outbound.auth');
    return EXIT.failed;
  }

  // The simulator is loaded here only: the bridge itself never imports it.
  const { WhatsAppSimulator } = await import('../simulator/whatsapp.js');
  const token = `simulate-${randomBytes(12).toString('hex')}`;
  const secret = randomBytes(24).toString('hex');
  const phoneNumberId = user.whatsapp.phoneNumberIds[0] ?? user.outbound.phoneNumberId ?? '100000000000001';
  const sim = await WhatsAppSimulator.start({ phoneNumberId, businessNumber: '15550000000', accessToken: token, appSecret: secret });
  let app: RunningApp | undefined;
  const copy = v.log ? createWriteStream(v.log, { flags: 'a' }) : undefined;
  try {
    const target = opts.outbound ? undefined : inboundTarget(opts.to, user);
    let config: Readonly<Config>;
    try {
      config = simulateConfig(readRawConfig(path), process.env, sim, token, secret, target);
    } catch (err) {
      if (err instanceof ConfigError) {
        io.out(`✗ ${err.message}`);
        return EXIT.badConfig;
      }
      throw err;
    }
    const sink = new LogSink(copy);
    const log = createLogger({ level: config.log.level === 'silent' ? 'warn' : config.log.level, destination: sink });
    try {
      app = await startApp(config, log);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      io.out(`✗ the bridge could not start: ${e.message}`);
      if (e.code === 'EADDRINUSE') io.out('    fix: a SIP or media port of the config is taken: stop the running bridge first (simulate binds the same ports)');
      return EXIT.failed;
    }
    const running = app;
    // Ctrl-C mid-call: end the call properly (BYE to the PBX) before leaving.
    process.once('SIGINT', () => {
      io.out('interrupted: ending the call');
      void running.close().finally(() => process.exit(130));
    });
    const observer = observeBridge(app);
    sim.setWebhookUrl(`${app.url}/webhook`);
    io.out(`the bridge runs in this process with this config, except: Graph API → the built-in WhatsApp simulator (${sim.graphUrl}), token and webhook secret → the simulator's (it signs every webhook), HTTP → ${app.url}`);
    const ctx = { app, sim, observer, sink, io, config, phoneNumberId };
    return opts.outbound ? await simulateOutbound(ctx, opts, dialUri(config, opts.to ?? '15550100002')) : await simulateInbound(ctx, opts, target);
  } finally {
    await app?.close();
    await sim.close();
    copy?.end();
  }
}

/** `--to`: a SIP URI as is; an extension replaces the user part of routing.default. */
export function inboundTarget(to: string | undefined, config: Readonly<Config>): string | undefined {
  if (to === undefined) return undefined;
  if (/^sips?:/i.test(to)) return to;
  if (!/^[\w.*#+-]+$/.test(to)) throw new UsageError('--to must be an extension (digits/letters) or a SIP URI');
  const uri = sip.parseUri(config.routing.default);
  if (!uri) throw new UsageError(`routing.default is not a SIP URI: ${config.routing.default}`);
  return sip.stringifyUri({ ...uri, user: to });
}

/** The user's config with WhatsApp replaced by the simulator, and (with --to) one route. */
export function simulateConfig(
  raw: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  sim: Pick<WhatsAppSimulator, 'graphUrl'>,
  token: string,
  secret: string,
  target: string | undefined,
): Readonly<Config> {
  const input = structuredClone(raw) as Record<string, any>;
  const wa = { ...(input.whatsapp ?? {}) };
  delete wa.baseUrl;
  delete wa.apiKey;
  input.whatsapp = { ...wa, provider: 'meta', graphBaseUrl: sim.graphUrl, accessToken: token, appSecret: secret };
  input.http = { ...(input.http ?? {}), host: '127.0.0.1', port: 0 };
  if (target) input.routing = { default: target, rules: [] };
  // The environment's WhatsApp secrets would override the simulator's: leave them out.
  const rest: NodeJS.ProcessEnv = { ...env };
  for (const k of [ENV.accessToken, ENV.appSecret, ENV.dialog360ApiKey, ENV.configFile]) delete rest[k];
  return buildConfig(input, rest);
}

/** The SIP URI an agent dials to reach WhatsApp user `waId` through this bridge. */
export function dialUri(config: Readonly<Config>, waId: string): string {
  const listen = config.sip.udp ?? config.sip.tcp!;
  let host = config.sip.contactHost;
  if (!host) {
    const ip =
      listen.host === '0.0.0.0' || listen.host === '::'
        ? (Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1')
        : listen.host;
    host = `${ip}:${listen.port}`;
  }
  return `sip:${config.outbound.dialPrefix}${waId}@${host}${config.sip.udp ? '' : ';transport=tcp'}`;
}
