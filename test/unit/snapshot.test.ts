// The snapshot owner: one composed snapshot (policy + endpoints + overlay) per generation; state
// carried over while its model or origin stays, released when it leaves; the overlay's weights
// replace the split for the router without touching the compiled policy.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { StaticEndpointSource } from '../../gateway/endpoint-source.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { applyOverlay, EMPTY_OVERLAY } from '../../gateway/overlay.js';
import { type CompiledPolicy, compilePolicy, formatIssue } from '../../gateway/policy/compile.js';
import { route } from '../../gateway/router.js';
import { SnapshotOwner } from '../../gateway/snapshot.js';
import { EndpointRegistry } from '../../gateway/upstream/endpoint.js';
import { FakeClock } from '../helpers/fake-clock.js';

function compile(models: Record<string, string>, split = '{ stable: 90, candidate: 10 }'): CompiledPolicy {
  const lines = [
    'version: 1',
    'defaults: { healthCheck: { intervalMs: 0 } }',
    'backends:',
    '  pool-a: { endpoints: [http://127.0.0.1:8001] }',
    '  pool-b: { endpoints: [http://127.0.0.1:8002] }',
    'models:',
  ];
  for (const [name, backend] of Object.entries(models)) {
    lines.push(
      `  ${name}:`,
      `    variants: { stable: { backend: ${backend}, model: mlp }, candidate: { backend: pool-b, model: mlp } }`,
      `    split: ${split}`,
    );
  }
  const r = compilePolicy(`${lines.join('\n')}\n`);
  if (!r.ok) assert.fail(r.errors.map(formatIssue).join('\n'));
  return r.policy;
}

const registries: EndpointRegistry[] = [];
after(async () => {
  await Promise.all(registries.map((r) => r.close()));
});

function owner(clock = new FakeClock()) {
  const registry = new EndpointRegistry(clock);
  registries.push(registry);
  const metrics = new GatewayMetrics({ processMetrics: false, sample: () => [] });
  const o = new SnapshotOwner({
    clock,
    random: () => 0.5,
    metrics,
    registry,
    endpointSource: new StaticEndpointSource(),
    onShed: () => {},
  });
  return { owner: o, metrics, clock };
}

describe('applyOverlay', () => {
  test('an empty overlay leaves the policy itself for the router', () => {
    const p = compile({ mlp: 'pool-a' });
    assert.equal(applyOverlay(p, EMPTY_OVERLAY), p);
  });

  test("an overlay's weights replace the split of its model only; the compiled policy is untouched", () => {
    const p = compile({ mlp: 'pool-a', other: 'pool-a' });
    const overlay = { weights: new Map([['mlp', new Map([['candidate', 100]])]]) };
    const routing = applyOverlay(p, overlay);
    for (const r of [0, 0.5, 0.999]) {
      const d = route(routing, { model: 'mlp', headers: {} }, () => r);
      assert.ok(d.ok && d.variant.name === 'candidate', `random ${r}`);
    }
    assert.equal(routing.models.get('other'), p.models.get('other'));
    assert.deepEqual(p.models.get('mlp')?.split.bounds, [90, 100]);
    // The variants are the policy's own objects, so per-variant state keyed by them still matches.
    assert.equal(
      routing.models.get('mlp')?.split.variants[0],
      p.models.get('mlp')?.variants.get('candidate'),
    );
  });

  test('weights that are all zero keep the policy split', () => {
    const p = compile({ mlp: 'pool-a' });
    const routing = applyOverlay(p, { weights: new Map([['mlp', new Map([['stable', 0]])]]) });
    assert.deepEqual(routing.models.get('mlp')?.split.bounds, [90, 100]);
  });
});

describe('SnapshotOwner', () => {
  test("a model's limiter and retry budget are carried over a reload, with the slots it holds", () => {
    const { owner: o, clock } = owner();
    const first = o.apply(compile({ mlp: 'pool-a', gone: 'pool-a' }));
    const ctx = {
      id: 'r',
      modelName: 'mlp',
      headers: {},
      keyId: undefined,
      admitted: 0,
      refusedBy: undefined,
    };
    const mlp1 = first.models.get('mlp');
    assert.ok(mlp1 !== undefined);
    // Take the gateway and model slots in the first generation.
    for (const s of mlp1.admission) assert.equal(s.admit(ctx), undefined);
    const second = o.apply(compile({ mlp: 'pool-a', fresh: 'pool-b' }, '{ stable: 50, candidate: 50 }'));
    const mlp2 = second.models.get('mlp');
    assert.ok(mlp2 !== undefined);
    assert.equal(second.generation, first.generation + 1);
    assert.equal(mlp2.budget, mlp1.budget, 'the retry budget is the same object');
    assert.notEqual(mlp2.model, mlp1.model, 'the model itself is the new compile');
    assert.equal(o.held.models, 3, "gone's state is held while older snapshots may still use it");
    clock.advance(10_000);
    assert.equal(o.held.models, 2, 'and released after their grace');
    // The endpoint of an origin that stays is the same object (connections, breaker, health).
    assert.equal(second.endpoints.get('pool-a')?.[0], first.endpoints.get('pool-a')?.[0]);
    // The slots taken in the first generation are released through the second's stages too.
    for (const s of [...mlp1.admission].reverse()) s.release(ctx);
  });

  test('the series of a model that left go once the grace of older snapshots has passed', async () => {
    const { owner: o, metrics, clock } = owner();
    const first = o.apply(compile({ mlp: 'pool-a', gone: 'pool-a' }));
    const gone = first.models.get('gone');
    const v = gone?.variants.values().next().value;
    v?.series.request(200, 0.001);
    const text = () => metrics.registry.metrics();
    assert.match(await text(), /model="gone"/);
    o.apply(compile({ mlp: 'pool-a' }));
    assert.match(await text(), /model="gone"/, 'kept while older snapshots may still answer');
    assert.equal(o.held.leaving, 1);
    clock.advance(10_000);
    assert.doesNotMatch(await text(), /model="gone"/);
    assert.equal(o.held.leaving, 0);
  });

  test('a model that comes back within the grace keeps its series and its state', async () => {
    const { owner: o, metrics, clock } = owner();
    const first = o.apply(compile({ mlp: 'pool-a', back: 'pool-a' }));
    first.models.get('back')?.variants.values().next().value?.series.request(200, 0.001);
    o.apply(compile({ mlp: 'pool-a' }));
    const again = o.apply(compile({ mlp: 'pool-a', back: 'pool-a' }));
    clock.advance(10_000);
    assert.match(await metrics.registry.metrics(), /model="back"/);
    assert.equal(o.held.leaving, 0);
    assert.equal(again.models.get('back')?.budget, first.models.get('back')?.budget, 'the same retry budget');
  });

  test('setOverlay composes a new generation with the same policy and the new weights', () => {
    const { owner: o } = owner();
    const first = o.apply(compile({ mlp: 'pool-a' }));
    const next = o.setOverlay({ weights: new Map([['mlp', new Map([['candidate', 1]])]]) });
    assert.equal(next.policy, first.policy);
    assert.equal(next.generation, first.generation + 1);
    assert.deepEqual(next.routing.models.get('mlp')?.split.bounds, [100]);
    assert.equal(o.current, next);
  });
});
