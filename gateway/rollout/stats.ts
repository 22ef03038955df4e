/**
 * The statistics of shadow comparison and canary judgement, pure: the normal distribution, the
 * Wilson score interval, a one-sided test of two proportions with a margin, and a one-sided
 * Mann–Whitney U test with a scale margin (normal approximation, tie-corrected).
 *
 * Imports nothing: tested against known values in test/unit/rollout-stats.test.ts.
 */

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 on erf; absolute error < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly =
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/** Inverse of the standard normal CDF (Acklam's rational approximation; relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`quantile of ${p}: p must be in (0, 1)`);
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  const [a0, a1, a2, a3, a4, a5] = a as [number, number, number, number, number, number];
  const [b0, b1, b2, b3, b4] = b as [number, number, number, number, number];
  const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = d as [number, number, number, number];
  if (p < lo || p > 1 - lo) {
    const q = Math.sqrt(-2 * Math.log(p < lo ? p : 1 - p));
    const x =
      (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) /
      ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
    return p < lo ? x : -x;
  }
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) /
    (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1)
  );
}

export interface Interval {
  readonly low: number;
  readonly high: number;
}

/** Wilson score interval of `successes` in `n` at normal quantile `z` (1.96: 95%); [0, 1] when n is 0. */
export function wilson(successes: number, n: number, z = 1.959963984540054): Interval {
  if (n <= 0) return { low: 0, high: 1 };
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

export interface TestResult {
  /** The test statistic (a z score); positive means the candidate looks worse. */
  readonly z: number;
  /** One-sided p-value of "the candidate is worse than the baseline by more than the margin". */
  readonly p: number;
}

/**
 * Errors: H0 `rate(candidate) - rate(baseline) <= margin` against H1 `> margin`, by the Wald
 * statistic with unpooled variance (a margin makes the pooled one wrong). With no variance at all
 * (both rates 0 or 1) the difference is judged as it is: p 0 beyond the margin, 1 within it.
 */
export function errorRateTest(
  candidateErrors: number,
  candidateN: number,
  baselineErrors: number,
  baselineN: number,
  margin: number,
): TestResult {
  if (candidateN <= 0 || baselineN <= 0) return { z: 0, p: 1 };
  const pc = candidateErrors / candidateN;
  const pb = baselineErrors / baselineN;
  const diff = pc - pb - margin;
  const se = Math.sqrt((pc * (1 - pc)) / candidateN + (pb * (1 - pb)) / baselineN);
  if (se === 0) return diff > 0 ? { z: Number.POSITIVE_INFINITY, p: 0 } : { z: 0, p: 1 };
  const z = diff / se;
  return { z, p: 1 - normalCdf(z) };
}

export interface RankTest extends TestResult {
  /** U of the candidate: the count of (candidate, baseline) pairs where the candidate is larger (ties 1/2). */
  readonly u: number;
}

/**
 * Latency: a one-sided Mann–Whitney U test of H1 "candidate latencies are stochastically larger
 * than baseline latencies times `scale`" (scale 1.2 allows 20% slower), by the normal
 * approximation with the tie correction and a continuity correction of 1/2.
 */
export function mannWhitney(candidate: readonly number[], baseline: readonly number[], scale = 1): RankTest {
  const n1 = candidate.length;
  const n2 = baseline.length;
  if (n1 === 0 || n2 === 0) return { u: 0, z: 0, p: 1 };
  const all: { v: number; c: boolean }[] = [];
  for (const v of candidate) all.push({ v, c: true });
  for (const v of baseline) all.push({ v: v * scale, c: false });
  all.sort((x, y) => x.v - y.v);
  let rankSum = 0;
  let tieTerm = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && (all[j + 1] as { v: number }).v === (all[i] as { v: number }).v) j++;
    const rank = (i + j + 2) / 2;
    const t = j - i + 1;
    tieTerm += t * t * t - t;
    for (let k = i; k <= j; k++) if ((all[k] as { c: boolean }).c) rankSum += rank;
    i = j + 1;
  }
  const u = rankSum - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance <= 0) return { u, z: 0, p: 1 };
  const z = (u - mean - 0.5) / Math.sqrt(variance);
  return { u, z, p: 1 - normalCdf(z) };
}
