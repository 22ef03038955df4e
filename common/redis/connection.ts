/**
 * Redis connections for fleet mode: the URL checked once (`redis://` or `rediss://`, user and
 * password in it, an optional database number as its path), ioredis options for a long-lived
 * server connection (reconnect with capped, jittered backoff; commands fail fast while
 * disconnected, never queue) or a one-shot CLI connection (no reconnect), and the URL as it may be
 * printed: never with its password.
 */
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';

export interface RedisTarget {
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
  readonly tls: boolean;
  /** With `tls`: a CA to trust instead of the system's, a client certificate and key (PEM). */
  readonly tlsOptions?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer } | undefined;
  /** The URL without its password: what logs and errors show. */
  readonly display: string;
}

export class RedisUrlError extends Error {}

export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisUrlError(
      `not a URL: '${redactUrl(url)}' (expected redis://[user:password@]host[:port][/db])`,
    );
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new RedisUrlError(`a Redis URL starts with redis:// or rediss://, not ${u.protocol}//`);
  }
  if (u.hostname === '') throw new RedisUrlError('the Redis URL has no host');
  const path = u.pathname.replace(/^\//, '');
  const db = path === '' ? 0 : Number(path);
  if (!Number.isInteger(db) || db < 0 || db > 15) {
    throw new RedisUrlError(`the Redis URL's path is a database number 0-15, not '/${path}'`);
  }
  const tls = u.protocol === 'rediss:';
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port === '' ? 6379 : Number(u.port),
    username: u.username === '' ? undefined : decodeURIComponent(u.username),
    password: u.password === '' ? undefined : decodeURIComponent(u.password),
    db,
    tls,
    display: redactUrl(url),
  };
}

/** A Redis URL with its password replaced by `***` (also for strings that are not URLs). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}

export type ConnectionRole = 'server' | 'cli';

export interface OpenOptions {
  /** `server`: reconnects forever with backoff; `cli`: one try, then an error. */
  readonly role: ConnectionRole;
  /** Shown by `CLIENT LIST`: which gateway or tool holds the connection. */
  readonly name?: string;
  readonly connectTimeoutMs?: number;
}

/** Backoff between reconnects: 50 ms doubling to 2 s, with jitter so a fleet does not reconnect in step. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(2000, 50 * 2 ** Math.min(attempt, 6));
  return Math.round(base / 2 + random() * (base / 2));
}

export function redisOptions(target: RedisTarget, opts: OpenOptions): RedisOptions {
  const server = opts.role === 'server';
  return {
    host: target.host,
    port: target.port,
    username: target.username,
    password: target.password,
    db: target.db,
    // SNI takes a host name only (RFC 6066); an address is checked against the certificate's IPs.
    ...(target.tls
      ? { tls: { ...(isIP(target.host) === 0 ? { servername: target.host } : {}), ...target.tlsOptions } }
      : {}),
    connectionName: opts.name,
    connectTimeout: opts.connectTimeoutMs ?? (server ? 2000 : 3000),
    lazyConnect: true,
    // A command while disconnected fails at once (the caller has a fallback), never waits in a queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: server ? 0 : 1,
    retryStrategy: server ? (times: number) => reconnectDelay(times) : () => null,
    // ioredis would print a warning for every failed reconnect; the caller logs outages once.
    showFriendlyErrorStack: false,
  };
}

/** A connection, not yet connected (`lazyConnect`): call `connect()`; errors are the caller's to log. */
export function openRedis(target: RedisTarget, opts: OpenOptions): Redis {
  const redis = new Redis(redisOptions(target, opts));
  // Without a listener, ioredis reports each connection error on the console.
  redis.on('error', () => {});
  return redis;
}

/** One clear line for a Redis error, without the URL's password (ioredis messages never carry it). */
export function describeRedisError(target: RedisTarget, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code;
  if (code === 'ECONNREFUSED')
    return `Redis at ${target.display} refused the connection (is redis-server running?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `Redis host '${target.host}' not found`;
  if (code === 'ETIMEDOUT' || /timeout/i.test(e?.message ?? ''))
    return `Redis at ${target.display} did not answer in time`;
  const message = (e?.message ?? String(err)).replace(/\s+/g, ' ').slice(0, 300);
  if (/NOAUTH|WRONGPASS|invalid username-password/i.test(message)) {
    return `Redis at ${target.display} refused the credentials`;
  }
  // A peer that hangs up without a protocol error: ioredis says only "Connection is closed", or
  // the socket's ECONNRESET; over TLS 1.3 a missing client certificate looks like that.
  const hungUp =
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    /Connection is closed|Stream isn't writeable|ECONNRESET|certificate required/i.test(message);
  if (hungUp) {
    return target.tls
      ? `Redis at ${target.display} closed the TLS connection (a server that asks for a client certificate needs --redis-tls-cert and --redis-tls-key; a server without TLS needs redis://)`
      : `Redis at ${target.display} closed the connection (a server that speaks only TLS needs rediss://)`;
  }
  return `Redis at ${target.display}: ${message}`;
}
