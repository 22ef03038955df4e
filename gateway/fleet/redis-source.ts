/**
 * The Redis policy source (fleet mode): the newest version of the store, followed by a
 * subscription to the channel that announces new versions, a periodic poll behind it (messages
 * sent while a gateway was disconnected are lost) and a check on every reconnect. Each version the
 * gateway considers is acknowledged in the store: ACK with the version it serves, or NACK with
 * the errors, under a heartbeat with a TTL. Redis down: the last good policy keeps serving, the
 * outage is logged once and the recovery once, and the gateway catches up on reconnect; with a
 * policy cache, a gateway started while Redis is down serves the cached version.
 */
import { sha256Hex } from '../../common/hash.js';
import type { Logger } from '../../common/logging.js';
import type { RedisLink } from '../../common/redis/link.js';
import type { FleetKeys } from '../../common/redis/keys.js';
import { formatIssue } from '../policy/compile.js';
import { readPolicyCache, writePolicyCache } from './policy-cache.js';
import {
  type Announcement,
  type GatewayRecord,
  parseAnnouncement,
  RedisPolicyStore,
  type StoredPolicy,
} from './redis-store.js';
import type { PolicySource, PolicyUpdate, UpdateOutcome } from '../policy/source.js';

export interface RedisSourceOptions {
  readonly link: RedisLink;
  readonly keys: FleetKeys;
  readonly gatewayId: string;
  readonly host: string;
  readonly pid: number;
  readonly logger: Logger;
  /** A policy to write into an empty store (`--policy FILE` in fleet mode). */
  readonly seed?: { readonly text: string; readonly origin: string };
  /** `--policy-cache FILE`. */
  readonly cachePath?: string;
  /** The poll behind the subscription, in ms (default 1000). */
  readonly pollMs?: number;
  /** How often the gateway's record is refreshed (default 3000 ms) and how long it lives (10000). */
  readonly heartbeatMs?: number;
  readonly ttlMs?: number;
  /** How long a starting gateway waits for Redis before it falls back to the cache (default 3000). */
  readonly startupTimeoutMs?: number;
}

/** The store could not be reached at start and there is no cache to serve from. */
export class RedisUnavailableError extends Error {}

export class RedisPolicySource implements PolicySource {
  readonly store: RedisPolicyStore;
  private readonly link: RedisLink;
  private lastSeen = 0;
  private record: GatewayRecord;
  private chain: Promise<void> = Promise.resolve();
  private onUpdate: ((u: PolicyUpdate) => void) | undefined;
  private onError: ((e: Error) => void) | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  /** The update read from the policy cache at start (Redis unreachable), if any. */
  private cached: PolicyUpdate | undefined;

  constructor(private readonly opts: RedisSourceOptions) {
    this.link = opts.link;
    this.store = new RedisPolicyStore(this.link.cmd, opts.keys);
    this.record = {
      id: opts.gatewayId,
      host: opts.host,
      pid: opts.pid,
      startedAt: Date.now(),
      servingVersion: 0,
      servingSha256: '',
      servingFrom: 'redis',
      lastVersion: 0,
      lastResult: 'ack',
      errors: [],
      lastAt: 0,
    };
  }

  private get up(): boolean {
    return this.link.reachable;
  }

  async read(): Promise<PolicyUpdate> {
    const reachable = await this.link.start(this.opts.startupTimeoutMs ?? 3000);
    if (!reachable) return this.fromCache();
    let stored = await this.store.current();
    if (stored === undefined && this.opts.seed !== undefined) {
      const { text, origin } = this.opts.seed;
      const result = await this.store.apply({
        source: text,
        sha256: sha256(text),
        author: `gateway ${this.opts.gatewayId}`,
        message: `seeded from ${origin}`,
        ifVersion: 0,
      });
      if (result.kind === 'applied') {
        this.opts.logger.info({ version: result.version }, `seeded the empty store from ${origin}`);
      }
      stored = await this.store.current();
    }
    if (stored === undefined) {
      throw new RedisUnavailableError(
        `the store at ${this.link.target.display} (prefix '${this.opts.keys.prefix}') holds no policy: ` +
          'apply one with `infergate policy apply FILE --redis URL`, or seed it with --policy FILE',
      );
    }
    this.lastSeen = stored.version;
    return this.update(stored);
  }

  async previous(rejected: PolicyUpdate): Promise<PolicyUpdate | undefined> {
    if (rejected.version === undefined || !this.up) return undefined;
    for (const meta of await this.store.history()) {
      if (meta.version >= rejected.version) continue;
      const stored = await this.store.get(meta.version);
      if (stored !== undefined) {
        this.opts.logger.warn(
          { refused: rejected.version, version: stored.version },
          `policy version ${rejected.version} is invalid; starting on version ${stored.version}, the newest before it`,
        );
        return this.update(stored);
      }
    }
    return undefined;
  }

  watch(onUpdate: (u: PolicyUpdate) => void, onError: (e: Error) => void): void {
    this.onUpdate = onUpdate;
    this.onError = onError;
    this.link.subscribe(this.opts.keys.policyEvents, (message) => {
      const announced = parseAnnouncement(message);
      if (announced !== undefined) this.schedule(() => this.checkVersion(announced));
    });
    this.link.onReady(() => {
      this.schedule(() => this.checkLatest());
      void this.heartbeat();
    });
    const poll = setInterval(() => this.schedule(() => this.checkLatest()), this.opts.pollMs ?? 1000);
    const beat = setInterval(() => void this.heartbeat(), this.opts.heartbeatMs ?? 3000);
    poll.unref();
    beat.unref();
    this.timers.push(poll, beat);
  }

  report(update: PolicyUpdate, outcome: UpdateOutcome): void {
    if (update.version === undefined) return;
    const at = performance.timeOrigin + performance.now();
    const fromCache = update === this.cached;
    if (!fromCache) this.lastSeen = Math.max(this.lastSeen, update.version);
    if (outcome.result === 'rejected') {
      this.record = {
        ...this.record,
        lastVersion: update.version,
        lastResult: 'nack',
        errors: outcome.errors.map(formatIssue),
        lastAt: Math.round(at),
      };
      this.opts.logger.error(
        { version: update.version, errors: this.record.errors },
        `policy version ${update.version} refused (NACK); the last good policy keeps serving`,
      );
    } else {
      this.record = {
        ...this.record,
        servingVersion: update.version,
        servingSha256: sha256(update.text),
        servingFrom: fromCache ? 'cache' : 'redis',
        lastVersion: update.version,
        lastResult: 'ack',
        errors: [],
        lastAt: Math.round(at),
      };
      if (outcome.result === 'applied' && !fromCache && this.opts.cachePath !== undefined) {
        const path = this.opts.cachePath;
        writePolicyCache(path, {
          version: update.version,
          sha256: this.record.servingSha256,
          savedAt: Date.now(),
          source: update.text,
        }).catch((err: Error) => this.opts.logger.warn({ err, path }, 'policy cache not written'));
      }
    }
    if (!this.up) return;
    this.store
      .writeGateway(this.record, this.ttlMs, {
        id: this.record.id,
        version: update.version,
        result: this.record.lastResult,
        at,
      })
      .catch(() => {});
  }

  /** The version this gateway serves, for the admin view and the metrics. */
  get serving(): Pick<GatewayRecord, 'servingVersion' | 'servingSha256' | 'servingFrom'> {
    const { servingVersion, servingSha256, servingFrom } = this.record;
    return { servingVersion, servingSha256, servingFrom };
  }

  reachable(): boolean {
    return this.link.reachable;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (this.up) {
      // Leave the fleet's status at once rather than at the TTL; never wait long for it.
      await Promise.race([
        this.store.removeGateway(this.opts.gatewayId).catch(() => {}),
        new Promise((resolve) => setTimeout(resolve, 500).unref()),
      ]);
    }
  }

  private get ttlMs(): number {
    return this.opts.ttlMs ?? 10_000;
  }

  private update(stored: Pick<StoredPolicy, 'version' | 'source'>): PolicyUpdate {
    return {
      text: stored.source,
      origin: `${this.link.target.display} version ${stored.version}`,
      version: stored.version,
    };
  }

  private async fromCache(): Promise<PolicyUpdate> {
    const reason = this.link.lastProblem;
    const path = this.opts.cachePath;
    const cached = path === undefined ? undefined : await readPolicyCache(path);
    if (path === undefined || cached === undefined) {
      throw new RedisUnavailableError(
        `${reason}; no policy to serve (${path === undefined ? 'pass --policy-cache FILE to keep one' : `${path} does not exist yet`})`,
      );
    }
    this.opts.logger.warn(
      { version: cached.version, cache: path, savedAt: new Date(cached.savedAt).toISOString() },
      `${reason}: serving policy version ${cached.version} from the cache ${path} until Redis is back`,
    );
    this.cached = {
      text: cached.source,
      origin: `cache ${path} version ${cached.version}`,
      version: cached.version,
    };
    return this.cached;
  }

  private async heartbeat(): Promise<void> {
    if (!this.up || this.closed || this.record.lastAt === 0) return;
    try {
      await this.store.writeGateway(this.record, this.ttlMs);
    } catch {
      // The outage is logged by the connection's events.
    }
  }

  /** Checks run one after another, so that an older version is never offered after a newer one. */
  private schedule(check: () => Promise<void>): void {
    this.chain = this.chain.then(check).catch((e: Error) => {
      if (this.up) this.onError?.(e);
    });
  }

  /**
   * An announced version: offered when newer than the newest seen. The announcement carries the
   * source (no round trip to the store); one with the number alone is read from the store.
   */
  private async checkVersion({ version, source }: Announcement): Promise<void> {
    if (this.onUpdate === undefined || !this.up || version <= this.lastSeen) return;
    const stored = source !== undefined ? { version, source } : await this.store.get(version);
    if (stored === undefined || stored.version <= this.lastSeen) return;
    this.lastSeen = stored.version;
    this.onUpdate(this.update(stored));
  }

  /** The poll and the reconnect: the newest version, when it is not the one last seen. */
  private async checkLatest(): Promise<void> {
    if (this.onUpdate === undefined || !this.up) return;
    // The number first (the poll runs every second): the source only when it changed. Any other
    // number than the one seen, a lower one too: the store was emptied and written again.
    const latest = await this.store.latestVersion();
    if (latest === 0 || latest === this.lastSeen) return;
    const stored = await this.store.get(latest);
    if (stored === undefined) return;
    this.lastSeen = stored.version;
    this.onUpdate(this.update(stored));
  }
}

/** The sha256 of a policy's source, as the store keeps it. */
export const sha256 = sha256Hex;
