/**
 * The flags of the edge: the admin port's bearer token, TLS certificate files for the servers,
 * and a CA for Redis over TLS. Files named by a flag are read and checked here, at start, so that
 * a missing or unusable one stops the command with its flag and the reason (exit 2).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ServerTlsFiles } from '../common/server-tls.js';
import { loadServerTls, TlsFileError } from '../common/server-tls.js';
import type { AdminAuth } from '../gateway/admin-auth.js';
import { ExitError, setting, UsageError } from './args.js';

/** Exit status of a flag whose file is missing or unusable: that of a usage error. */
export const EXIT_BAD_FILE = 2;

export const ADMIN_FLAGS = {
  'admin-token-file': { type: 'string' },
  'admin-metrics-open': { type: 'boolean' },
} as const;

export const ADMIN_FLAGS_HELP = `It stays on loopback unless --admin-host says otherwise; bound anywhere else it needs
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

export const TLS_FLAGS = {
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
} as const;

export const TLS_CLIENT_CA_FLAG = { 'tls-client-ca': { type: 'string' } } as const;

export const TLS_FLAGS_HELP = `TLS: --tls-cert FILE --tls-key FILE (PEM) serve HTTPS; the files are watched and a new pair is
taken without dropping connections (a pair that does not match is logged and skipped).`;

/**
 * `--tls-cert`, `--tls-key` (and `--tls-client-ca`), or undefined: plain HTTP. The files are read
 * and checked now, so that a bad one stops the command before anything starts.
 */
export function serverTlsFiles(values: {
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  'tls-client-ca'?: string | undefined;
}): ServerTlsFiles | undefined {
  const cert = setting(values['tls-cert'], 'INFERGATE_TLS_CERT');
  const key = setting(values['tls-key'], 'INFERGATE_TLS_KEY');
  const clientCa = setting(values['tls-client-ca'], 'INFERGATE_TLS_CLIENT_CA');
  if (cert === undefined && key === undefined) {
    if (clientCa !== undefined) throw new UsageError('--tls-client-ca needs --tls-cert and --tls-key');
    return undefined;
  }
  if (cert === undefined || key === undefined) throw new UsageError('--tls-cert and --tls-key go together');
  const files = { cert, key, ...(clientCa === undefined ? {} : { clientCa }) };
  try {
    loadServerTls(files);
  } catch (e) {
    throw tlsFileExit(e);
  }
  return files;
}

const TLS_FLAG_OF: Record<keyof ServerTlsFiles, string> = {
  cert: '--tls-cert',
  key: '--tls-key',
  clientCa: '--tls-client-ca',
};

/** A TLS file problem met while building a server, as the command reports it (exit 2). */
export function tlsFileExit(e: unknown): unknown {
  if (!(e instanceof TlsFileError)) return e;
  return new ExitError(EXIT_BAD_FILE, `${TLS_FLAG_OF[e.which]} ${e.file}: ${e.message}`);
}
