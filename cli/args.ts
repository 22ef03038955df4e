import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A usage error: printed with the command's help, exit status 2. */
export class UsageError extends Error {}

/**
 * A failure with its own documented exit status (the control plane's: 3 conflict, 4 Redis
 * unreachable, 5 a gateway refused, 6 timed out waiting).
 */
export class ExitError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const EXIT = { conflict: 3, redisUnreachable: 4, refused: 5, timeout: 6 } as const;

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * A flag's value, else its environment variable, else the default. An empty environment variable
 * counts as unset (`INFERGATE_PORT=` in a compose file or a shell means "not given").
 */
export function setting(flag: string | undefined, env: string, fallback: string): string;
export function setting(flag: string | undefined, env: string): string | undefined;
export function setting(flag: string | undefined, env: string, fallback?: string): string | undefined {
  if (flag !== undefined) return flag;
  const value = process.env[env];
  return value === undefined || value === '' ? fallback : value;
}

export function port(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`${name} must be a port number, not '${value}'`);
  return n;
}

export function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`${name} must be a positive integer, not '${value}'`);
  return n;
}

export function nonNegativeInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new UsageError(`${name} must be a non-negative integer, not '${value}'`);
  return n;
}

/** `--body-limit` and `--drain-timeout-ms`, which both servers take, with their variables. */
export function serverLimits(values: {
  'body-limit'?: string | undefined;
  'drain-timeout-ms'?: string | undefined;
}): {
  bodyLimit: number;
  drainTimeoutMs: number;
} {
  return {
    bodyLimit: positiveInt(
      setting(values['body-limit'], 'INFERGATE_BODY_LIMIT', String(64 * 1024 * 1024)),
      '--body-limit',
    ),
    drainTimeoutMs: positiveInt(
      setting(values['drain-timeout-ms'], 'INFERGATE_DRAIN_TIMEOUT_MS', '30000'),
      '--drain-timeout-ms',
    ),
  };
}
