/**
 * The snapshot's types: what a request reads (Snapshot, ModelState, VariantState), what the
 * rollouts plug in (RolloutHooks, ShadowMirror) and what the owner is built from (SnapshotDeps).
 * The owner is in snapshot.ts, which re-exports these.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Clock } from '../common/clock.js';
import type { OnShed } from './admission/concurrency.js';
import type { SecurityDeps } from './admission/security.js';
import type { AdmissionStage } from './admission/stage.js';
import type { EndpointSource } from './endpoint-source.js';
import type { GatewayMetrics, VariantSeries } from './metrics.js';
import type { WeightOverlay } from './overlay.js';
import type { CompiledModel, CompiledPolicy, CompiledVariant } from './policy/compile.js';
import type { RandomSource } from './router.js';
import type { Endpoint, EndpointRegistry } from './upstream/endpoint.js';
import type { ForwardContext, ForwardResponse } from './upstream/forward.js';
import type { RetryBudget } from './upstream/retry-budget.js';

/** What a request to one variant needs besides the policy: built once per variant and snapshot. */
export interface VariantState extends ForwardContext {
  readonly variant: CompiledVariant;
  readonly series: VariantSeries;
  /** The endpoints of the variant's backend. */
  readonly endpoints: readonly Endpoint[];
}

/** A logical model's share of the snapshot. */
export interface ModelState {
  readonly model: CompiledModel;
  /** Its admission stages, in order, compiled for this snapshot. */
  readonly admission: readonly AdmissionStage[];
  readonly budget: RetryBudget;
  /** By the variant objects the router returns. */
  readonly variants: ReadonlyMap<CompiledVariant, VariantState>;
  /** Only for a model with a shadow section: decided once per snapshot, not per request. */
  readonly shadow: ShadowMirror | undefined;
}

/** Sends the copies of an answered request (gateway/rollout/shadow.ts), off the client's path. */
export interface ShadowMirror {
  mirror(
    id: string,
    headers: IncomingHttpHeaders,
    primary: VariantState,
    body: Buffer,
    answer: ForwardResponse,
  ): void;
}

/** What the rollouts (shadow, canary) plug into each composition. */
export interface RolloutHooks {
  shadowPlan(
    model: CompiledModel,
    variants: ReadonlyMap<CompiledVariant, VariantState>,
  ): ShadowMirror | undefined;
  /** The series of a variant, or a wrapper that also feeds the canary that watches it. */
  series(model: CompiledModel, variant: CompiledVariant, series: VariantSeries): VariantSeries;
}

export interface Snapshot {
  /** Counts up with each composition (a policy, an overlay or an endpoint change). */
  readonly generation: number;
  /** The policy as compiled. */
  readonly policy: CompiledPolicy;
  /** What the router reads: the policy with the overlay's weights. */
  readonly routing: CompiledPolicy;
  readonly overlay: WeightOverlay;
  /** Endpoints of each backend, by backend name. */
  readonly endpoints: ReadonlyMap<string, readonly Endpoint[]>;
  readonly models: ReadonlyMap<string, ModelState>;
  /** What a request for a model the policy does not have passes before its 404 (auth required). */
  readonly authGate: AdmissionStage | undefined;
  /** Wall-clock time (ms since the epoch) of the composition. */
  readonly appliedAt: number;
}

export interface SnapshotDeps {
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly metrics: GatewayMetrics;
  readonly registry: EndpointRegistry;
  readonly endpointSource: EndpointSource;
  readonly onShed: OnShed;
  /** Told of each batch request shed by the batch-share stage, by logical model. */
  readonly onBatchShed?: (model: string) => void;
  /** Key directory, token verifier, rate-limit stores; local buckets in memory by default. */
  readonly security?: Partial<SecurityDeps>;
  readonly rollouts?: RolloutHooks;
}
