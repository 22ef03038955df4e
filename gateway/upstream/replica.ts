import type { Dispatcher } from 'undici';
import type { Clock } from '../../common/clock.js';
import type {
  CompiledCircuitBreaker,
  CompiledHealthCheck,
  CompiledOutlierDetection,
} from '../policy/compile.js';
import { Breaker, type BreakerState } from './breaker.js';
import { type CheckResult, HealthCheck, type HealthCheckClientFactory } from './health-check.js';
import { CONNECT_ERROR_CODES, type Settlement } from './outcome.js';

/** Why an endpoint takes no traffic now, or `available`. */
export type EndpointState = 'available' | 'unhealthy' | 'ejected' | 'circuit_open' | 'backing_off' | 'closed';

/** Told of what changes an endpoint's standing, for logs and metrics. */
export interface EndpointEvents {
  onEjected?(endpoint: Endpoint, forMs: number): void;
  onHealthChange?(endpoint: Endpoint, healthy: boolean, reason: string): void;
  onBreaker?(endpoint: Endpoint, state: BreakerState): void;
  onHealthCheck?(endpoint: Endpoint, ok: boolean): void;
}

export interface EndpointSettings {
  readonly circuitBreaker: CompiledCircuitBreaker;
  readonly healthCheck: CompiledHealthCheck;
  readonly outlierDetection: CompiledOutlierDetection;
}

/**
 * One replica: the dispatcher that carries its requests, its load (outstanding requests), and its
 * standing, decided here and nowhere else: the active health check's verdict, a passive ejection
 * after consecutive failures, a circuit breaker over the recent error rate (opened at once when
 * nothing listens), and a backend's `Retry-After`. An attempt is `admit`ted, then `settle`d.
 */
export class Endpoint {
  // The standing, read outside through the getters below and changed only by this class.
  #outstanding = 0;
  #healthy = true;
  #ejectedUntil = 0;
  #notBefore = 0;
  #ejections = 0;
  #consecutiveFailures = 0;
  private readonly breaker: Breaker;
  private readonly health: HealthCheck;
  private retireTimer: unknown;
  private closed = false;
  private retiring = false;

  constructor(
    readonly origin: string,
    /** Carries the inference requests (a `Pool` of the registry's by default). */
    readonly dispatcher: Dispatcher,
    private settings: EndpointSettings,
    private readonly clock: Clock,
    private readonly events: EndpointEvents,
    healthCheckClient?: HealthCheckClientFactory,
  ) {
    this.breaker = new Breaker(settings.circuitBreaker, (state) => events.onBreaker?.(this, state));
    this.health = new HealthCheck(
      origin,
      clock,
      () => void this.check().finally(() => this.scheduleChecks(false)),
      healthCheckClient,
    );
  }

  /** Requests sent and not finished (the picker's load signal). */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** The active health check's verdict; true until checks say otherwise. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Until when (clock ms) a passive ejection keeps it out. */
  get ejectedUntil(): number {
    return this.#ejectedUntil;
  }

  /** Until when a backend's `Retry-After` keeps it out. */
  get notBefore(): number {
    return this.#notBefore;
  }

  /** Ejections in a row (each one twice as long), and failed attempts since the last success. */
  get ejections(): number {
    return this.#ejections;
  }

  get consecutiveFailures(): number {
    return this.#consecutiveFailures;
  }

  /** The breaker's state, as the picker sees it. */
  get breakerState(): BreakerState {
    return this.breaker.state;
  }

  /** Calls and failures over the breaker's rolling window. */
  get recent(): { requests: number; failures: number } {
    return this.breaker.recent;
  }

  /** Whether the picker may send it a request now, and if not, why. */
  state(now: number): EndpointState {
    if (this.closed) return 'closed';
    if (!this.#healthy) return 'unhealthy';
    if (now < this.#ejectedUntil) return 'ejected';
    if (now < this.#notBefore) return 'backing_off';
    // A half-open breaker lets one probe through at a time.
    if (this.breaker.refuses) return 'circuit_open';
    return 'available';
  }

  available(now: number): boolean {
    return this.state(now) === 'available';
  }

  /** Earliest clock time at which it may be available again (for Retry-After). */
  returnsAt(now: number): number {
    if (!this.#healthy) return now + Math.max(this.settings.healthCheck.intervalMs, 1000);
    let t = now;
    if (this.#ejectedUntil > t) t = this.#ejectedUntil;
    if (this.#notBefore > t) t = this.#notBefore;
    if (this.breaker.opened) t = Math.max(t, now + this.breaker.resetTimeoutMs);
    return t;
  }

  /**
   * Lets one attempt through its breaker and counts it as outstanding; false when the breaker
   * refuses (open, or half-open with its probe out) or the endpoint is closed: send nothing then.
   * Every admitted attempt is `settle`d exactly once.
   */
  admit(): boolean {
    if (this.closed || !this.breaker.admit()) return false;
    this.#outstanding += 1;
    return true;
  }

  /**
   * How an admitted attempt ended, and every consequence for the standing: the breaker's counts,
   * the run of consecutive failures and the ejection it leads to (`peers`: the endpoints of the
   * backend, of which at most maxEjectionPercent are out at once), fail-fast when nothing listens,
   * and the back-off a 503's `Retry-After` asks for. A 4xx is the request's fault, not the replica's.
   */
  settle(outcome: Settlement, peers: readonly Endpoint[]): void {
    this.#outstanding -= 1;
    switch (outcome.kind) {
      case 'ok':
      case 'client_error':
        this.breaker.success();
        this.#consecutiveFailures = 0;
        // A clean answer after an ejection ended: the next ejection starts short again.
        if (this.#ejections > 0 && this.clock.now() >= this.#ejectedUntil) this.#ejections = 0;
        return;
      case 'cancelled':
        // Cut off because the client went away: says nothing of the replica. Neither the breaker
        // nor the run of failures counts it (clients that give up early on a slow but healthy
        // replica must not open its breaker).
        this.breaker.abandon();
        return;
      default:
        this.breaker.failure();
        this.countFailure(peers);
    }
    if (outcome.kind === 'overloaded') {
      // Send it nothing until then (at most 30 s); a missing or bad Retry-After changes nothing.
      const seconds = outcome.retryAfterSeconds;
      if (seconds > 0) this.#notBefore = this.clock.now() + Math.min(seconds, 30) * 1000;
    } else if (outcome.kind === 'network_error' && CONNECT_ERROR_CODES.has(outcome.code ?? '')) {
      this.breaker.failFast();
    }
  }

  /** Passive outlier detection: eject when the run of failures is long enough. */
  private countFailure(peers: readonly Endpoint[]): void {
    this.#consecutiveFailures += 1;
    const o = this.settings.outlierDetection;
    if (this.#consecutiveFailures < o.consecutiveFailures) return;
    const now = this.clock.now();
    if (now < this.#ejectedUntil) return;
    const ejected = peers.reduce((n, p) => n + (p !== this && now < p.ejectedUntil ? 1 : 0), 0);
    const allowed = Math.max(1, Math.floor((peers.length * o.maxEjectionPercent) / 100));
    if (ejected >= allowed) return;
    const forMs = Math.min(o.baseEjectionMs * 2 ** this.#ejections, o.maxEjectionMs);
    this.#ejections += 1;
    this.#ejectedUntil = now + forMs;
    this.#consecutiveFailures = 0;
    this.events.onEjected?.(this, forMs);
  }

  /** One active check of `/v2/health/ready`; resolves with its verdict. */
  async check(): Promise<boolean> {
    if (this.closed) return this.#healthy;
    const result = await this.health.probe(this.settings.healthCheck.timeoutMs);
    if (result === undefined) return this.#healthy;
    if (!this.closed) this.checked(result);
    return result.ok;
  }

  /** What a check's verdict does to the standing. */
  private checked(result: CheckResult): void {
    // Nothing listens there: open the breaker too, as a refused request would.
    if (!result.ok && result.code === 'ECONNREFUSED') this.breaker.failFast();
    this.events.onHealthCheck?.(this, result.ok);
    const { unhealthyThreshold, healthyThreshold } = this.settings.healthCheck;
    if (result.ok) {
      // A replica that was down (its checks failed, or nothing listened) and answers ready again
      // returns at once: its failures were the outage, so the ejection and the breaker go too.
      // A replica that stayed ready while its answers failed keeps its ejection and breaker: a
      // passing check says nothing about its answers.
      const wasDown = !this.#healthy || this.breaker.openedByFailFast;
      if (wasDown && this.health.passes >= healthyThreshold) {
        this.#ejectedUntil = 0;
        this.#notBefore = 0;
        this.#consecutiveFailures = 0;
        this.breaker.close();
        if (!this.#healthy) this.setHealthy(true, 'health check passed');
      }
    } else if (this.#healthy && this.health.failures >= unhealthyThreshold) {
      this.setHealthy(false, 'health check failed');
    }
  }

  private setHealthy(healthy: boolean, reason: string): void {
    this.#healthy = healthy;
    this.events.onHealthChange?.(this, healthy, reason);
  }

  /** New settings from a policy reload; counts and state are kept. */
  update(settings: EndpointSettings): void {
    this.settings = settings;
    this.breaker.update(settings.circuitBreaker);
    this.scheduleChecks(true);
  }

  /** Starts active health checks (when the interval is not 0). */
  startChecks(): void {
    this.scheduleChecks(false);
  }

  private scheduleChecks(restart: boolean): void {
    if (this.closed || this.retiring) return;
    const { intervalMs } = this.settings.healthCheck;
    this.health.arm(intervalMs, restart);
    if (intervalMs <= 0 && !this.#healthy) this.setHealthy(true, 'active checks turned off');
  }

  /**
   * Dropped by a reload: no more health checks, but requests that still hold an older snapshot
   * may use it for `graceMs`; then it closes. `revive` undoes this when a reload brings it back.
   */
  retire(graceMs: number): void {
    this.health.disarm();
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
    if (this.retireTimer !== undefined) this.clock.clearTimer(this.retireTimer);
    this.breaker.shutdown();
    await Promise.all([this.dispatcher.close().catch(() => {}), this.health.close()]);
  }
}
