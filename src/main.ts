#!/usr/bin/env node
import { loadConfig, ConfigError } from './config/load.js';
import { createLogger } from './util/log.js';
import { startApp } from './app.js';
import { isCommand, runCommand } from './cli/index.js';

/** `wa-sip-bridge`: load and validate the config, start, and drain then stop on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`wa-sip-bridge: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: config.log.level });
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception (contained; the bridge keeps running)'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (contained; the bridge keeps running)'));

  const app = await startApp(config, log, { reloadConfig: () => loadConfig() });
  // SIGHUP: new routing for new calls from the config file; a file that does not validate is refused.
  process.on('SIGHUP', () => void app.reloadRouting('SIGHUP'));
  const exit = (p: Promise<void>) =>
    p.then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  // First signal: drain (no new calls; calls in progress carry on up to shutdown.drainSec).
  // Second signal: end every call now. Either way WhatsApp legs get their terminate first.
  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals === 1) {
      log.info({ signal, activeCalls: app.bridge.activeCalls, drainSec: config.shutdown.drainSec }, 'stopping: draining (send the signal again to end every call now)');
      // Ending the calls left at the deadline is bounded (media and Graph timeouts); this only guards against a stuck library.
      setTimeout(() => process.exit(1), (config.shutdown.drainSec + 30) * 1000).unref();
      void exit(app.drain());
      return;
    }
    if (signals > 2) return;
    log.warn({ signal, activeCalls: app.bridge.activeCalls }, 'stopping now: ending every call');
    // Calls end without waiting for the PBX; this only guards against a stuck library.
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    void exit(app.close());
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

const command = process.argv[2];
(isCommand(command) ? runCommand(command, process.argv.slice(3)).then((code) => process.exit(code)) : main()).catch((err) => {
  process.stderr.write(`wa-sip-bridge: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
