import { createHash } from 'node:crypto';
import type { Clock } from '../../common/clock.js';
import type { CompiledBackend } from '../policy/compile.js';
import {
  createDispatcher,
  createHealthCheckClient,
  type DispatcherFactory,
  type EndpointPoolOptions,
  loadUpstreamTls,
  type UpstreamTls,
} from './connection.js';
import type { HealthCheckClientFactory } from './health-check.js';
import { Endpoint, type EndpointEvents } from './replica.js';

/** How the registry connects; by default a `Pool` per origin and a `Client` for health checks. */
export interface EndpointConnectors {
  readonly dispatcher?: DispatcherFactory;
  readonly healthCheckClient?: HealthCheckClientFactory;
}

/**
 * Endpoints by origin, shared by every policy snapshot so that a reload keeps connections,
 * outstanding counts and health. An origin in several backends takes the resilience settings of
 * the first backend (in policy order) that lists it. An origin that a new policy drops is closed
 * gracefully: requests already on it finish, and a retry that still picks it from an old snapshot
 * fails over like a refused connection. An origin whose backend's `tls` changes gets a new
 * endpoint (new connections with the new files), and so does a change of the files' contents
 * seen at a sync (a rotated client certificate); the old one is retired the same way.
 */
export class EndpointRegistry {
  private readonly byOrigin = new Map<string, Endpoint>();
  /** Dropped endpoints kept for requests of older snapshots, until their grace runs out. */
  private readonly retired = new Map<string, Endpoint>();
  /** The `tls` settings each endpoint's connections were made with. */
  private readonly tlsOf = new WeakMap<Endpoint, string>();
  private readonly dispatcher: DispatcherFactory;

  constructor(
    private readonly clock: Clock,
    private readonly events: EndpointEvents = {},
    opts: EndpointPoolOptions = {},
    private readonly connectors: EndpointConnectors = {},
  ) {
    this.dispatcher = connectors.dispatcher ?? ((origin, tls) => createDispatcher(origin, opts, tls));
  }

  /**
   * The endpoints of these backends: creates the missing, updates the kept, and retires the
   * dropped, which close after `graceMs` (long enough for any request of the older snapshot).
   */
  sync(backends: Iterable<CompiledBackend>, graceMs = 0): void {
    const settings = new Map<string, CompiledBackend>();
    for (const b of backends) {
      for (const origin of b.endpoints) {
        if (!settings.has(origin)) settings.set(origin, b);
      }
    }
    // Every backend's tls files are read before anything changes: one that cannot be used throws
    // here and leaves the registry as it was.
    const loaded = new Map<CompiledBackend, LoadedTls>();
    for (const s of settings.values()) if (!loaded.has(s)) loaded.set(s, loadTls(s));
    for (const [origin, s] of settings) {
      const material = loaded.get(s) as LoadedTls;
      const tls = material.key;
      let existing = this.byOrigin.get(origin);
      if (existing !== undefined && this.tlsOf.get(existing) !== tls) {
        this.byOrigin.delete(origin);
        this.retire(origin, existing, graceMs);
        existing = undefined;
      }
      if (existing === undefined) {
        const back = this.retired.get(retiredKey(origin, tls));
        if (back !== undefined && back.state(this.clock.now()) !== 'closed') {
          this.retired.delete(retiredKey(origin, tls));
          back.revive();
          this.byOrigin.set(origin, back);
          existing = back;
        }
      }
      if (existing === undefined) {
        const e = this.create(origin, s, material);
        this.byOrigin.set(origin, e);
        e.startChecks();
      } else {
        existing.update(s);
      }
    }
    for (const [origin, endpoint] of this.byOrigin) {
      if (!settings.has(origin)) {
        this.byOrigin.delete(origin);
        this.retire(origin, endpoint, graceMs);
      }
    }
    for (const [key, endpoint] of this.retired) {
      if (endpoint.state(this.clock.now()) === 'closed') this.retired.delete(key);
    }
  }

  /** A new endpoint, connecting with the backend's tls files as read by this sync. */
  private create(origin: string, s: CompiledBackend, material: LoadedTls): Endpoint {
    const files = material.files;
    const health = this.connectors.healthCheckClient ?? createHealthCheckClient;
    const e = new Endpoint(
      origin,
      this.dispatcher(origin, files),
      s,
      this.clock,
      this.events,
      (o, timeoutMs) => health(o, timeoutMs, files),
    );
    this.tlsOf.set(e, material.key);
    return e;
  }

  private retire(origin: string, endpoint: Endpoint, graceMs: number): void {
    const key = retiredKey(origin, this.tlsOf.get(endpoint) ?? 'null');
    // An older one retired under the same key has its own timer; it is no longer revived.
    this.retired.set(key, endpoint);
    endpoint.retire(graceMs);
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
    const all = [...this.byOrigin.values(), ...this.retired.values()];
    this.byOrigin.clear();
    this.retired.clear();
    await Promise.all(all.map((e) => e.close()));
  }
}

const retiredKey = (origin: string, tls: string) => `${origin} ${tls}`;

/** A backend's tls files as read, and what tells them apart: the block and the files' contents. */
interface LoadedTls {
  readonly key: string;
  readonly files: UpstreamTls | undefined;
}

function loadTls(s: CompiledBackend): LoadedTls {
  const block = JSON.stringify(s.tls ?? null);
  if (s.tls === undefined) return { key: block, files: undefined };
  const files = loadUpstreamTls(s.tls);
  const h = createHash('sha256');
  for (const b of [files.ca, files.cert, files.key]) h.update(b ?? '').update('\0');
  return { key: `${block} ${h.digest('hex')}`, files };
}
