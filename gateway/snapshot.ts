/**
 * The snapshot: the compiled policy, the endpoints of each backend (from an `EndpointSource`), and
 * the run-time overlay of weights, composed into one frozen object that a request takes once and
 * keeps to its end. `SnapshotOwner` is the one place that swaps it, and it owns the lifetime of
 * per-model and per-backend state: concurrency limiters and retry budgets are carried over while
 * their model stays, endpoints (pools, breakers, health checks) while their origin stays, and
 * both are released, metric series included, once what left is out of every request's reach.
 */
import { type BatchCount, batchShareStage } from './admission/batch-share.js';
import { concurrencyStage } from './admission/concurrency.js';
import { ConcurrencyLimiter } from './admission/limiter.js';
import { MemoryRateStore } from './admission/gcra.js';
import { type SecurityDeps, securityStages, unknownModelGate } from './admission/security.js';
import type { ModelState, Snapshot, SnapshotDeps, VariantState } from './snapshot-types.js';
import type { AdmissionStage } from './admission/stage.js';
import type { EndpointSeries } from './metrics.js';
import { applyOverlay, EMPTY_OVERLAY, type WeightOverlay } from './overlay.js';
import type { CompiledModel, CompiledPolicy, CompiledVariant } from './policy/compile.js';
import type { Endpoint } from './upstream/endpoint.js';
import { RetryBudget } from './upstream/retry-budget.js';

export type {
  ModelState,
  RolloutHooks,
  ShadowMirror,
  Snapshot,
  SnapshotDeps,
  VariantState,
} from './snapshot-types.js';

/** What outlives one snapshot: a model's limiter and budget, kept while the model stays. */
interface Carried {
  readonly limiter: ConcurrencyLimiter;
  readonly budget: RetryBudget;
  readonly batch: BatchCount;
}

export class SnapshotOwner {
  private snapshot: Snapshot | undefined;
  private overlay: WeightOverlay = EMPTY_OVERLAY;
  private generation = 0;
  private gatewayStage: AdmissionStage | undefined;
  private gatewayLimiter: ConcurrencyLimiter | undefined;
  private readonly carried = new Map<string, Carried>();
  /** Models and endpoints that left, by `model:` / `endpoint:` key: their series go at the timer. */
  private readonly leaving = new Map<string, unknown>();
  /** Outlives snapshots: local buckets keep their state across reloads. */
  private readonly security: SecurityDeps;

  constructor(private readonly deps: SnapshotDeps) {
    this.security = {
      localRates: new MemoryRateStore(() => deps.clock.now()),
      wallClock: Date.now,
      onAuthRefused: () => {},
      onRateLimited: () => {},
      ...deps.security,
    };
    deps.endpointSource.onChange(() => {
      if (this.snapshot !== undefined) this.compose(this.snapshot.policy);
    });
  }

  /** The snapshot in force; take it once per request. */
  get current(): Snapshot {
    if (this.snapshot === undefined) throw new Error('no policy applied yet');
    return this.snapshot;
  }

  get hasSnapshot(): boolean {
    return this.snapshot !== undefined;
  }

  /** A new policy (with the rollouts' weights for it, when given): composes and swaps in its snapshot. */
  apply(policy: CompiledPolicy, overlay?: WeightOverlay): Snapshot {
    if (overlay !== undefined) this.overlay = overlay;
    return this.compose(policy);
  }

  /** New run-time weights (the canary's): the same policy, composed again. */
  setOverlay(overlay: WeightOverlay): Snapshot {
    this.overlay = overlay;
    return this.compose(this.current.policy);
  }

  /** What this owner holds beyond the snapshot: models carried, and series waiting to go. */
  get held(): { readonly models: number; readonly leaving: number } {
    return { models: this.carried.size, leaving: this.leaving.size };
  }

  close(): void {
    for (const t of this.leaving.values()) this.deps.clock.clearTimer(t);
    this.leaving.clear();
  }

  private compose(policy: CompiledPolicy): Snapshot {
    const { registry, endpointSource, clock } = this.deps;
    const previous = this.snapshot;
    const graceMs = graceFor(previous?.policy);
    endpointSource.known?.([...policy.backends.keys()]);
    const backends = [...policy.backends.values()].map((b) => ({
      ...b,
      endpoints: endpointSource.endpointsOf(b),
    }));
    registry.sync(backends, graceMs);
    const endpoints = new Map<string, readonly Endpoint[]>();
    for (const b of backends) endpoints.set(b.name, Object.freeze(b.endpoints.map((e) => registry.get(e))));

    if (this.gatewayLimiter === undefined) {
      this.gatewayLimiter = new ConcurrencyLimiter(policy.limits, clock);
      this.gatewayStage = concurrencyStage('gateway', this.gatewayLimiter, this.deps.onShed);
    } else {
      this.gatewayLimiter.update(policy.limits);
    }
    const routing = applyOverlay(policy, this.overlay);
    const models = new Map<string, ModelState>();
    for (const model of routing.models.values())
      models.set(model.name, this.modelState(policy, model, endpoints));
    for (const name of this.carried.keys()) {
      // Requests of older snapshots still hold its limiter and budget: they go, with its series,
      // once those requests are over; a model back before then takes them up again.
      if (!models.has(name)) {
        this.leave(`model:${name}`, graceMs, () => {
          this.carried.delete(name);
          this.deps.metrics.forgetModel(name);
        });
      }
    }
    this.trackEndpoints(previous, endpoints, graceMs);
    this.generation += 1;
    this.snapshot = Object.freeze({
      generation: this.generation,
      policy,
      routing,
      overlay: this.overlay,
      endpoints,
      models,
      authGate: unknownModelGate(policy, this.security),
      appliedAt: Date.now(),
    });
    return this.snapshot;
  }

  private modelState(
    policy: CompiledPolicy,
    model: CompiledModel,
    endpoints: ReadonlyMap<string, readonly Endpoint[]>,
  ): ModelState {
    const { clock } = this.deps;
    let carried = this.carried.get(model.name);
    if (carried === undefined) {
      carried = {
        limiter: new ConcurrencyLimiter(model.concurrency, clock),
        budget: new RetryBudget(clock),
        batch: { inFlight: 0 },
      };
      this.carried.set(model.name, carried);
    } else {
      carried.limiter.update(model.concurrency);
    }
    this.stay(`model:${model.name}`);
    const variants = new Map<CompiledVariant, VariantState>();
    for (const v of model.variants.values()) {
      variants.set(v, this.variantState(model, v, endpoints.get(v.backend.name) ?? []));
    }
    const admission = Object.freeze([
      ...securityStages(policy, model, this.security),
      // Before the concurrency stages: a batch request never waits in their queues.
      batchShareStage({
        model: model.name,
        maxShare: model.batchShare,
        count: carried.batch,
        modelLimiter: carried.limiter,
        gatewayLimiter: this.gatewayLimiter as ConcurrencyLimiter,
        onShed: this.deps.onBatchShed ?? (() => {}),
      }),
      this.gatewayStage as AdmissionStage,
      concurrencyStage('model', carried.limiter, this.deps.onShed),
    ]);
    const shadow = model.shadow === undefined ? undefined : this.deps.rollouts?.shadowPlan(model, variants);
    return Object.freeze({ model, admission, budget: carried.budget, variants, shadow });
  }

  private variantState(
    model: CompiledModel,
    variant: CompiledVariant,
    endpoints: readonly Endpoint[],
  ): VariantState {
    const { metrics, clock, random } = this.deps;
    const endpointSeries = new Map<Endpoint, EndpointSeries>();
    const series = metrics.forVariant(model.name, variant.name);
    return {
      variant,
      endpoints,
      clock,
      random,
      series: this.deps.rollouts?.series(model, variant, series) ?? series,
      onAttempt(endpoint, outcome, seconds) {
        let s = endpointSeries.get(endpoint);
        if (s === undefined) {
          s = metrics.forEndpoint(variant.backend.name, endpoint.origin);
          endpointSeries.set(endpoint, s);
        }
        s.attempt(outcome, seconds);
      },
      onRetry(reason, allowed) {
        if (allowed) metrics.retries.inc({ model: model.name, reason });
        else metrics.retriesDenied.inc({ model: model.name });
      },
    };
  }

  /** Backends and endpoints that left: their series go too, once older snapshots are done. */
  private trackEndpoints(
    previous: Snapshot | undefined,
    next: ReadonlyMap<string, readonly Endpoint[]>,
    graceMs: number,
  ): void {
    const origins = new Set<string>();
    for (const [backend, list] of next) {
      this.stay(`backend:${backend}`);
      for (const e of list) origins.add(e.origin);
    }
    for (const origin of origins) this.stay(`endpoint:${origin}`);
    if (previous === undefined) return;
    const { metrics } = this.deps;
    for (const [backend, list] of previous.endpoints) {
      if (!next.has(backend)) this.leave(`backend:${backend}`, graceMs, () => metrics.forgetBackend(backend));
      for (const e of list) {
        if (!origins.has(e.origin))
          this.leave(`endpoint:${e.origin}`, graceMs, () => metrics.forgetEndpoint(e.origin));
      }
    }
  }

  private leave(key: string, graceMs: number, forget: () => void): void {
    if (this.leaving.has(key)) return;
    const timer = this.deps.clock.setTimer(() => {
      this.leaving.delete(key);
      forget();
    }, graceMs);
    (timer as { unref?: () => void }).unref?.();
    this.leaving.set(key, timer);
  }

  private stay(key: string): void {
    const timer = this.leaving.get(key);
    if (timer === undefined) return;
    this.deps.clock.clearTimer(timer);
    this.leaving.delete(key);
  }
}

/**
 * How long what a reload drops stays usable for requests of the older snapshot: its longest
 * deadline plus the longest wait for a concurrency slot, and a second more.
 */
function graceFor(previous: CompiledPolicy | undefined): number {
  let graceMs = 1000;
  if (previous === undefined) return graceMs;
  for (const m of previous.models.values()) {
    graceMs = Math.max(
      graceMs,
      m.timeoutMs + m.concurrency.queueTimeoutMs + previous.limits.queueTimeoutMs + 1000,
    );
  }
  return graceMs;
}
