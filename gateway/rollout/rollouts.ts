/**
 * The rollouts of a gateway: each model's shadow state and canary controller, kept across
 * snapshots while the model's section stays as written, and plugged into each composition
 * (`RolloutHooks`): a shadow plan for models with a shadow section, a series wrapper for the two
 * variants a canary watches. Models with neither get nothing, so their requests do no more work.
 */
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/logging.js';
import type { VariantSeries } from '../metrics.js';
import { EMPTY_OVERLAY, type WeightOverlay } from '../overlay.js';
import type { CompiledModel, CompiledPolicy, CompiledVariant } from '../policy/compiled.js';
import type { RandomSource } from '../router.js';
import type { RolloutHooks, ShadowMirror, VariantState } from '../snapshot.js';
import { type CanaryCommand, CanaryController } from './canary.js';
import { RolloutMetrics } from './metrics.js';
import { ShadowPlan, ShadowState } from './shadow.js';

export interface RolloutsDeps {
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly logger: Logger;
  readonly registry: import('prom-client').Registry;
  /** Writes new weights into the snapshot (SnapshotOwner.setOverlay). */
  readonly setOverlay: (overlay: WeightOverlay) => void;
  /** Fleet mode: shares each rollout's state, one leader per model judging (gateway/fleet/canary-fleet.ts). */
  readonly coordinator?: CanaryCoordinator | undefined;
}

export interface CanaryCoordinator {
  attach(controller: CanaryController): void;
  detach(controller: CanaryController): void;
  close(): Promise<void>;
}

export class Rollouts implements RolloutHooks {
  readonly metrics: RolloutMetrics;
  private readonly shadows = new Map<string, ShadowState>();
  private readonly canaries = new Map<string, CanaryController>();
  /** Set once a policy is applied: from then on a weight change writes the overlay at once. */
  private live = false;

  constructor(private readonly deps: RolloutsDeps) {
    this.metrics = new RolloutMetrics(deps.registry, {
      shadow: () => this.agreements(),
      canary: () =>
        [...this.canaries.values()].map((c) => ({
          model: c.model,
          state: c.state,
          step: c.step,
          weights: c.weights(),
        })),
    });
  }

  /**
   * A new policy, before it is composed: shadow states and controllers of sections that changed
   * or left go, new ones start. Returns the overlay the composition must use.
   */
  policyApplied(policy: CompiledPolicy): WeightOverlay {
    for (const [name, s] of this.shadows) {
      const model = policy.models.get(name);
      if (model?.shadow === undefined || keyOf(model) !== s.key) {
        this.shadows.delete(name);
        // A model that no longer has a shadow leaves no series behind (a changed one keeps them).
        if (model?.shadow === undefined) this.metrics.forgetShadow(name, [...s.counted]);
      }
    }
    for (const [name, c] of this.canaries) {
      if (policy.models.get(name)?.canary?.key !== c.key) {
        c.close();
        this.deps.coordinator?.detach(c);
        this.canaries.delete(name);
        if (policy.models.get(name)?.canary === undefined) this.metrics.forgetCanary(name);
      }
    }
    for (const model of policy.models.values()) {
      if (model.canary !== undefined && !this.canaries.has(model.name)) {
        const { clock, random, logger } = this.deps;
        const controller = new CanaryController(model.name, model.canary, {
          clock,
          random,
          logger,
          metrics: this.metrics,
          changed: () => {
            if (this.live) this.deps.setOverlay(this.overlay());
          },
        });
        this.canaries.set(model.name, controller);
        this.deps.coordinator?.attach(controller);
        logger.info(
          { model: model.name, variant: model.canary.variant.name, weight: controller.weight },
          'canary rollout started',
        );
      }
    }
    this.live = true;
    return this.overlay();
  }

  overlay(): WeightOverlay {
    if (this.canaries.size === 0) return EMPTY_OVERLAY;
    const weights = new Map<string, ReadonlyMap<string, number>>();
    for (const c of this.canaries.values()) weights.set(c.model, c.weights());
    return Object.freeze({ weights });
  }

  shadowPlan(
    model: CompiledModel,
    variants: ReadonlyMap<CompiledVariant, VariantState>,
  ): ShadowMirror | undefined {
    const config = model.shadow;
    if (config === undefined) return undefined;
    const target = variants.get(config.variant);
    if (target === undefined) return undefined;
    let state = this.shadows.get(model.name);
    if (state === undefined || state.key !== keyOf(model)) {
      state = new ShadowState(model.name, keyOf(model));
      this.shadows.set(model.name, state);
    }
    const { clock, random, logger } = this.deps;
    return new ShadowPlan(config, target, state, { clock, random, logger, metrics: this.metrics });
  }

  series(model: CompiledModel, variant: CompiledVariant, series: VariantSeries): VariantSeries {
    const c = this.canaries.get(model.name);
    if (c === undefined || (variant !== c.config.variant && variant !== c.config.baseline)) return series;
    const name = variant.name;
    return {
      request(code, seconds) {
        series.request(code, seconds);
        c.record(name, code, seconds);
      },
    };
  }

  canary(model: string): CanaryController | undefined {
    return this.canaries.get(model);
  }

  /** An operator's command; an error message when there is no such rollout or the state refuses it. */
  command(
    model: string,
    cmd: CanaryCommand,
  ): { ok: true } | { ok: false; notFound: boolean; message: string } {
    const c = this.canaries.get(model);
    if (c === undefined)
      return { ok: false, notFound: true, message: `no canary rollout for model '${model}'` };
    const refused = c.command(cmd);
    if (refused !== undefined) return { ok: false, notFound: false, message: refused };
    this.deps.logger.info({ model, command: cmd, state: c.state }, `canary ${cmd}`);
    return { ok: true };
  }

  canaryView() {
    return { rollouts: [...this.canaries.values()].map((c) => c.view()) };
  }

  shadowView() {
    return {
      models: [...this.shadows.values()].map((s) => ({
        model: s.model,
        inFlight: s.inFlight,
        shadow: [...s.tallies.values()].map((t) => ({ ...t.view(), disagreements: t.disagreements })),
        noiseFloor: [...s.noise.values()].map((t) => t.view()),
      })),
    };
  }

  async close(): Promise<void> {
    for (const c of this.canaries.values()) c.close();
    await this.deps.coordinator?.close();
  }

  private *agreements() {
    for (const s of this.shadows.values()) {
      for (const t of [...s.tallies.values(), ...s.noise.values()]) {
        const top1 = t.top1();
        const agreement =
          top1 !== undefined ? top1.agree / top1.rows : t.compared === 0 ? null : t.agreed / t.compared;
        yield { model: s.model, variant: t.variant, agreement };
      }
    }
  }
}

/** A shadow's tallies start over when its section changes. */
function keyOf(model: CompiledModel | undefined): string {
  const s = model?.shadow;
  if (s === undefined) return '';
  return JSON.stringify({ ...s, variant: s.variant.name, classifications: [...s.classifications] });
}
