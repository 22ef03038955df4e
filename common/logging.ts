import { pino } from 'pino';

export type Logger = pino.Logger;

/**
 * Paths never written to logs: credentials and tensor data. Requests are logged by fastify's
 * serializers (method, url, ids), never with bodies.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  'authorization',
  '*.authorization',
  '*["x-api-key"]',
  'apiKey',
  '*.apiKey',
  'key',
  'token',
  '*.token',
  'jwt',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'data',
  'inputs[*].data',
  'outputs[*].data',
];

export interface LoggerOptions {
  level?: string;
  name: string;
  /** Where to write; defaults to stdout. */
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    name: opts.name,
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return opts.destination === undefined ? pino(options) : pino(options, opts.destination);
}

/** A logger that writes nothing, for tests and embedding. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
