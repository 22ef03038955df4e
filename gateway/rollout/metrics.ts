/**
 * The rollout series, on the gateway's registry: shadow copies by outcome, the distribution of
 * their largest absolute difference, their agreement; the canary's weights, state, step and
 * rollbacks. Gauges are read from the rollouts at scrape time, so requests only count and observe.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type ShadowOutcome = 'compared' | 'dropped' | 'error' | 'timeout';
export const SHADOW_OUTCOMES: readonly ShadowOutcome[] = ['compared', 'dropped', 'error', 'timeout'];

export const CANARY_STATES = ['progressing', 'paused', 'promoted', 'rolled_back', 'aborted'] as const;
export type CanaryStateName = (typeof CANARY_STATES)[number];

/** What the gauges read at scrape time. */
export interface RolloutSample {
  shadow(): Iterable<{ model: string; variant: string; agreement: number | null }>;
  canary(): Iterable<{
    model: string;
    state: CanaryStateName;
    step: number;
    weights: ReadonlyMap<string, number>;
  }>;
}

export class RolloutMetrics {
  readonly shadowRequests: Counter<'model' | 'variant' | 'outcome'>;
  readonly shadowMaxAbs: Histogram<'model' | 'variant'>;
  readonly canaryRollbacks: Counter<'model' | 'reason'>;

  constructor(registry: Registry, sample: RolloutSample) {
    const registers = [registry];
    this.shadowRequests = new Counter({
      name: 'infergate_shadow_requests_total',
      help: 'Shadow copies by model, compared variant and outcome (compared, dropped, error, timeout); the noise floor replays carry the primary variant.',
      labelNames: ['model', 'variant', 'outcome'],
      registers,
    });
    this.shadowMaxAbs = new Histogram({
      name: 'infergate_shadow_max_abs_difference',
      help: 'Largest absolute difference between the outputs of an answer and its shadow copy, per compared request.',
      labelNames: ['model', 'variant'],
      buckets: [0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10],
      registers,
    });
    new Gauge({
      name: 'infergate_shadow_agreement',
      help: 'Agreement of a compared variant with the answers: top-1 agreement over classification outputs where declared, else the share of requests within tolerance.',
      labelNames: ['model', 'variant'],
      registers,
      collect() {
        this.reset();
        for (const s of sample.shadow()) {
          if (s.agreement !== null) this.set({ model: s.model, variant: s.variant }, s.agreement);
        }
      },
    });
    new Gauge({
      name: 'infergate_canary_weight',
      help: 'Split weight (percent) the canary controller gives each variant of a model in rollout.',
      labelNames: ['model', 'variant'],
      registers,
      collect() {
        this.reset();
        for (const c of sample.canary())
          for (const [variant, w] of c.weights) this.set({ model: c.model, variant }, w);
      },
    });
    new Gauge({
      name: 'infergate_canary_state',
      help: 'State of a model in rollout: 1 on the current state (progressing, paused, promoted, rolled_back, aborted), 0 on the others.',
      labelNames: ['model', 'state'],
      registers,
      collect() {
        this.reset();
        for (const c of sample.canary())
          for (const s of CANARY_STATES) this.set({ model: c.model, state: s }, s === c.state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'infergate_canary_step',
      help: 'Index (from 0) of the step a model in rollout is at.',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const c of sample.canary()) this.set({ model: c.model }, c.step);
      },
    });
    this.canaryRollbacks = new Counter({
      name: 'infergate_canary_rollbacks_total',
      help: 'Rollouts ended with the canary at weight 0, by reason (error_rate, latency, aborted).',
      labelNames: ['model', 'reason'],
      registers,
    });
  }

  forgetShadow(model: string, variants: readonly string[]): void {
    for (const variant of variants) {
      for (const outcome of SHADOW_OUTCOMES) this.shadowRequests.remove({ model, variant, outcome });
      this.shadowMaxAbs.remove({ model, variant });
    }
  }

  forgetCanary(model: string): void {
    for (const reason of ['error_rate', 'latency', 'aborted']) this.canaryRollbacks.remove({ model, reason });
  }
}
