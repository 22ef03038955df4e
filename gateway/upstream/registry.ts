import type { Clock } from '../../common/clock.js';
import type { CompiledBackend } from '../policy/compile.js';
import { createDispatcher, type DispatcherFactory, type EndpointPoolOptions } from './connection.js';
import type { HealthCheckClientFactory } from './health-check.js';
import { Endpoint, type EndpointEvents, type EndpointSettings } from './replica.js';

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
 * fails over like a refused connection.
 */
export class EndpointRegistry {
  private readonly byOrigin = new Map<string, Endpoint>();
  /** Dropped endpoints kept for requests of older snapshots, until their grace runs out. */
  private readonly retired = new Map<string, Endpoint>();
  private readonly dispatcher: DispatcherFactory;

  constructor(
    private readonly clock: Clock,
    private readonly events: EndpointEvents = {},
    opts: EndpointPoolOptions = {},
    private readonly connectors: EndpointConnectors = {},
  ) {
    this.dispatcher = connectors.dispatcher ?? ((origin) => createDispatcher(origin, opts));
  }

  /**
   * The endpoints of these backends: creates the missing, updates the kept, and retires the
   * dropped, which close after `graceMs` (long enough for any request of the older snapshot).
   */
  sync(backends: Iterable<CompiledBackend>, graceMs = 0): void {
    const settings = new Map<string, EndpointSettings>();
    for (const b of backends) {
      for (const origin of b.endpoints) {
        if (!settings.has(origin)) settings.set(origin, b);
      }
    }
    for (const [origin, s] of settings) {
      let existing = this.byOrigin.get(origin);
      if (existing === undefined) {
        const back = this.retired.get(origin);
        if (back !== undefined && back.state(this.clock.now()) !== 'closed') {
          this.retired.delete(origin);
          back.revive();
          this.byOrigin.set(origin, back);
          existing = back;
        }
      }
      if (existing === undefined) {
        const e = new Endpoint(
          origin,
          this.dispatcher(origin),
          s,
          this.clock,
          this.events,
          this.connectors.healthCheckClient,
        );
        this.byOrigin.set(origin, e);
        e.startChecks();
      } else {
        existing.update(s);
      }
    }
    for (const [origin, endpoint] of this.byOrigin) {
      if (!settings.has(origin)) {
        this.byOrigin.delete(origin);
        this.retired.set(origin, endpoint);
        endpoint.retire(graceMs);
      }
    }
    for (const [origin, endpoint] of this.retired) {
      if (endpoint.state(this.clock.now()) === 'closed') this.retired.delete(origin);
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
    const all = [...this.byOrigin.values(), ...this.retired.values()];
    this.byOrigin.clear();
    this.retired.clear();
    await Promise.all(all.map((e) => e.close()));
  }
}
