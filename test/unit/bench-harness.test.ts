// The pure pieces of the benchmark harness that decide its figures: the turn order of targets
// (fair to every pair), order statistics, per-run ratios, and the options bench:gateway accepts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, percentile, turnOrder } from '../../load/common.js';
import { countsFor, parseOptions } from '../../load/gateway/options.js';
import { type Figure, type RunResult, Runs, withSpread } from '../../load/gateway/runs.js';

test('turnOrder: over an even number of slices every pair of targets goes first equally often', () => {
  const targets = ['direct', 'gateway', 'baseline', 'nginx', 'relay'];
  for (const slices of [2, 4, 10]) {
    const first = new Map<string, number>();
    for (let s = 0; s < slices; s++) {
      const order = turnOrder(targets, s);
      assert.deepEqual([...order].sort(), [...targets].sort(), 'each target once a slice');
      for (let i = 0; i < order.length; i++) {
        for (let j = i + 1; j < order.length; j++) {
          const key = `${order[i]}<${order[j]}`;
          first.set(key, (first.get(key) ?? 0) + 1);
        }
      }
    }
    for (const a of targets) {
      for (const b of targets) {
        if (a < b)
          assert.equal(
            first.get(`${a}<${b}`) ?? 0,
            first.get(`${b}<${a}`) ?? 0,
            `${a}/${b}, ${slices} slices`,
          );
      }
    }
  }
});

test('turnOrder: the first place rotates from one pair of slices to the next', () => {
  const firsts = Array.from({ length: 6 }, (_, s) => turnOrder(['a', 'b', 'c'], s)[0]);
  assert.deepEqual(firsts, ['a', 'c', 'b', 'a', 'c', 'b']);
  assert.deepEqual(turnOrder([], 3), []);
});

test('percentile is nearest-rank; median skips what was not measured', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.equal(median([3, Number.NaN, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([Number.NaN])));
});

test('Runs: ratios and differences are taken within each run, then the median', () => {
  const run = (g: number, b: number): RunResult => ({
    latency: {},
    saturation: {},
    cpu: {
      gateway: { requests: 1, rps: 1, failed: 0, proxyCpuUsPerRequest: g, backendCpuUsPerRequest: 0 },
      baseline: { requests: 1, rps: 1, failed: 0, proxyCpuUsPerRequest: b, backendCpuUsPerRequest: 0 },
    },
    moderate: {},
  });
  // Run 2 is twice as slow on both sides: per-run ratios stay 1.0, 1.1, 0.9.
  const runs = new Runs([run(10, 10), run(22, 20), run(9, 10)], ['gateway', 'baseline']);
  const cpu: Figure = (r, n) => r.cpu[n]?.proxyCpuUsPerRequest;
  assert.deepEqual(runs.ratios('gateway', 'baseline', cpu), [1, 1.1, 0.9]);
  assert.equal(runs.ratio('gateway', 'baseline', cpu), 1);
  assert.equal(runs.ratio('gateway', 'relay', cpu), undefined, 'relay not measured');
  assert.equal(withSpread([1, 1.1, 0.9]), '1.00 (0.90-1.10)');
});

test('parseOptions: --baseline adds the baseline target; bad values are refused with the flag named', () => {
  const o = parseOptions(['--baseline', 'HEAD', '--only', 'moderate', '--runs', '5']);
  assert.deepEqual(o.targets, ['direct', 'gateway', 'baseline', 'nginx', 'relay']);
  assert.deepEqual(o.phases, ['moderate']);
  assert.equal(o.runs, 5);
  assert.equal(o.upstreamDelayMs, 5);
  assert.deepEqual(parseOptions([]).phases, ['light', 'saturation', 'cpu', 'moderate']);
  assert.throws(() => parseOptions(['--only', 'fast']), /--only: unknown 'fast'/);
  assert.throws(() => parseOptions(['--targets', 'direct,baseline']), /needs --baseline REF/);
  assert.throws(() => parseOptions(['--baseline', 'HEAD', '--compiled']), /drop --compiled/);
  assert.throws(() => parseOptions(['--runs', '0']), /--runs/);
  assert.throws(() => parseOptions(['--upstream-delay-ms', '-1']), /--upstream-delay-ms/);
  assert.equal(parseOptions([]).security, 'off');
  assert.equal(parseOptions(['--security', 'redis']).security, 'redis');
  assert.throws(
    () => parseOptions(['--security', 'jwt']),
    /--security takes off, auth, keys or redis, not 'jwt'/,
  );
  assert.equal(countsFor({ quick: false, rate: 200 }).slices % 2, 0, 'slices come in pairs');
  assert.equal(countsFor({ quick: true, rate: 200 }).slices % 2, 0, 'slices come in pairs');
});
