/**
 * One run's figures, every phase, every target; and how figures are taken across runs: each
 * ratio or difference within a run (both sides measured seconds apart, in interleaved slices),
 * then the median over runs.
 */
import { median, spread } from '../common.js';
import { fmt } from '../lib.js';
import type { TargetName } from './options.js';
import type { Cpu } from './phases/cpu.js';
import type { Latency } from './phases/light.js';
import type { Moderate } from './phases/moderate.js';
import type { Saturation } from './phases/saturation.js';

export interface RunResult {
  latency: Partial<Record<TargetName, Latency>>;
  saturation: Partial<Record<TargetName, Saturation>>;
  cpu: Partial<Record<TargetName, Cpu>>;
  moderate: Partial<Record<TargetName, Moderate>>;
}

/** A figure of target `n` in run `r`, undefined where it was not measured. */
export type Figure = (r: RunResult, n: TargetName) => number | undefined;

export class Runs {
  constructor(
    readonly results: readonly RunResult[],
    private readonly names: readonly TargetName[],
  ) {}

  has(n: TargetName): boolean {
    return this.names.includes(n);
  }

  /** The figure in each run (NaN where it is missing). */
  each(f: (r: RunResult) => number | undefined): number[] {
    return this.results.map((r) => f(r) ?? Number.NaN);
  }

  med(f: (r: RunResult) => number | undefined): number {
    return median(this.each(f));
  }

  /** a's figure over b's in each run; empty unless both targets were measured. */
  ratios(a: TargetName, b: TargetName, f: Figure): number[] {
    return this.has(a) && this.has(b) ? this.each((r) => f(r, a)! / f(r, b)!) : [];
  }

  ratio(a: TargetName, b: TargetName, f: Figure): number | undefined {
    const xs = this.ratios(a, b, f);
    return xs.length === 0 ? undefined : median(xs);
  }

  /** a's figure less b's in each run. */
  diffs(a: TargetName, b: TargetName, f: Figure): number[] {
    return this.has(a) && this.has(b) ? this.each((r) => f(r, a)! - f(r, b)!) : [];
  }

  diff(a: TargetName, b: TargetName, f: Figure): number | undefined {
    const xs = this.diffs(a, b, f);
    return xs.length === 0 ? undefined : median(xs);
  }
}

/** "1.01 (0.98-1.04)": the median and, over several runs, the range. */
export function withSpread(xs: readonly number[], digits = 2): string {
  const m = median(xs);
  if (!Number.isFinite(m)) return '-';
  if (xs.length < 2) return m.toFixed(digits);
  const { min, max } = spread(xs);
  return `${m.toFixed(digits)} (${min.toFixed(digits)}-${max.toFixed(digits)})`;
}

export const dash = (x: number | undefined, f: (v: number) => string | number = (v) => v) =>
  x === undefined || !Number.isFinite(x) ? '-' : f(x);

export const plus = (v: number) => `${v >= 0 ? '+' : ''}${fmt(v)}`;

export const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
