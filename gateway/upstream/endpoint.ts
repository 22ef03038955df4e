import { Pool } from 'undici';

/** One replica of a backend: its connection pool and what the picker needs to know. */
export class Endpoint {
  /** Requests sent and not finished (the picker's load signal). */
  outstanding = 0;
  readonly pool: Pool;

  constructor(
    readonly origin: string,
    poolOptions: Pool.Options,
  ) {
    this.pool = new Pool(origin, poolOptions);
  }
}

export interface EndpointPoolOptions {
  /** Connections kept per endpoint. */
  connections?: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/**
 * Endpoints by origin, shared by every policy snapshot so that a reload keeps connections and
 * outstanding counts. An origin that a new policy drops is closed gracefully: requests already on
 * it finish, and a retry that still picks it from an old snapshot fails over like a refused
 * connection.
 */
export class EndpointRegistry {
  private readonly byOrigin = new Map<string, Endpoint>();
  private readonly poolOptions: Pool.Options;

  constructor(opts: EndpointPoolOptions = {}) {
    this.poolOptions = {
      connections: opts.connections ?? 128,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
      connectTimeout: opts.connectTimeoutMs ?? 2_000,
      // Deadlines are the gateway's own (timeoutMs); undici's defaults are minutes.
      headersTimeout: 0,
      bodyTimeout: 0,
    };
  }

  /** The endpoints for these origins, creating the missing ones and closing the ones no longer used. */
  sync(origins: Iterable<string>): void {
    const keep = new Set(origins);
    for (const origin of keep) {
      if (!this.byOrigin.has(origin)) this.byOrigin.set(origin, new Endpoint(origin, this.poolOptions));
    }
    for (const [origin, endpoint] of this.byOrigin) {
      if (!keep.has(origin)) {
        this.byOrigin.delete(origin);
        endpoint.pool.close().catch(() => {});
      }
    }
  }

  get(origin: string): Endpoint {
    const e = this.byOrigin.get(origin);
    if (e === undefined) throw new Error(`no endpoint for ${origin}; sync() first`);
    return e;
  }

  all(): IterableIterator<Endpoint> {
    return this.byOrigin.values();
  }

  async close(): Promise<void> {
    const pools = [...this.byOrigin.values()].map((e) => e.pool.close().catch(() => {}));
    this.byOrigin.clear();
    await Promise.all(pools);
  }
}
