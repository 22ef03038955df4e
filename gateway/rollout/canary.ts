/**
 * The canary controller of one model: it steps the canary's weight through the policy's steps,
 * each step lasting at least `stepSeconds` and until both variants have answered `minSamples`
 * in it, judges the step once at that horizon (judge.ts), and then advances, promotes to 100%
 * or rolls back to 0 at once with the reason logged and exported. Weights reach the router
 * through the snapshot's overlay (`changed` tells the rollouts to write it). Clock injected.
 */
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/logging.js';
import type { CompiledCanary } from '../policy/compiled.js';
import { judgeStep, StepSamples, type Verdict } from './judge.js';
import type { CanaryStateName, RolloutMetrics } from './metrics.js';

export type CanaryCommand = 'pause' | 'resume' | 'abort' | 'promote';
export const CANARY_COMMANDS: readonly CanaryCommand[] = ['pause', 'resume', 'abort', 'promote'];

export interface CanaryEnv {
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Logger;
  readonly metrics: RolloutMetrics;
  /** The weights changed: write the overlay. */
  readonly changed: () => void;
}

export interface CanaryEvent {
  readonly at: string;
  readonly step: number;
  readonly weight: number;
  readonly event: string;
  readonly reason?: string;
}

const HISTORY = 50;

/** What a fleet shares of a rollout (fleet mode: gateway/fleet/canary-fleet.ts keeps it in Redis). */
export interface PersistedCanary {
  readonly state: CanaryStateName;
  readonly step: number;
  /** How long ago (ms) the step began. */
  readonly stepAgeMs: number;
  readonly reason: string | null;
}

export class CanaryController {
  state: CanaryStateName = 'progressing';
  step = 0;
  reason: string | null = null;
  readonly history: CanaryEvent[] = [];
  private stepStartedAt: number;
  private canary: StepSamples;
  private baseline: StepSamples;
  private lastVerdict: Verdict | undefined;
  private timer: unknown;
  private closed = false;
  /** False on a fleet's followers: they apply the leader's steps and never judge. */
  judging = true;
  /** Told of every transition made here (a judgement or a command), for the fleet to share. */
  onTransition: ((p: PersistedCanary) => void) | undefined = undefined;

  constructor(
    readonly model: string,
    readonly config: CompiledCanary,
    private readonly env: CanaryEnv,
  ) {
    this.stepStartedAt = env.clock.now();
    this.canary = new StepSamples(env.random);
    this.baseline = new StepSamples(env.random);
    this.event('started');
    this.arm();
  }

  get key(): string {
    return this.config.key;
  }

  /** The canary's weight now, in percent. */
  get weight(): number {
    if (this.state === 'promoted') return 100;
    if (this.state === 'rolled_back' || this.state === 'aborted') return 0;
    return this.config.steps[this.step] as number;
  }

  weights(): ReadonlyMap<string, number> {
    const w = this.weight;
    return new Map([
      [this.config.variant.name, w],
      [this.config.baseline.name, 100 - w],
    ]);
  }

  /** One answer of either variant (from its request series). */
  record(variant: string, code: number, seconds: number): void {
    if (this.state !== 'progressing') return;
    if (variant === this.config.variant.name) this.canary.record(code, seconds);
    else if (variant === this.config.baseline.name) this.baseline.record(code, seconds);
  }

  /** Judges the step when its horizon is reached; holds otherwise. */
  tick(): void {
    if (this.state !== 'progressing' || !this.judging) return;
    const v = judgeStep(this.config, this.canary, this.baseline, this.stepStartedAt, this.env.clock.now());
    this.lastVerdict = v;
    if (v.kind === 'hold') return;
    if (v.kind === 'rollback') {
      this.end('rolled_back', v.cause, v.reason);
      return;
    }
    const next = this.step + 1;
    const weight = this.config.steps[next];
    if (weight === undefined || weight >= 100) {
      this.end('promoted', undefined, 'passed every step');
      return;
    }
    this.step = next;
    this.startStep();
    this.event('advanced');
    this.env.changed();
    this.onTransition?.(this.persisted());
  }

  persisted(): PersistedCanary {
    return {
      state: this.state,
      step: this.step,
      stepAgeMs: this.env.clock.now() - this.stepStartedAt,
      reason: this.reason,
    };
  }

  /** Takes a state another gateway wrote (the leader's, an operator's): new samples for a new step. */
  restore(p: PersistedCanary): void {
    const moved = p.state !== this.state || p.step !== this.step;
    this.stepStartedAt = this.env.clock.now() - p.stepAgeMs;
    if (!moved) return;
    const stepChanged = p.step !== this.step;
    this.state = p.state;
    this.step = p.step;
    this.reason = p.reason;
    if (stepChanged) {
      const startedAt = this.stepStartedAt;
      this.startStep();
      this.stepStartedAt = startedAt;
    }
    this.event('followed', p.reason ?? undefined);
    this.env.changed();
    if (this.timer === undefined && (p.state === 'progressing' || p.state === 'paused')) this.arm();
  }

  /** An operator's command; an error message when the state does not allow it. */
  command(cmd: CanaryCommand): string | undefined {
    const final = this.state === 'promoted' || this.state === 'rolled_back' || this.state === 'aborted';
    if (final)
      return `the rollout of '${this.model}' has ended (${this.state}); change the policy's canary section to start another`;
    switch (cmd) {
      case 'pause':
        if (this.state === 'paused') return `the rollout of '${this.model}' is paused already`;
        this.state = 'paused';
        this.event('paused');
        this.onTransition?.(this.persisted());
        return undefined;
      case 'resume':
        if (this.state !== 'paused') return `the rollout of '${this.model}' is not paused`;
        // A resumed step starts over: samples from before the pause are not judged with later ones.
        this.state = 'progressing';
        this.startStep();
        this.event('resumed');
        this.onTransition?.(this.persisted());
        return undefined;
      case 'abort':
        this.end('aborted', 'aborted', 'aborted by an operator');
        return undefined;
      case 'promote':
        this.end('promoted', undefined, 'promoted by an operator');
        return undefined;
    }
  }

  view() {
    const v = this.lastVerdict;
    return {
      model: this.model,
      variant: this.config.variant.name,
      baseline: this.config.baseline.name,
      state: this.state,
      step: this.step,
      steps: this.config.steps,
      weight: this.weight,
      stepSeconds: this.config.stepSeconds,
      stepElapsedSeconds: (this.env.clock.now() - this.stepStartedAt) / 1000,
      minSamples: this.config.minSamples,
      samples: {
        canary: { requests: this.canary.n, errors: this.canary.errors },
        baseline: { requests: this.baseline.n, errors: this.baseline.errors },
      },
      reason: this.reason,
      lastJudgement:
        v === undefined
          ? null
          : v.kind === 'hold'
            ? { verdict: 'hold', reason: v.reason }
            : {
                verdict: v.kind,
                alpha: v.alpha,
                errorRate: { z: finite(v.errors.z), p: v.errors.p },
                latency: { z: finite(v.latency.z), p: v.latency.p },
              },
      history: this.history,
    };
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.env.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private end(state: CanaryStateName, cause: string | undefined, reason: string): void {
    this.state = state;
    this.reason = reason;
    this.event(state, reason);
    if (cause !== undefined) this.env.metrics.canaryRollbacks.inc({ model: this.model, reason: cause });
    const log = { model: this.model, variant: this.config.variant.name, step: this.step, reason };
    if (state === 'promoted') this.env.logger.info(log, `canary promoted to 100%: ${reason}`);
    else this.env.logger.warn(log, `canary ${state.replace('_', ' ')} to 0%: ${reason}`);
    this.env.changed();
    this.onTransition?.(this.persisted());
  }

  private startStep(): void {
    this.stepStartedAt = this.env.clock.now();
    this.canary = new StepSamples(this.env.random);
    this.baseline = new StepSamples(this.env.random);
    this.lastVerdict = undefined;
  }

  private event(event: string, reason?: string): void {
    this.history.push({
      at: new Date().toISOString(),
      step: this.step,
      weight: this.weight,
      event,
      ...(reason === undefined ? {} : { reason }),
    });
    if (this.history.length > HISTORY) this.history.shift();
  }

  /** Checks ten times a step (at least every second, at most every 20 ms). */
  private arm(): void {
    if (this.closed) return;
    const every = Math.min(1000, Math.max(20, (this.config.stepSeconds * 1000) / 10));
    this.timer = this.env.clock.setTimer(() => {
      this.tick();
      if (this.state === 'progressing' || this.state === 'paused') this.arm();
      else this.timer = undefined;
    }, every);
    (this.timer as { unref?: () => void }).unref?.();
  }
}

function finite(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}
