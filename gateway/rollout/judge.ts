/**
 * The canary's judgement of one step, pure: the samples of both variants in, a verdict out. A
 * step is judged once, at its horizon (its time is up and both variants have `minSamples`), by
 * two one-sided tests, each at `alpha = (1 - confidence) / (2 × judged steps)` (Bonferroni over
 * every test of the rollout), so that a healthy canary is rolled back with probability at most
 * `1 - confidence` over the whole rollout:
 *   errors:  H1 rate(canary) - rate(baseline) > maxErrorRateIncrease  (errorRateTest)
 *   latency: H1 canary latencies > baseline latencies × (1 + maxLatencyIncreasePercent / 100)
 *            (Mann–Whitney U with a scale margin)
 */
import type { CompiledCanary } from '../policy/compiled.js';
import { errorRateTest, mannWhitney, type TestResult } from './stats.js';

/** Latencies kept per variant and step: a uniform sample of the step's answers (reservoir). */
export const LATENCY_RESERVOIR = 4096;

export class StepSamples {
  n = 0;
  errors = 0;
  /** Answers without a server error, whose latencies the reservoir samples. */
  answered = 0;
  readonly latencies: number[] = [];

  constructor(private readonly random: () => number) {}

  record(code: number, seconds: number): void {
    if (code === 499) return; // the client went away: says nothing of the variant
    this.n += 1;
    if (code >= 500) {
      this.errors += 1;
      return;
    }
    this.answered += 1;
    if (this.latencies.length < LATENCY_RESERVOIR) this.latencies.push(seconds);
    else {
      const j = Math.floor(this.random() * this.answered);
      if (j < LATENCY_RESERVOIR) this.latencies[j] = seconds;
    }
  }
}

export type Verdict =
  | { readonly kind: 'hold'; readonly reason: string }
  | {
      readonly kind: 'pass';
      readonly errors: TestResult;
      readonly latency: TestResult;
      readonly alpha: number;
    }
  | {
      readonly kind: 'rollback';
      readonly cause: 'error_rate' | 'latency';
      readonly reason: string;
      readonly errors: TestResult;
      readonly latency: TestResult;
      readonly alpha: number;
    };

/** Steps that are judged: those below 100 (at 100 the baseline serves nothing to compare with). */
export function judgedSteps(config: CompiledCanary): number {
  return Math.max(1, config.steps.filter((s) => s < 100).length);
}

export function alphaOf(config: CompiledCanary): number {
  return (1 - config.confidence) / (2 * judgedSteps(config));
}

/** The verdict on a step that began at `startedAt` (ms), at `now`. */
export function judgeStep(
  config: CompiledCanary,
  canary: StepSamples,
  baseline: StepSamples,
  startedAt: number,
  now: number,
): Verdict {
  const elapsed = (now - startedAt) / 1000;
  if (elapsed < config.stepSeconds) {
    return { kind: 'hold', reason: `step time: ${elapsed.toFixed(1)} of ${config.stepSeconds} s` };
  }
  if (canary.n < config.minSamples || baseline.n < config.minSamples) {
    return {
      kind: 'hold',
      reason: `samples: canary ${canary.n}, baseline ${baseline.n} of ${config.minSamples} each`,
    };
  }
  const alpha = alphaOf(config);
  const errors = errorRateTest(
    canary.errors,
    canary.n,
    baseline.errors,
    baseline.n,
    config.maxErrorRateIncrease,
  );
  const latency = mannWhitney(
    canary.latencies,
    baseline.latencies,
    1 + config.maxLatencyIncreasePercent / 100,
  );
  const rate = (s: StepSamples) => `${((100 * s.errors) / s.n).toFixed(2)}%`;
  if (errors.p < alpha) {
    return {
      kind: 'rollback',
      cause: 'error_rate',
      reason: `error rate ${rate(canary)} against the baseline's ${rate(baseline)} exceeds the allowed increase of ${config.maxErrorRateIncrease} (p ${errors.p.toExponential(2)} < ${alpha.toExponential(2)})`,
      errors,
      latency,
      alpha,
    };
  }
  if (latency.p < alpha) {
    const ratio = median(canary.latencies) / Math.max(median(baseline.latencies), 1e-9);
    return {
      kind: 'rollback',
      cause: 'latency',
      reason: `latency is more than ${config.maxLatencyIncreasePercent}% above the baseline's (median ratio ${ratio.toFixed(2)}, Mann-Whitney p ${latency.p.toExponential(2)} < ${alpha.toExponential(2)})`,
      errors,
      latency,
      alpha,
    };
  }
  return { kind: 'pass', errors, latency, alpha };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
