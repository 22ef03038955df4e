/** The fleet-mode flags that several commands share: the Redis URL, the key prefix. */
import { parseRedisUrl, type RedisTarget, RedisUrlError } from '../common/redis/connection.js';
import { DEFAULT_PREFIX, type FleetKeys, fleetKeys } from '../common/redis/keys.js';
import { setting, UsageError } from './args.js';
import { readFlagFile } from './edge-flags.js';

export const FLEET_FLAGS = {
  redis: { type: 'string' },
  'redis-prefix': { type: 'string' },
} as const;

/** Redis over TLS (a rediss:// URL): the CA that signed its certificate, a client certificate. */
export const REDIS_TLS_FLAGS = {
  'redis-tls-ca': { type: 'string' },
  'redis-tls-cert': { type: 'string' },
  'redis-tls-key': { type: 'string' },
} as const;

export const REDIS_TLS_HELP = `Redis over TLS: a rediss:// URL; --redis-tls-ca FILE trusts the CA that signed the server's
certificate (else the system's CAs), --redis-tls-cert FILE --redis-tls-key FILE present a client certificate.`;

type RedisTlsValues = {
  'redis-tls-ca'?: string | undefined;
  'redis-tls-cert'?: string | undefined;
  'redis-tls-key'?: string | undefined;
};

/** `--redis URL` (or INFERGATE_REDIS_URL) and `--redis-prefix` (INFERGATE_REDIS_PREFIX), or undefined. */
export function fleetTarget(
  values: {
    redis?: string | undefined;
    'redis-prefix'?: string | undefined;
  } & RedisTlsValues,
): { target: RedisTarget; keys: FleetKeys } | undefined {
  const url = setting(values.redis, 'INFERGATE_REDIS_URL');
  if (url === undefined) return undefined;
  let parsed: { target: RedisTarget; keys: FleetKeys };
  try {
    parsed = {
      target: parseRedisUrl(url),
      keys: fleetKeys(setting(values['redis-prefix'], 'INFERGATE_REDIS_PREFIX', DEFAULT_PREFIX)),
    };
  } catch (e) {
    if (e instanceof RedisUrlError) throw new UsageError(`--redis: ${e.message}`);
    throw new UsageError(`--redis-prefix: ${(e as Error).message}`);
  }
  const tlsOptions = redisTls(values, parsed.target.tls);
  return tlsOptions === undefined ? parsed : { ...parsed, target: { ...parsed.target, tlsOptions } };
}

function redisTls(values: RedisTlsValues, tls: boolean): RedisTarget['tlsOptions'] {
  const ca = setting(values['redis-tls-ca'], 'INFERGATE_REDIS_TLS_CA');
  const cert = setting(values['redis-tls-cert'], 'INFERGATE_REDIS_TLS_CERT');
  const key = setting(values['redis-tls-key'], 'INFERGATE_REDIS_TLS_KEY');
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  if (!tls) throw new UsageError('--redis-tls-ca, --redis-tls-cert and --redis-tls-key need a rediss:// URL');
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError('--redis-tls-cert and --redis-tls-key go together');
  return {
    ...(ca === undefined ? {} : { ca: readFlagFile('--redis-tls-ca', ca) }),
    ...(cert === undefined ? {} : { cert: readFlagFile('--redis-tls-cert', cert) }),
    ...(key === undefined ? {} : { key: readFlagFile('--redis-tls-key', key) }),
  };
}
