import CircuitBreaker from 'opossum';
import { Client, Pool } from 'undici';
import type { Clock } from '../../common/clock.js';
import type {
  CompiledBackend,
  CompiledCircuitBreaker,
  CompiledHealthCheck,
  CompiledOutlierDetection,
} from '../policy/compile.js';

/** Why an endpoint takes no traffic now, or `available`. */
export type EndpointState = 'available' | 'unhealthy' | 'ejected' | 'circuit_open' | 'backing_off' | 'closed';
export type BreakerState = 'closed' | 'open' | 'half_open';

/** Told of what changes an endpoint's standing, for logs and metrics. */
export interface EndpointEvents {
  onEjected?(endpoint: Endpoint, forMs: number): void;
  onHealthChange?(endpoint: Endpoint, healthy: boolean, reason: string): void;
  onBreaker?(endpoint: Endpoint, state: BreakerState): void;
  onHealthCheck?(endpoint: Endpoint, ok: boolean): void;
}

/**
 * One replica: its connection pool, its load (outstanding requests), and its standing: the active
 * health check's verdict, a passive ejection after consecutive failures, a circuit breaker
 * (opossum) over the recent error rate, and a backend's `Retry-After`.
 */
export class Endpoint {
  /** Requests sent and not finished (the picker's load signal). */
  outstanding = 0;
  readonly pool: Pool;
  /** The active health check's verdict; true until checks say otherwise. */
  healthy = true;
  /** Until when (clock ms) a passive ejection keeps it out. */
  ejectedUntil = 0;
  /** Until when a backend's `Retry-After` keeps it out. */
  notBefore = 0;
  ejections = 0;
  consecutiveFailures = 0;
  private checkFailures = 0;
  private checkSuccesses = 0;
  /** The breaker was opened by a refused connection (nothing listened), not by the error rate. */
  private openedByFailFast = false;
  /** Health checks get a connection of their own, so they never queue behind inference. */
  private checkClient: Client | undefined;
  private retireTimer: unknown;
  private checkTimer: unknown;
  private checking = false;
  private breaker: CircuitBreaker;
  private closed = false;
  private retiring = false;
  /** Half-open: the one probe allowed is out. */
  private probing = false;

  constructor(
    readonly origin: string,
    poolOptions: Pool.Options,
    private settings: EndpointSettings,
    private readonly clock: Clock,
    private readonly events: EndpointEvents,
  ) {
    this.pool = new Pool(origin, poolOptions);
    this.breaker = makeBreaker(settings.circuitBreaker);
    this.watchBreaker();
  }

  /** The breaker's state, as the picker sees it. */
  get breakerState(): BreakerState {
    if (this.breaker.opened) return 'open';
    if (this.breaker.halfOpen) return 'half_open';
    return 'closed';
  }

  /** Calls and failures over the breaker's rolling window. */
  get recent(): { requests: number; failures: number } {
    const s = this.breaker.stats;
    return { requests: s.fires, failures: s.failures };
  }

  /** Whether the picker may send it a request now, and if not, why. */
  state(now: number): EndpointState {
    if (this.closed) return 'closed';
    if (!this.healthy) return 'unhealthy';
    if (now < this.ejectedUntil) return 'ejected';
    if (now < this.notBefore) return 'backing_off';
    // A half-open breaker lets one probe through at a time.
    if (this.breaker.opened || (this.breaker.halfOpen && this.probing)) return 'circuit_open';
    return 'available';
  }

  available(now: number): boolean {
    return this.state(now) === 'available';
  }

  /** Earliest clock time at which it may be available again (for Retry-After). */
  returnsAt(now: number): number {
    if (!this.healthy) return now + Math.max(this.settings.healthCheck.intervalMs, 1000);
    let t = now;
    if (this.ejectedUntil > t) t = this.ejectedUntil;
    if (this.notBefore > t) t = this.notBefore;
    if (this.breaker.opened) t = Math.max(t, now + this.settings.circuitBreaker.resetTimeoutMs);
    return t;
  }

  /**
   * Runs one attempt under the breaker. `attempt` resolves with the result; `failed` says whether
   * that result counts as a failure (connect error, 5xx, timeout). Resolves with the result, or
   * with `undefined` when the breaker refused (open, or half-open with its probe out).
   *
   * The breaker is opossum's: its state machine (open, the reset timer, half-open, close on a
   * successful probe) and its rolling window of counts. Outcomes reach it as its own events
   * (`fire`, `success`, `failure`), and it opens by its own rule (more than
   * errorThresholdPercentage of at least volumeThreshold calls failed, or a failed probe); this
   * skips `fire()`'s promise wrapping, which cost 3-4 µs per request on the hot path.
   */
  async run<R>(attempt: () => Promise<R>, failed: (r: R) => boolean): Promise<R | undefined> {
    const b = this.breaker;
    if (this.closed) return undefined;
    let probe = false;
    if (!b.closed) {
      if (!b.halfOpen || this.probing) {
        b.emit('reject');
        return undefined;
      }
      probe = true;
      this.probing = true;
    }
    b.emit('fire');
    let r: R;
    try {
      r = await attempt();
    } finally {
      if (probe) this.probing = false;
    }
    if (failed(r)) {
      b.emit('failure');
      this.openIfTripped();
    } else {
      b.emit('success'); // opossum closes a half-open breaker on success
    }
    return r;
  }

  /** opossum's own rule, applied after a failure. */
  private openIfTripped(): void {
    const b = this.breaker;
    if (b.opened) return;
    if (b.halfOpen) {
      b.open();
      return;
    }
    const { fires, failures } = b.stats;
    const cb = this.settings.circuitBreaker;
    if (fires < cb.volumeThreshold) return;
    if ((failures / fires) * 100 > cb.errorThresholdPercentage) b.open();
  }

  /**
   * Nothing listens there (connection refused, unreachable): open the breaker at once instead of
   * waiting for the error rate, as Finagle's fail-fast does. A health check that passes, or the
   * breaker's half-open probe after its reset timeout, brings the endpoint back.
   */
  failFast(): void {
    if (this.breaker.closed || this.breaker.halfOpen) {
      this.breaker.open();
      this.openedByFailFast = true;
    }
  }

  /** Passive outlier detection: count a failed attempt; eject when the run is long enough. */
  recordFailure(peers: readonly Endpoint[]): void {
    this.consecutiveFailures += 1;
    const o = this.settings.outlierDetection;
    if (this.consecutiveFailures < o.consecutiveFailures) return;
    const now = this.clock.now();
    if (now < this.ejectedUntil) return;
    const ejected = peers.reduce((n, p) => n + (p !== this && now < p.ejectedUntil ? 1 : 0), 0);
    const allowed = Math.max(1, Math.floor((peers.length * o.maxEjectionPercent) / 100));
    if (ejected >= allowed) return;
    const forMs = Math.min(o.baseEjectionMs * 2 ** this.ejections, o.maxEjectionMs);
    this.ejections += 1;
    this.ejectedUntil = now + forMs;
    this.consecutiveFailures = 0;
    this.events.onEjected?.(this, forMs);
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0;
    // A clean answer after an ejection ended: the next ejection starts short again.
    if (this.ejections > 0 && this.clock.now() >= this.ejectedUntil) this.ejections = 0;
  }

  /** A backend's 503 with `Retry-After`: send it nothing until then (at most 30 s). */
  backOff(seconds: number): void {
    if (!(seconds > 0)) return;
    this.notBefore = this.clock.now() + Math.min(seconds, 30) * 1000;
  }

  /** New settings from a policy reload; counts and state are kept. */
  update(settings: EndpointSettings): void {
    const cb = settings.circuitBreaker;
    const old = this.settings.circuitBreaker;
    this.settings = settings;
    if (
      cb.errorThresholdPercentage !== old.errorThresholdPercentage ||
      cb.volumeThreshold !== old.volumeThreshold ||
      cb.resetTimeoutMs !== old.resetTimeoutMs ||
      cb.windowMs !== old.windowMs
    ) {
      // opossum's thresholds are fixed at construction: a new breaker, starting closed.
      this.breaker.shutdown();
      this.breaker = makeBreaker(cb);
      this.probing = false;
      this.watchBreaker();
    }
    this.scheduleCheck(true);
  }

  /** Starts active health checks (when the interval is not 0). */
  startChecks(): void {
    this.scheduleCheck(false);
  }

  private scheduleCheck(restart: boolean): void {
    if (this.closed || this.retiring) return;
    if (restart && this.checkTimer !== undefined) {
      this.clock.clearTimer(this.checkTimer);
      this.checkTimer = undefined;
    }
    const { intervalMs } = this.settings.healthCheck;
    if (intervalMs <= 0) {
      if (!this.healthy) this.setHealthy(true, 'active checks turned off');
      return;
    }
    if (this.checkTimer !== undefined) return;
    const timer = this.clock.setTimer(() => {
      this.checkTimer = undefined;
      void this.check().finally(() => this.scheduleCheck(false));
    }, intervalMs);
    (timer as { unref?: () => void }).unref?.();
    this.checkTimer = timer;
  }

  /** One active check of `/v2/health/ready`. */
  async check(): Promise<boolean> {
    if (this.checking || this.closed) return this.healthy;
    this.checking = true;
    const { timeoutMs, unhealthyThreshold, healthyThreshold } = this.settings.healthCheck;
    let ok = false;
    try {
      this.checkClient ??= new Client(this.origin, {
        connectTimeout: timeoutMs,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        keepAliveTimeout: 60_000,
      });
      const res = await this.checkClient.request({
        method: 'GET',
        path: '/v2/health/ready',
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.dump();
      ok = res.statusCode === 200;
    } catch (e) {
      ok = false;
      // Nothing listens there: open the breaker too, as a refused request would.
      if ((e as { code?: string }).code === 'ECONNREFUSED') this.failFast();
    } finally {
      this.checking = false;
    }
    if (this.closed) return ok;
    this.events.onHealthCheck?.(this, ok);
    if (ok) {
      this.checkFailures = 0;
      this.checkSuccesses += 1;
      // A replica that was down (its checks failed, or nothing listened) and answers ready again
      // returns at once: its failures were the outage, so the ejection and the breaker go too.
      // A replica that stayed ready while its answers failed keeps its ejection and breaker: a
      // passing check says nothing about its answers.
      const wasDown = !this.healthy || this.openedByFailFast;
      if (wasDown && this.checkSuccesses >= healthyThreshold) {
        this.ejectedUntil = 0;
        this.notBefore = 0;
        this.consecutiveFailures = 0;
        if (this.breakerState !== 'closed') this.breaker.close();
        this.openedByFailFast = false;
        if (!this.healthy) this.setHealthy(true, 'health check passed');
      }
    } else {
      this.checkSuccesses = 0;
      this.checkFailures += 1;
      if (this.healthy && this.checkFailures >= unhealthyThreshold)
        this.setHealthy(false, 'health check failed');
    }
    return ok;
  }

  private setHealthy(healthy: boolean, reason: string): void {
    this.healthy = healthy;
    this.events.onHealthChange?.(this, healthy, reason);
  }

  private watchBreaker(): void {
    this.breaker.on('open', () => this.events.onBreaker?.(this, 'open'));
    this.breaker.on('halfOpen', () => this.events.onBreaker?.(this, 'half_open'));
    this.breaker.on('close', () => {
      this.openedByFailFast = false;
      this.events.onBreaker?.(this, 'closed');
    });
  }

  /**
   * Dropped by a reload: no more health checks, but requests that still hold an older snapshot
   * may use it for `graceMs`; then it closes. `revive` undoes this when a reload brings it back.
   */
  retire(graceMs: number): void {
    if (this.checkTimer !== undefined) this.clock.clearTimer(this.checkTimer);
    this.checkTimer = undefined;
    this.retiring = true;
    const timer = this.clock.setTimer(() => void this.close(), graceMs);
    (timer as { unref?: () => void }).unref?.();
    this.retireTimer = timer;
  }

  revive(): void {
    if (this.retireTimer !== undefined) this.clock.clearTimer(this.retireTimer);
    this.retireTimer = undefined;
    this.retiring = false;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.checkTimer !== undefined) this.clock.clearTimer(this.checkTimer);
    if (this.retireTimer !== undefined) this.clock.clearTimer(this.retireTimer);
    this.breaker.shutdown();
    await Promise.all([this.pool.close().catch(() => {}), this.checkClient?.close().catch(() => {})]);
  }
}

export interface EndpointSettings {
  readonly circuitBreaker: CompiledCircuitBreaker;
  readonly healthCheck: CompiledHealthCheck;
  readonly outlierDetection: CompiledOutlierDetection;
}

/**
 * opossum's breaker for its state machine and rolling counts only: attempts are not made through
 * `fire()` (see `Endpoint.run`), so its action and its own timeout are never used.
 */
function makeBreaker(cb: CompiledCircuitBreaker): CircuitBreaker {
  return new CircuitBreaker(() => Promise.resolve(), {
    errorThresholdPercentage: cb.errorThresholdPercentage,
    volumeThreshold: cb.volumeThreshold,
    resetTimeout: cb.resetTimeoutMs,
    rollingCountTimeout: cb.windowMs,
    rollingCountBuckets: 10,
    timeout: false,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
  });
}

export interface EndpointPoolOptions {
  /** Connections kept per endpoint. */
  connections?: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs?: number;
  connectTimeoutMs?: number;
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
  private readonly poolOptions: Pool.Options;

  constructor(
    private readonly clock: Clock,
    private readonly events: EndpointEvents = {},
    opts: EndpointPoolOptions = {},
  ) {
    this.poolOptions = {
      connections: opts.connections ?? 128,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
      connectTimeout: opts.connectTimeoutMs ?? 2_000,
      // Deadlines are the gateway's own (timeoutMs); undici's defaults are minutes.
      headersTimeout: 0,
      bodyTimeout: 0,
    };
  }

  /** Dropped endpoints kept for requests of older snapshots, until their grace runs out. */
  private readonly retired = new Map<string, Endpoint>();

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
        const e = new Endpoint(origin, this.poolOptions, s, this.clock, this.events);
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
