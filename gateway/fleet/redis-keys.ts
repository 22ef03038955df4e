/**
 * API keys in Redis (fleet mode): `infergate keys create|list|revoke` write them, every gateway
 * reads them. Only the SHA-256 of a key is stored. Each change bumps a version number and is
 * announced on a channel; a gateway keeps every record in memory, by hash (`RedisKeyDirectory`,
 * looked up synchronously by the auth stage), reloads on an announcement, on a poll of the version
 * behind it (messages sent while disconnected are lost) and when Redis is back. A revocation
 * reaches every gateway within the announcement's delivery, or the poll's period at worst.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../common/logging.js';
import type { FleetKeys } from '../../common/redis/keys.js';
import type { RedisLink } from '../../common/redis/link.js';
import type { KeyDirectory } from '../admission/auth.js';
import type { KeyRecord } from '../policy/compile.js';

/** A key as stored: what `keys list` shows (never the key itself). */
export interface StoredKey {
  readonly id: string;
  readonly sha256: string;
  /** undefined: every model. */
  readonly models: readonly string[] | undefined;
  readonly requestsPerSecond: number | undefined;
  readonly burst: number | undefined;
  /** ms since the epoch. */
  readonly expiresAt: number | undefined;
  readonly createdAt: number;
  readonly revokedAt: number | undefined;
}

const CREATE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return 1
`;

const REVOKE = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec.revokedAt then return 2 end
local t = redis.call('TIME')
rec.revokedAt = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return 1
`;

export class RedisKeyStore {
  constructor(
    readonly redis: Redis,
    readonly keys: FleetKeys,
  ) {}

  /** false when a key with this id exists already (revoked ones too: ids are never reused). */
  async create(key: StoredKey): Promise<boolean> {
    const k = this.keys;
    const r = await this.redis.eval(
      CREATE,
      3,
      k.apiKeys,
      k.apiKeysVersion,
      k.apiKeysEvents,
      key.id,
      JSON.stringify(key),
    );
    return Number(r) === 1;
  }

  /** 'revoked', 'already' (revoked before) or 'unknown'. */
  async revoke(id: string): Promise<'revoked' | 'already' | 'unknown'> {
    const k = this.keys;
    const r = Number(await this.redis.eval(REVOKE, 3, k.apiKeys, k.apiKeysVersion, k.apiKeysEvents, id));
    return r === 1 ? 'revoked' : r === 2 ? 'already' : 'unknown';
  }

  async version(): Promise<number> {
    return Number((await this.redis.get(this.keys.apiKeysVersion)) ?? 0);
  }

  /** Every key, by id order; records that do not parse are skipped. */
  async list(): Promise<StoredKey[]> {
    const hash = await this.redis.hgetall(this.keys.apiKeys);
    const out: StoredKey[] = [];
    for (const raw of Object.values(hash)) {
      const k = parseStoredKey(raw);
      if (k !== undefined) out.push(k);
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }
}

export function parseStoredKey(raw: string): StoredKey | undefined {
  try {
    const v = JSON.parse(raw) as Partial<StoredKey>;
    if (typeof v.id !== 'string' || typeof v.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(v.sha256))
      return undefined;
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
    return {
      id: v.id,
      sha256: v.sha256,
      models: Array.isArray(v.models) ? v.models.map(String) : undefined,
      requestsPerSecond: num(v.requestsPerSecond),
      burst: num(v.burst),
      expiresAt: num(v.expiresAt),
      createdAt: num(v.createdAt) ?? 0,
      revokedAt: num(v.revokedAt),
    };
  } catch {
    return undefined;
  }
}

export function toKeyRecord(k: StoredKey): KeyRecord {
  const rps = k.requestsPerSecond;
  return Object.freeze({
    id: k.id,
    models: k.models === undefined ? undefined : new Set(k.models),
    rateLimit:
      rps === undefined || rps <= 0
        ? undefined
        : Object.freeze({ requestsPerSecond: rps, burst: k.burst ?? Math.max(1, Math.ceil(rps)) }),
    expiresAt: k.expiresAt,
    revoked: k.revokedAt !== undefined,
  });
}

export interface RedisKeyDirectoryOptions {
  readonly link: RedisLink;
  readonly keys: FleetKeys;
  readonly logger: Logger;
  /** The poll of the version behind the announcements, in ms (default 1000). */
  readonly pollMs?: number;
}

/** Every key of the store in memory, by SHA-256, for the auth stage. */
export class RedisKeyDirectory implements KeyDirectory {
  private byHash = new Map<string, KeyRecord>();
  private readonly store: RedisKeyStore;
  private seenVersion = -1;
  private chain: Promise<void> = Promise.resolve();
  private poll: NodeJS.Timeout | undefined;
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly opts: RedisKeyDirectoryOptions) {
    this.store = new RedisKeyStore(opts.link.cmd, opts.keys);
  }

  get(sha256: string): KeyRecord | undefined {
    return this.byHash.get(sha256);
  }

  get size(): number {
    return this.byHash.size;
  }

  /** Told after every reload (tests await it rather than poll). */
  onReload(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Loads the keys (when Redis answers) and follows their changes. */
  async start(): Promise<void> {
    const { link, keys } = this.opts;
    link.subscribe(keys.apiKeysEvents, () => this.schedule(true));
    link.onReady(() => this.schedule(true));
    this.poll = setInterval(() => this.schedule(false), this.opts.pollMs ?? 1000);
    this.poll.unref();
    if (link.reachable) {
      this.schedule(true);
      await this.chain;
    }
  }

  close(): void {
    if (this.poll !== undefined) clearInterval(this.poll);
  }

  /** Reloads now (`force`) or when the version moved; one reload at a time, in order. */
  private schedule(force: boolean): void {
    this.chain = this.chain
      .then(async () => {
        if (!this.opts.link.reachable) return;
        const version = await this.store.version();
        if (!force && version === this.seenVersion) return;
        const list = await this.store.list();
        const next = new Map<string, KeyRecord>();
        for (const k of list) next.set(k.sha256, toKeyRecord(k));
        this.byHash = next;
        this.seenVersion = version;
        for (const l of this.listeners) l();
      })
      .catch((err: Error) => {
        // Redis went away mid-read: the keys last read stay; the reconnect reloads.
        this.opts.logger.debug({ err: err.message }, 'API keys not reloaded');
      });
  }
}
