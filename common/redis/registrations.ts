/**
 * Backend endpoints that register themselves (fleet mode): a replica heartbeats its origin under a
 * backend name with a TTL, with the models and versions it serves, its readiness and its queue
 * depth; gateways list the live registrations and merge them into the policy's backend of that
 * name. Expiry is by Redis's clock (sorted-set scores), so the clocks of replicas and gateways
 * never need to agree. Written by `infergate backend --register`, read by the gateway.
 */
import type { Redis } from 'ioredis';
import type { FleetKeys } from './keys.js';

export interface RegisteredModel {
  readonly name: string;
  readonly versions: readonly string[];
}

export interface Registration {
  readonly backend: string;
  readonly origin: string;
  readonly ready: boolean;
  readonly queueDepth: number;
  readonly models: readonly RegisteredModel[];
  /** Milliseconds until it expires unless refreshed, as of the listing. */
  readonly expiresInMs: number;
}

export interface Heartbeat {
  readonly backend: string;
  readonly origin: string;
  readonly ready: boolean;
  readonly queueDepth: number;
  readonly models: readonly RegisteredModel[];
}

const REGISTER = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local added = redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local was = redis.call('HGET', KEYS[2], 'ready')
redis.call('HSET', KEYS[2], 'ready', ARGV[3], 'queueDepth', ARGV[4], 'models', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], now, ARGV[6])
if added == 1 or was ~= ARGV[3] then redis.call('PUBLISH', KEYS[4], ARGV[6]) end
return added
`;

const DEREGISTER = `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', KEYS[3], ARGV[2])
return removed
`;

const LIST = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. name
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local members = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  if #members == 0 then
    redis.call('ZREM', KEYS[1], name)
  else
    for i = 1, #members, 2 do
      local details = redis.call('HMGET', ARGV[2] .. name .. ':' .. members[i], 'ready', 'queueDepth', 'models')
      table.insert(out, {name, members[i], tonumber(members[i + 1]) - now, details[1] or '0',
        details[2] or '0', details[3] or '[]'})
    end
  end
end
return out
`;

export class RegistrationStore {
  constructor(
    readonly redis: Redis,
    readonly keys: FleetKeys,
  ) {}

  /** Registers or refreshes an endpoint; true when it was new (or had expired). */
  async heartbeat(h: Heartbeat, ttlMs: number): Promise<boolean> {
    const added = await this.redis.eval(
      REGISTER,
      4,
      this.keys.backend(h.backend),
      this.keys.endpoint(h.backend, h.origin),
      this.keys.backends,
      this.keys.endpointEvents,
      h.origin,
      String(ttlMs),
      h.ready ? '1' : '0',
      String(h.queueDepth),
      JSON.stringify(h.models),
      h.backend,
    );
    return Number(added) === 1;
  }

  async deregister(backend: string, origin: string): Promise<void> {
    await this.redis.eval(
      DEREGISTER,
      3,
      this.keys.backend(backend),
      this.keys.endpoint(backend, origin),
      this.keys.endpointEvents,
      origin,
      backend,
    );
  }

  /** Every live registration (expired ones are dropped on the way). */
  async list(): Promise<Registration[]> {
    const rows = (await this.redis.eval(
      LIST,
      1,
      this.keys.backends,
      this.keys.backend(''),
      this.keys.endpoint('', '').slice(0, -1),
    )) as [string, string, number, string, string, string][];
    return rows.map(([backend, origin, expiresInMs, ready, queueDepth, models]) => ({
      backend,
      origin,
      expiresInMs: Number(expiresInMs),
      ready: ready === '1',
      queueDepth: Number(queueDepth),
      models: parseModels(models),
    }));
  }
}

function parseModels(text: string): RegisteredModel[] {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed
      .filter((m): m is { name: string; versions?: unknown } => typeof m?.name === 'string')
      .map((m) => ({ name: m.name, versions: Array.isArray(m.versions) ? m.versions.map(String) : [] }));
  } catch {
    return [];
  }
}
