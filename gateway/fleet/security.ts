/** Fleet mode's share of auth and rate limits: API keys from Redis and global buckets in Redis. */
import type { Logger } from '../../common/logging.js';
import type { FleetKeys } from '../../common/redis/keys.js';
import type { RedisLink } from '../../common/redis/link.js';
import type { GatewaySecurity } from '../server.js';
import { RedisKeyDirectory } from './redis-keys.js';
import { RedisRateStore } from './redis-rate.js';

export interface FleetSecurity extends GatewaySecurity {
  readonly keys: RedisKeyDirectory;
  readonly globalRates: RedisRateStore;
}

export interface FleetSecurityOptions {
  /** The key directory's poll behind the announcements (default 1000 ms). */
  readonly pollMs?: number;
  /** How often live gateways are counted for the fallback share (default 2000 ms). */
  readonly countEveryMs?: number;
  /** A heartbeat younger than this counts a gateway as live (default 10000 ms). */
  readonly liveWithinMs?: number;
}

/** Loads the keys (when Redis answers) and follows them; the rate store is ready at once. */
export async function fleetSecurity(
  link: RedisLink,
  keys: FleetKeys,
  logger: Logger,
  opts: FleetSecurityOptions = {},
): Promise<FleetSecurity> {
  const directory = new RedisKeyDirectory({
    link,
    keys,
    logger,
    ...(opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }),
  });
  await directory.start();
  const globalRates = new RedisRateStore({
    link,
    keys,
    logger,
    now: () => performance.now(),
    ...(opts.countEveryMs === undefined ? {} : { countEveryMs: opts.countEveryMs }),
    ...(opts.liveWithinMs === undefined ? {} : { liveWithinMs: opts.liveWithinMs }),
  });
  return { keys: directory, globalRates };
}
