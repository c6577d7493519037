/**
 * What the benches share: statistics (median, p90) and the start-up of a bridge on loopback
 * against the WhatsApp simulator, with the media engine the bench asked for, checked and
 * printed (a bench that measured another engine than it says is worse than none).
 */
import { startApp, type RunningApp } from '../src/app.js';
import { buildConfig } from '../src/config/load.js';
import { WhatsAppSimulator } from '../src/simulator/whatsapp.js';
import { createLogger, type Logger } from '../src/util/log.js';
import type { RtpengineDaemon } from '../test/harness/rtpengine.js';
import { freeDualPort } from '../test/harness/ports.js';
import { loopbackConfig } from '../test/support/bridge-config.js';

export type EngineName = 'rtpengine' | 'embedded';
export const ENGINE_NAMES: readonly EngineName[] = ['rtpengine', 'embedded'];

/** The engines to measure, in order: BENCH_ENGINES=embedded,rtpengine (default: `defaults`). */
export function enginesToMeasure(defaults: readonly EngineName[] = ENGINE_NAMES): EngineName[] {
  const names = (process.env.BENCH_ENGINES ?? defaults.join(',')).split(',').map((s) => s.trim());
  for (const n of names) if (!ENGINE_NAMES.includes(n as EngineName)) throw new Error(`BENCH_ENGINES: unknown engine ${n}`);
  return names as EngineName[];
}

/** The p-quantile (0..1) of xs, nearest rank. */
export function quantile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5);

/** "median 1.23 ms, p90 4.56 ms" */
export function summary(xs: readonly number[]): string {
  return `median ${quantile(xs, 0.5).toFixed(2)} ms, p90 ${quantile(xs, 0.9).toFixed(2)} ms`;
}

/** Fail unless the engine running is the one asked for; print which one it is. */
export function checkEngine(label: string, asked: EngineName, running: string): void {
  if (running !== asked) throw new Error(`${label}: asked for the ${asked} media engine, got ${running}`);
  console.log(`[${label}] media engine measured: ${running}`);
}

export interface BenchBridge {
  app: RunningApp;
  sim: WhatsAppSimulator;
  /** The bridge's SIP port (UDP and TCP) on 127.0.0.1. */
  sipPort: number;
  stop(): Promise<void>;
}

/**
 * A bridge on loopback (HTTP on a free port, SIP on a free UDP+TCP port of 127.0.0.1) driven by
 * a fresh WhatsApp simulator, on the media engine asked for. `rtpengine` is required for that
 * engine. `config` adds sections (routing, outbound...).
 */
export async function startBenchBridge(opts: {
  label: string;
  engine: EngineName;
  rtpengine?: RtpengineDaemon;
  config?: Record<string, unknown>;
}): Promise<BenchBridge> {
  if (opts.engine === 'rtpengine' && !opts.rtpengine) throw new Error('startBenchBridge: the rtpengine engine needs a daemon');
  const sim = await WhatsAppSimulator.start({ phoneNumberId: '1', businessNumber: '13175551399', accessToken: 't', appSecret: 's' });
  let bridge: Omit<BenchBridge, 'sim'>;
  try {
    bridge = await startBridgeOnly({ ...opts, graphUrl: sim.graphUrl });
  } catch (err) {
    await sim.close();
    throw err;
  }
  sim.setWebhookUrl(`${bridge.app.url}/webhook`);
  return {
    ...bridge,
    sim,
    stop: async () => {
      await bridge.stop();
      await sim.close();
    },
  };
}

/**
 * The bridge alone, against a Graph API at `graphUrl` (app secret 's', access token 't'), on
 * the engine asked for (checked and printed), with `logger` (default silent).
 */
export async function startBridgeOnly(opts: {
  label: string;
  engine: EngineName;
  graphUrl: string;
  rtpengine?: RtpengineDaemon;
  config?: Record<string, unknown>;
  /** Added to the `media` and `sip` sections. */
  media?: Record<string, unknown>;
  sip?: Record<string, unknown>;
  logger?: Logger;
}): Promise<Omit<BenchBridge, 'sim'>> {
  const sipPort = await freeDualPort('127.0.0.1');
  const app = await startApp(
    buildConfig(
      loopbackConfig({
        graph: { graphUrl: opts.graphUrl, accessToken: 't', appSecret: 's' },
        sipPort,
        ...(opts.sip ? { sip: opts.sip } : {}),
        media: { engine: opts.engine, ...(opts.rtpengine ? { rtpengine: { ng: [opts.rtpengine.ng] } } : {}), ...opts.media },
        ...(opts.config ? { rest: opts.config } : {}),
      }),
    ),
    opts.logger ?? createLogger({ level: 'silent' }),
  );
  try {
    checkEngine(opts.label, opts.engine, app.media.name);
  } catch (err) {
    await app.close();
    throw err;
  }
  return { app, sipPort, stop: () => app.close() };
}
