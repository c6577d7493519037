/**
 * `wa-sip-bridge check [--config file]`: validate the config (every problem at once), then
 * probe what it points at and print a ✓/✗ table with the fix for each ✗. Exit 0 when nothing
 * is ✗, 1 when something is, 2 when the config itself is invalid.
 */
import type { Config } from '../config/schema.js';
import { configPath, EXIT, loadForCli, MARK, parseCliArgs, stdio, type CliIo } from './common.js';
import { probeGraph, probeRtpengine, probeSipOptions, probeWebhook, webhookSecretRow, type ProbeResult } from './probes.js';

export const CHECK_USAGE = `usage: wa-sip-bridge check [--config <file>] [--timeout <ms>]

Validates the config (the file, or WA_SIP_BRIDGE_CONFIG, plus the secrets in the environment)
and probes what it points at: each PBX target (SIP OPTIONS), each rtpengine (ng ping), the
Graph token (an authenticated GET) and, when check.publicWebhookUrl is set, the webhook URL
(Meta's verify handshake). Exit code 0: all good; 1: something is ✗; 2: invalid config.`;

export async function runCheck(argv: string[], io: CliIo = stdio): Promise<number> {
  const { values } = parseCliArgs(argv, { timeout: { type: 'string' } });
  if (values.help) {
    io.out(CHECK_USAGE);
    return EXIT.ok;
  }
  const path = configPath(values.config);
  io.out(`wa-sip-bridge check: ${path ?? '(no config file: built-in defaults)'}`);
  const config = loadForCli(path, io);
  if (!config) return EXIT.badConfig;
  const timeoutMs = values.timeout !== undefined ? Number(values.timeout) : config.check.timeoutMs;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    io.err(`wa-sip-bridge check: --timeout must be a positive number of ms`);
    return EXIT.usage;
  }
  io.out(`${MARK.ok} config: valid (${config.routing.rules.length} routing rule${config.routing.rules.length === 1 ? '' : 's'}, media ${config.media.engine}, ${config.whatsapp.provider})`);

  const rows = await runProbes(config, timeoutMs);
  printTable(rows, io);
  const bad = rows.filter((r) => r.status === 'bad').length;
  io.out(bad === 0 ? 'all checks passed' : `${bad} check${bad === 1 ? '' : 's'} failed`);
  return bad === 0 ? EXIT.ok : EXIT.failed;
}

/** Every probe, concurrently (each is bounded), in a stable order. */
export async function runProbes(config: Readonly<Config>, timeoutMs: number): Promise<ProbeResult[]> {
  const targets = [...new Set([...config.routing.rules.map((r) => r.target), config.routing.default])];
  const probes: Array<Promise<ProbeResult>> = targets.map((t) =>
    probeSipOptions(t, config, timeoutMs, `PBX ${t}${t === config.routing.default ? ' (default)' : ''}`),
  );
  if (config.media.engine === 'rtpengine') {
    for (const ng of config.media.rtpengine.ng) probes.push(probeRtpengine(ng, Math.min(timeoutMs, config.media.rtpengine.timeoutMs)));
  } else {
    probes.push(Promise.resolve({ status: 'skip', subject: 'rtpengine', detail: 'not used (media.engine: embedded)' }));
  }
  probes.push(probeGraph(config, timeoutMs));
  probes.push(Promise.resolve(webhookSecretRow(config)));
  probes.push(probeWebhook(config, timeoutMs));
  return Promise.all(probes);
}

export function printTable(rows: ProbeResult[], io: CliIo): void {
  const width = Math.min(60, Math.max(...rows.map((r) => r.subject.length)));
  for (const r of rows) {
    const mark = r.status === 'ok' ? MARK.ok : r.status === 'bad' ? MARK.bad : MARK.skip;
    io.out(`${mark} ${r.subject.padEnd(width)}  ${r.detail}`);
    if (r.fix && r.status !== 'ok') io.out(`  ${' '.repeat(width)}  fix: ${r.fix}`);
  }
}
