/** The fleet-mode flags that several commands share: the Redis URL, the key prefix. */
import { parseRedisUrl, type RedisTarget, RedisUrlError } from '../common/redis/connection.js';
import { DEFAULT_PREFIX, type FleetKeys, fleetKeys } from '../common/redis/keys.js';
import { setting, UsageError } from './args.js';

export const FLEET_FLAGS = {
  redis: { type: 'string' },
  'redis-prefix': { type: 'string' },
} as const;

/** `--redis URL` (or INFERGATE_REDIS_URL) and `--redis-prefix` (INFERGATE_REDIS_PREFIX), or undefined. */
export function fleetTarget(values: {
  redis?: string | undefined;
  'redis-prefix'?: string | undefined;
}): { target: RedisTarget; keys: FleetKeys } | undefined {
  const url = setting(values.redis, 'INFERGATE_REDIS_URL');
  if (url === undefined) return undefined;
  try {
    return {
      target: parseRedisUrl(url),
      keys: fleetKeys(setting(values['redis-prefix'], 'INFERGATE_REDIS_PREFIX', DEFAULT_PREFIX)),
    };
  } catch (e) {
    if (e instanceof RedisUrlError) throw new UsageError(`--redis: ${e.message}`);
    throw new UsageError(`--redis-prefix: ${(e as Error).message}`);
  }
}
