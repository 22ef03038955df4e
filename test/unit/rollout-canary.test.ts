// The canary controller on a fake clock: steps, the horizon, holds, rollbacks on errors and on
// latency, promotion, and the operator's commands.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/logging.js';
import { compilePolicy } from '../../gateway/policy/compile.js';
import type { CompiledCanary } from '../../gateway/policy/compiled.js';
import { CanaryController } from '../../gateway/rollout/canary.js';
import { alphaOf } from '../../gateway/rollout/judge.js';
import { RolloutMetrics } from '../../gateway/rollout/metrics.js';
import { FakeClock } from '../helpers/fake-clock.js';

function canaryConfig(canary: string): CompiledCanary {
  const r = compilePolicy(`version: 1
backends: { a: { endpoints: [http://127.0.0.1:1] } }
models:
  m:
    variants: { stable: { backend: a, model: mlp }, candidate: { backend: a, model: mlp } }
    split: { stable: 1 }
    canary: ${canary}
`);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.policy.models.get('m')?.canary as CompiledCanary;
}

const BASE =
  '{ variant: candidate, baseline: stable, steps: [10, 50, 100], stepSeconds: 60, minSamples: 200, maxErrorRateIncrease: 0.01, maxLatencyIncreasePercent: 20 }';

function controller(canary = BASE) {
  const clock = new FakeClock();
  let seed = 1;
  const random = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  const metrics = new RolloutMetrics(new Registry(), { shadow: () => [], canary: () => [] });
  const weights: number[] = [];
  const c: CanaryController = new CanaryController('m', canaryConfig(canary), {
    clock,
    random,
    logger: silentLogger(),
    metrics,
    changed: () => weights.push(c.weight),
  });
  /** n answers of a variant: an error every `errorEvery`, latencies around `seconds`. */
  const feed = (variant: string, n: number, seconds: number, errorEvery = 0) => {
    for (let i = 1; i <= n; i++) {
      c.record(variant, errorEvery > 0 && i % errorEvery === 0 ? 502 : 200, seconds * (0.8 + 0.4 * random()));
    }
  };
  return { c, clock, weights, feed, metrics };
}

describe('canary controller', () => {
  test('a healthy canary goes through every step and is promoted', () => {
    const { c, clock, weights, feed } = controller();
    assert.equal(c.weight, 10);
    for (const expected of [50, 100]) {
      feed('candidate', 200, 0.01);
      feed('stable', 200, 0.01);
      clock.advance(60_000);
      assert.equal(c.weight, expected);
    }
    assert.equal(c.state, 'promoted');
    assert.deepEqual(weights, [50, 100]);
    assert.deepEqual(
      c.history.map((e) => [e.event, e.weight]),
      [
        ['started', 10],
        ['advanced', 50],
        ['promoted', 100],
      ],
    );
    assert.deepEqual(
      [...c.weights()],
      [
        ['candidate', 100],
        ['stable', 0],
      ],
    );
  });

  test('5% errors against none are rolled back within the first step', async () => {
    const { c, clock, weights, feed, metrics } = controller();
    feed('candidate', 400, 0.01, 20);
    feed('stable', 400, 0.01);
    clock.advance(60_000);
    assert.equal(c.state, 'rolled_back');
    assert.equal(c.step, 0);
    assert.equal(c.weight, 0);
    assert.deepEqual(weights, [0]);
    assert.match(c.reason ?? '', /error rate 5\.00% against the baseline's 0\.00%/);
    const m = await metrics.canaryRollbacks.get();
    assert.deepEqual(
      m.values.map((v) => [v.labels.reason, v.value]),
      [['error_rate', 1]],
    );
  });

  test('twice as slow is rolled back on latency', () => {
    const { c, clock, feed } = controller();
    feed('candidate', 200, 0.02);
    feed('stable', 200, 0.01);
    clock.advance(60_000);
    assert.equal(c.state, 'rolled_back');
    assert.match(c.reason ?? '', /latency is more than 20% above the baseline's \(median ratio [12]\.\d\d/);
  });

  test('a starved canary holds: never promoted, never judged on too few samples', () => {
    const { c, clock, weights, feed } = controller();
    feed('candidate', 199, 0.01);
    feed('stable', 5000, 0.01);
    clock.advance(3600_000);
    assert.equal(c.state, 'progressing');
    assert.equal(c.weight, 10);
    assert.deepEqual(weights, []);
    assert.match(JSON.stringify(c.view().lastJudgement), /samples: canary 199, baseline 5000 of 200 each/);
    // The 200th answer: judged at the next check, once.
    feed('candidate', 1, 0.01);
    clock.advance(1000);
    assert.equal(c.weight, 50);
  });

  test('the step lasts stepSeconds even with samples to spare', () => {
    const { c, clock, feed } = controller();
    feed('candidate', 1000, 0.01);
    feed('stable', 1000, 0.01);
    clock.advance(59_000);
    assert.equal(c.weight, 10);
    assert.match(JSON.stringify(c.view().lastJudgement), /step time/);
    clock.advance(1000);
    assert.equal(c.weight, 50);
    assert.equal(c.view().samples.canary.requests, 0, 'a new step starts with new samples');
  });

  test('alpha is split over every test of the rollout', () => {
    assert.ok(Math.abs(alphaOf(canaryConfig(BASE)) - 0.05 / 4) < 1e-15);
  });

  test('pause holds the weight, resume starts the step over, abort and promote end it', () => {
    const { c, clock, feed, weights } = controller();
    assert.equal(c.command('pause'), undefined);
    assert.match(c.command('pause') ?? '', /paused already/);
    feed('candidate', 500, 0.01);
    feed('stable', 500, 0.01);
    clock.advance(120_000);
    assert.equal(c.weight, 10, 'a paused rollout is not judged');
    assert.equal(c.view().samples.canary.requests, 0, 'nor does it collect');
    assert.equal(c.command('resume'), undefined);
    assert.match(c.command('resume') ?? '', /not paused/);
    assert.equal(c.command('abort'), undefined);
    assert.equal(c.state, 'aborted');
    assert.equal(c.weight, 0);
    assert.match(c.command('promote') ?? '', /has ended \(aborted\)/);
    assert.deepEqual(weights, [0]);
    const p = controller();
    assert.equal(p.c.command('promote'), undefined);
    assert.equal(p.c.weight, 100);
    p.c.close();
    c.close();
  });
});
