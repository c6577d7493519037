import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Paths that may carry secrets anywhere in a logged object. pino replaces them with
 * "[redacted]" before serialising, so a token never reaches a log line.
 */
const REDACT_PATHS = [
  'accessToken',
  'apiKey',
  'appSecret',
  'verifyToken',
  'password',
  'authorization',
  'headers.authorization',
  'headers["d360-api-key"]',
  'headers["x-hub-signature-256"]',
  '*.accessToken',
  '*.apiKey',
  '*.appSecret',
  '*.verifyToken',
  '*.password',
  '*.authorization',
];

export interface LogOptions {
  level?: string;
  /** Where JSON lines go; defaults to stdout. Tests pass a stream to read them. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: LoggerOptions = {
    name: 'wa-sip-bridge',
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  return opts.destination ? pino(options, opts.destination as pino.DestinationStream) : pino(options);
}

/** A logger that drops everything: for unit tests and library use without logging. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
