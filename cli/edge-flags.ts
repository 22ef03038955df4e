/**
 * The flags of the edge: the admin port's bearer token, TLS certificate files for the servers,
 * and a CA for Redis over TLS. Files named by a flag are read and checked here, at start, so that
 * a missing or unusable one stops the command with its flag and the reason (exit 2).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { AdminAuth } from '../gateway/admin-auth.js';
import { ExitError, setting, UsageError } from './args.js';

/** Exit status of a flag whose file is missing or unusable: that of a usage error. */
export const EXIT_BAD_FILE = 2;

export const ADMIN_FLAGS = {
  'admin-token-file': { type: 'string' },
  'admin-metrics-open': { type: 'boolean' },
} as const;

export const ADMIN_FLAGS_HELP = `Admin port: bound to loopback by default (--admin-host 127.0.0.1). Bound anywhere else it needs
--admin-token-file FILE (a bearer token of at least 16 characters, e.g. 'openssl rand -hex 32 > FILE'):
every admin route then needs 'Authorization: Bearer <token>'; --admin-metrics-open leaves /metrics open.`;

/** Whether a host name or address binds only to this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/** A file named by a flag, read at start; its problem named with the flag. */
export function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new ExitError(EXIT_BAD_FILE, `${flag} ${file}: cannot read the file (${code})`);
  }
}

const MIN_TOKEN = 16;

/**
 * `--admin-token-file` and `--admin-metrics-open` for an admin port on `adminHost`: the token,
 * required when the host is not loopback. The token is never printed.
 */
export function adminAuth(
  values: { 'admin-token-file'?: string | undefined; 'admin-metrics-open'?: boolean | undefined },
  adminHost: string,
): AdminAuth | undefined {
  const file = setting(values['admin-token-file'], 'INFERGATE_ADMIN_TOKEN_FILE');
  const metricsOpen =
    values['admin-metrics-open'] === true ||
    ['1', 'true'].includes(setting(undefined, 'INFERGATE_ADMIN_METRICS_OPEN', '').toLowerCase());
  if (file === undefined) {
    if (!isLoopback(adminHost)) {
      throw new UsageError(
        `--admin-host ${adminHost} is not a loopback address: the admin port then needs --admin-token-file FILE (a bearer token), or bind it to 127.0.0.1`,
      );
    }
    return undefined;
  }
  const token = readFlagFile('--admin-token-file', file).toString('utf8').trim();
  if (token.length < MIN_TOKEN || /\s/.test(token)) {
    throw new ExitError(
      EXIT_BAD_FILE,
      `--admin-token-file ${file}: the token must be one word of at least ${MIN_TOKEN} characters (e.g. openssl rand -hex 32 > ${file})`,
    );
  }
  return { token, metricsOpen };
}
