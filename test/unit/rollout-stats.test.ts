// The statistics of rollouts against known values and a hand-computed Mann–Whitney case.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  errorRateTest,
  mannWhitney,
  normalCdf,
  normalQuantile,
  wilson,
} from '../../gateway/rollout/stats.js';

const close = (actual: number, expected: number, tol: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} is not within ${tol} of ${expected}`);

describe('normal distribution', () => {
  it('has the textbook values', () => {
    close(normalCdf(0), 0.5, 1e-7, 'Φ(0)');
    close(normalCdf(1.959963984540054), 0.975, 1e-6, 'Φ(1.96)');
    close(normalCdf(-1.6448536269514722), 0.05, 1e-6, 'Φ(-1.645)');
    close(normalQuantile(0.975), 1.959963984540054, 1e-6, 'z(0.975)');
    close(normalQuantile(0.95), 1.6448536269514722, 1e-6, 'z(0.95)');
    close(normalQuantile(0.001), -3.090232306167813, 1e-6, 'z(0.001)');
    assert.throws(() => normalQuantile(1), RangeError);
  });
});

describe('wilson', () => {
  it('matches published 95% intervals', () => {
    const a = wilson(8, 10);
    close(a.low, 0.4902, 1e-4, '8/10 low');
    close(a.high, 0.9433, 1e-4, '8/10 high');
    const b = wilson(0, 10);
    assert.equal(b.low, 0);
    close(b.high, 0.2775, 1e-4, '0/10 high');
    const c = wilson(10, 10);
    close(c.low, 0.7225, 1e-4, '10/10 low');
    close(c.high, 1, 1e-12, '10/10 high');
    const d = wilson(50, 100);
    close(d.low, 0.4038, 1e-4, '50/100 low');
    close(d.high, 0.5962, 1e-4, '50/100 high');
  });
  it('is [0, 1] with no samples', () => assert.deepEqual(wilson(0, 0), { low: 0, high: 1 }));
});

describe('errorRateTest', () => {
  it('computes the margin-shifted Wald statistic', () => {
    // 20/200 against 10/200, margin 0.01: (0.1 - 0.05 - 0.01) / sqrt(0.09/200 + 0.0475/200).
    const r = errorRateTest(20, 200, 10, 200, 0.01);
    close(r.z, 0.04 / Math.sqrt((0.09 + 0.0475) / 200), 1e-9, 'z');
    close(r.p, 1 - normalCdf(r.z), 1e-12, 'p');
  });
  it('judges a difference without variance as it is', () => {
    assert.equal(errorRateTest(0, 100, 0, 100, 0.01).p, 1);
    assert.equal(errorRateTest(100, 100, 0, 100, 0.01).p, 0);
  });
  it('finds nothing in equal rates', () => assert.ok(errorRateTest(5, 100, 5, 100, 0).p > 0.49));
  it('finds 5% errors against none at 400 samples', () =>
    assert.ok(errorRateTest(20, 400, 0, 400, 0.01).p < 0.001));
});

describe('mannWhitney', () => {
  it('matches a hand-computed case', () => {
    // Ranks of 1 2 3 4 5 6: candidate 3 4 5 sum 12, U = 12 - 3*4/2 = 6 (pairs where it is larger).
    // Mean 4.5, variance 3*3/12 * 7 = 5.25, z = (6 - 4.5 - 0.5) / sqrt(5.25).
    const r = mannWhitney([3, 4, 5], [1, 2, 6]);
    assert.equal(r.u, 6);
    close(r.z, 1 / Math.sqrt(5.25), 1e-12, 'z');
    close(r.p, 0.33127, 1e-4, 'p');
  });
  it('counts ties as a half and corrects the variance', () => {
    // Pairs: 2>1, 2=2 (1/2), 2<3; 3>1, 3>2, 3=3 (1/2): U = 4. Ties: two pairs of two (t^3 - t = 6 each).
    const r = mannWhitney([2, 3], [1, 2, 3]);
    assert.equal(r.u, 4);
    const variance = ((2 * 3) / 12) * (6 - 12 / 20);
    close(r.z, (4 - 3 - 0.5) / Math.sqrt(variance), 1e-12, 'z');
  });
  it('applies the scale to the baseline', () => {
    // Baseline times 2 is 2 4 12: candidate 3 4 5 beats 2, ties 4, beats 4 (5>4): U = 1 + 1.5 + 2 = 4.5.
    assert.equal(mannWhitney([3, 4, 5], [1, 2, 6], 2).u, 4.5);
  });
  it('is p = 1 when a side is empty or every value ties', () => {
    assert.equal(mannWhitney([], [1]).p, 1);
    assert.equal(mannWhitney([1, 1], [1, 1]).p, 1);
  });
});
