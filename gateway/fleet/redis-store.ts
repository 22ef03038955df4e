/**
 * The policy store in Redis (fleet mode): versions with their source, sha256, author, time and
 * message; a bounded history; the channel that announces a new version; and each gateway's
 * acknowledgement under a heartbeat with a TTL. Used by the gateways (read, acknowledge) and by the
 * control plane (`infergate policy apply|get|history|diff|rollback|status`). Writes that must agree
 * (the version counter, the version's hash, the history and the announcement) are one Lua script.
 */
import type { Redis } from 'ioredis';
import type { FleetKeys } from '../../common/redis/keys.js';

export const DEFAULT_HISTORY = 100;

export interface StoredPolicy {
  readonly version: number;
  readonly source: string;
  readonly sha256: string;
  readonly author: string;
  readonly message: string;
  /** Unix time in ms (Redis's clock) of the apply. */
  readonly time: number;
}

export type StoredPolicyMeta = Omit<StoredPolicy, 'source'>;

export interface ApplyRequest {
  readonly source: string;
  readonly sha256: string;
  readonly author: string;
  readonly message: string;
  /** Refuse when the newest version is not this one (0: the store must be empty). */
  readonly ifVersion?: number;
  readonly historyLimit?: number;
}

export type ApplyResult =
  | { readonly kind: 'applied'; readonly version: number; readonly time: number }
  /** The newest version has the same sha256: nothing written. */
  | { readonly kind: 'unchanged'; readonly version: number }
  /** `ifVersion` did not match: someone applied in between. */
  | { readonly kind: 'conflict'; readonly version: number };

/** What a gateway last did with a version: served it (ack) or refused it (nack, with the errors). */
export interface GatewayRecord {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  /** The version in force (0: none from the store, e.g. a policy cache of unknown version). */
  readonly servingVersion: number;
  readonly servingSha256: string;
  /** Where the policy in force came from: `redis`, or `cache` while Redis was unreachable at start. */
  readonly servingFrom: 'redis' | 'cache';
  /** The newest version it has considered, and what it did with it. */
  readonly lastVersion: number;
  readonly lastResult: 'ack' | 'nack';
  readonly errors: readonly string[];
  /** Unix time in ms of the last ACK or NACK. */
  readonly lastAt: number;
}

export interface AckMessage {
  readonly id: string;
  readonly version: number;
  readonly result: 'ack' | 'nack';
  /** Unix time in ms, with a fraction (performance.timeOrigin + now) for the fleet benchmark. */
  readonly at: number;
}

const APPLY = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= cur then return {'conflict', cur} end
if cur > 0 and redis.call('HGET', ARGV[1] .. cur, 'sha256') == ARGV[4] then return {'unchanged', cur} end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', ARGV[1] .. v, 'version', v, 'source', ARGV[3], 'sha256', ARGV[4], 'author', ARGV[5],
  'message', ARGV[6], 'time', ms)
redis.call('LPUSH', KEYS[2], v)
local max = tonumber(ARGV[7])
for _, old in ipairs(redis.call('LRANGE', KEYS[2], max, -1)) do redis.call('DEL', ARGV[1] .. old) end
redis.call('LTRIM', KEYS[2], 0, max - 1)
redis.call('PUBLISH', ARGV[8], v .. string.char(10) .. ARGV[3])
return {'applied', v, ms}
`;

/**
 * A message on the policy channel: the version number, a newline and the version's source (as the
 * apply script publishes it), or the number alone (as a hand-written publish may), in which case
 * the subscriber reads the source from the store.
 */
export interface Announcement {
  readonly version: number;
  readonly source?: string;
}

export function parseAnnouncement(message: string): Announcement | undefined {
  const nl = message.indexOf('\n');
  const version = Number(nl < 0 ? message : message.slice(0, nl));
  if (!Number.isSafeInteger(version) || version < 1) return undefined;
  return nl < 0 ? { version } : { version, source: message.slice(nl + 1) };
}

const CURRENT = `
local v = redis.call('GET', KEYS[1])
if not v then return false end
return redis.call('HGETALL', ARGV[1] .. v)
`;

export class RedisPolicyStore {
  constructor(
    readonly redis: Redis,
    readonly keys: FleetKeys,
  ) {}

  /** The newest version number (0 when the store is empty). */
  async latestVersion(): Promise<number> {
    return Number((await this.redis.get(this.keys.policyVersion)) ?? 0);
  }

  /** The newest version, read in one step, or undefined when the store is empty. */
  async current(): Promise<StoredPolicy | undefined> {
    const flat = (await this.redis.eval(CURRENT, 1, this.keys.policyVersion, this.keys.policy(''))) as
      | string[]
      | null;
    return flat === null ? undefined : fromHash(pairs(flat));
  }

  async get(version: number): Promise<StoredPolicy | undefined> {
    const hash = await this.redis.hgetall(this.keys.policy(version));
    return Object.keys(hash).length === 0 ? undefined : fromHash(hash);
  }

  /** The history, newest first (without the sources). */
  async history(limit = DEFAULT_HISTORY): Promise<StoredPolicyMeta[]> {
    const versions = await this.redis.lrange(this.keys.policyHistory, 0, limit - 1);
    if (versions.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const v of versions)
      pipe.hmget(this.keys.policy(v), 'version', 'sha256', 'author', 'message', 'time');
    const out: StoredPolicyMeta[] = [];
    for (const [err, row] of (await pipe.exec()) ?? []) {
      if (err !== null) throw err;
      const [version, sha256, author, message, time] = row as (string | null)[];
      if (version === null || version === undefined) continue;
      out.push({
        version: Number(version),
        sha256: sha256 ?? '',
        author: author ?? '',
        message: message ?? '',
        time: Number(time ?? 0),
      });
    }
    return out;
  }

  async apply(req: ApplyRequest): Promise<ApplyResult> {
    const [kind, version, time] = (await this.redis.eval(
      APPLY,
      2,
      this.keys.policyVersion,
      this.keys.policyHistory,
      this.keys.policy(''),
      req.ifVersion === undefined ? '' : String(req.ifVersion),
      req.source,
      req.sha256,
      req.author,
      req.message,
      String(req.historyLimit ?? DEFAULT_HISTORY),
      this.keys.policyEvents,
    )) as [string, number, number?];
    if (kind === 'applied') return { kind, version: Number(version), time: Number(time) };
    return { kind: kind as 'unchanged' | 'conflict', version: Number(version) };
  }

  /** Records a gateway's state under its TTL (a heartbeat), and announces an ACK or NACK when given. */
  async writeGateway(record: GatewayRecord, ttlMs: number, announce?: AckMessage): Promise<void> {
    const key = this.keys.gateway(record.id);
    const multi = this.redis.multi();
    multi.hset(key, toHash(record));
    multi.pexpire(key, ttlMs);
    multi.zadd(this.keys.gateways, Date.now(), record.id);
    if (announce !== undefined) multi.publish(this.keys.gatewayAcks, JSON.stringify(announce));
    const results = await multi.exec();
    for (const [err] of results ?? []) if (err !== null) throw err;
  }

  /** A gateway that shuts down leaves at once rather than at its TTL. */
  async removeGateway(id: string): Promise<void> {
    await this.redis.multi().del(this.keys.gateway(id)).zrem(this.keys.gateways, id).exec();
  }

  /** The live gateways (their record has not expired), by id; expired ones are dropped from the set. */
  async gateways(): Promise<GatewayRecord[]> {
    const ids = await this.redis.zrange(this.keys.gateways, '0', '-1');
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.gateway(id));
    const rows = (await pipe.exec()) ?? [];
    const live: GatewayRecord[] = [];
    const gone: string[] = [];
    rows.forEach(([err, hash], i) => {
      if (err !== null) throw err;
      const h = hash as Record<string, string>;
      if (Object.keys(h).length === 0) gone.push(ids[i] as string);
      else live.push(gatewayFromHash(h));
    });
    if (gone.length > 0) await this.redis.zrem(this.keys.gateways, ...gone);
    return live.sort((a, b) => a.id.localeCompare(b.id));
  }
}

function pairs(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

function fromHash(h: Record<string, string>): StoredPolicy {
  return {
    version: Number(h.version ?? 0),
    source: h.source ?? '',
    sha256: h.sha256 ?? '',
    author: h.author ?? '',
    message: h.message ?? '',
    time: Number(h.time ?? 0),
  };
}

function toHash(r: GatewayRecord): Record<string, string> {
  return {
    id: r.id,
    host: r.host,
    pid: String(r.pid),
    startedAt: String(r.startedAt),
    servingVersion: String(r.servingVersion),
    servingSha256: r.servingSha256,
    servingFrom: r.servingFrom,
    lastVersion: String(r.lastVersion),
    lastResult: r.lastResult,
    errors: JSON.stringify(r.errors),
    lastAt: String(r.lastAt),
  };
}

function gatewayFromHash(h: Record<string, string>): GatewayRecord {
  let errors: string[] = [];
  try {
    const parsed = JSON.parse(h.errors ?? '[]');
    if (Array.isArray(parsed)) errors = parsed.map(String);
  } catch {
    errors = [];
  }
  return {
    id: h.id ?? '',
    host: h.host ?? '',
    pid: Number(h.pid ?? 0),
    startedAt: Number(h.startedAt ?? 0),
    servingVersion: Number(h.servingVersion ?? 0),
    servingSha256: h.servingSha256 ?? '',
    servingFrom: h.servingFrom === 'cache' ? 'cache' : 'redis',
    lastVersion: Number(h.lastVersion ?? 0),
    lastResult: h.lastResult === 'nack' ? 'nack' : 'ack',
    errors,
    lastAt: Number(h.lastAt ?? 0),
  };
}
