/**
 * `infergate backend --register REDIS_URL --backend NAME --advertise URL`: the replica heartbeats
 * its endpoint (TTL default 10 s, refreshed every third of it) with the models and versions it
 * serves, its readiness and its queue depth, so that gateways in fleet mode merge it into the
 * policy's backend of that name. A draining replica deregisters before it stops taking requests.
 */
import type { Logger } from '../common/logging.js';
import { describeRedisError, openRedis, type RedisTarget } from '../common/redis/connection.js';
import type { FleetKeys } from '../common/redis/keys.js';
import { type RegisteredModel, RegistrationStore } from '../common/redis/registrations.js';
import type { ModelRepository } from './repository.js';

export interface RegistrarOptions {
  readonly target: RedisTarget;
  readonly keys: FleetKeys;
  readonly backend: string;
  readonly advertise: string;
  readonly ttlMs: number;
  readonly logger: Logger;
  readonly repository: ModelRepository;
  readonly draining: () => boolean;
}

export class Registrar {
  private readonly store: RegistrationStore;
  private timer: NodeJS.Timeout | undefined;
  private up = true;
  private stopped = false;

  constructor(private readonly opts: RegistrarOptions) {
    const redis = openRedis(opts.target, { role: 'server', name: `infergate-backend:${opts.advertise}` });
    redis.on('error', (err: Error) => {
      if (!this.up) return;
      this.up = false;
      opts.logger.warn(
        `${describeRedisError(opts.target, err)}; this replica stays in rotation until its registration expires, and registers again when Redis is back`,
      );
    });
    redis.on('ready', () => {
      if (!this.up) opts.logger.info(`Redis at ${opts.target.display} is reachable again; registering`);
      this.up = true;
      void this.beat();
    });
    redis.connect().catch(() => {});
    this.store = new RegistrationStore(redis, opts.keys);
  }

  start(): void {
    this.timer = setInterval(() => void this.beat(), Math.max(100, Math.floor(this.opts.ttlMs / 3)));
    this.timer.unref();
  }

  /** Deregisters first, so that gateways stop sending before the replica stops taking requests. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    try {
      await Promise.race([
        this.store.deregister(this.opts.backend, this.opts.advertise),
        new Promise((resolve) => setTimeout(resolve, 1000).unref()),
      ]);
      this.opts.logger.info({ backend: this.opts.backend, endpoint: this.opts.advertise }, 'deregistered');
    } catch {
      // Redis is down: the registration expires at its TTL.
    }
    this.store.redis.disconnect();
  }

  private async beat(): Promise<void> {
    if (this.stopped || this.opts.draining()) return;
    const byName = new Map<string, string[]>();
    let queueDepth = 0;
    let ready = false;
    for (const s of this.opts.repository.slots()) {
      if (s.state !== 'READY') continue;
      ready = true;
      queueDepth += s.model?.queueDepth ?? 0;
      const versions = byName.get(s.name);
      if (versions === undefined) byName.set(s.name, [s.version]);
      else versions.push(s.version);
    }
    const models: RegisteredModel[] = [...byName].map(([name, versions]) => ({ name, versions }));
    try {
      const added = await this.store.heartbeat(
        { backend: this.opts.backend, origin: this.opts.advertise, ready, queueDepth, models },
        this.opts.ttlMs,
      );
      if (added) {
        this.opts.logger.info(
          { backend: this.opts.backend, endpoint: this.opts.advertise, ttlMs: this.opts.ttlMs },
          `registered as an endpoint of backend '${this.opts.backend}'`,
        );
      }
    } catch {
      // Logged once by the connection's error handler.
    }
  }
}
