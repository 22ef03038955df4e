// The batch-share stage: requests marked `x-infergate-priority: batch` hold at most their share of
// the model's slots and never queue (refused with 429 GW_ERR_BATCH_SHED while online requests
// wait); online requests pass untouched; a policy's `batch.maxShare` reaches the compiled model.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { batchShareStage, batchSlots } from '../../gateway/admission/batch-share.js';
import { concurrencyStage } from '../../gateway/admission/concurrency.js';
import { ConcurrencyLimiter } from '../../gateway/admission/limiter.js';
import { type AdmissionFacts, admit, release } from '../../gateway/admission/stage.js';
import { compilePolicy } from '../../gateway/policy/compile.js';
import { FakeClock } from '../helpers/fake-clock.js';

function facts(batch: boolean): AdmissionFacts {
  return {
    id: 'r',
    modelName: 'm',
    headers: batch ? { 'x-infergate-priority': 'batch' } : {},
    keyId: undefined,
    admitted: 0,
    refusedBy: undefined,
  };
}

function setup(maxInFlight: number, maxShare: number) {
  const clock = new FakeClock();
  const model = new ConcurrencyLimiter({ maxInFlight, maxQueue: 16, queueTimeoutMs: 1000 }, clock);
  const gateway = new ConcurrencyLimiter({ maxInFlight: 1000, maxQueue: 16, queueTimeoutMs: 1000 }, clock);
  const count = { inFlight: 0 };
  const shed: string[] = [];
  const stages = [
    batchShareStage({
      model: 'm',
      maxShare,
      count,
      modelLimiter: model,
      gatewayLimiter: gateway,
      onShed: (m) => shed.push(m),
    }),
    concurrencyStage('gateway', gateway, () => {}),
    concurrencyStage('model', model, () => {}),
  ];
  return { model, gateway, count, shed, stages };
}

describe('batch-share stage', () => {
  test('batchSlots: the share of the limit, at least one unless the share is 0', () => {
    assert.equal(batchSlots(0.5, 8), 4);
    assert.equal(batchSlots(0.5, 1), 1);
    assert.equal(batchSlots(0.01, 10), 1);
    assert.equal(batchSlots(0, 100), 0);
    assert.equal(batchSlots(1, 7), 7);
  });

  test('batch requests hold at most their share; the next is refused with 429 and Retry-After', () => {
    const s = setup(4, 0.5);
    const held = [facts(true), facts(true)];
    for (const f of held) assert.equal(admit(s.stages, f), undefined);
    assert.equal(s.count.inFlight, 2);
    const third = facts(true);
    const v = admit(s.stages, third);
    assert.ok(v !== undefined && !(v instanceof Promise));
    assert.equal(v.error.code, 'GW_ERR_BATCH_SHED');
    assert.equal(v.error.statusCode, 429);
    assert.equal(v.error.retryAfterSeconds, 1);
    assert.equal(third.refusedBy, 'batch-share');
    assert.deepEqual(s.shed, ['m']);
    // Online requests still get the other half.
    const online = [facts(false), facts(false)];
    for (const f of online) assert.equal(admit(s.stages, f), undefined);
    assert.equal(s.model.active, 4);
    // A batch slot given back is taken again.
    release(s.stages, held[0] as AdmissionFacts);
    assert.equal(s.count.inFlight, 1);
    assert.equal(admit(s.stages, facts(true)), undefined);
  });

  test('a batch request never queues: refused while the model is full or online requests wait', async () => {
    const s = setup(2, 1);
    const a = facts(false);
    const b = facts(false);
    assert.equal(admit(s.stages, a), undefined);
    assert.equal(admit(s.stages, b), undefined);
    const batchWhileFull = admit(s.stages, facts(true));
    assert.ok(batchWhileFull !== undefined && !(batchWhileFull instanceof Promise));
    assert.equal(batchWhileFull.error.code, 'GW_ERR_BATCH_SHED');
    // An online request waits for a slot (a promise), a batch one is still refused at once.
    const waiting = facts(false);
    const queued = admit(s.stages, waiting);
    assert.ok(queued instanceof Promise);
    release(s.stages, a);
    assert.equal(await queued, undefined, 'the waiting online request got the slot');
    const batchAfter = admit(s.stages, facts(true));
    assert.ok(batchAfter !== undefined && !(batchAfter instanceof Promise));
    assert.equal(s.shed.length, 2);
    release(s.stages, b);
    release(s.stages, waiting);
    assert.equal(s.model.active, 0);
    assert.equal(s.count.inFlight, 0);
  });

  test('online requests are not counted and their release leaves the batch count alone', () => {
    const s = setup(2, 0.5);
    const f = facts(false);
    assert.equal(admit(s.stages, f), undefined);
    assert.equal(f.batch, undefined);
    release(s.stages, f);
    release(s.stages, f);
    assert.equal(s.count.inFlight, 0);
  });

  test('maxShare 0: every batch request is refused', () => {
    const s = setup(8, 0);
    const v = admit(s.stages, facts(true));
    assert.ok(v !== undefined && !(v instanceof Promise));
    assert.equal(v.error.code, 'GW_ERR_BATCH_SHED');
  });

  test('policy: a model inherits the top-level batch.maxShare, its own wins, 0.5 by default', () => {
    const policy = (top: string, own: string) =>
      [
        'version: 1',
        top,
        'backends: { p: { endpoints: [http://127.0.0.1:1] } }',
        'models:',
        '  a: { variants: { v: { backend: p, model: mlp } } }',
        `  b: { variants: { v: { backend: p, model: mlp } }${own} }`,
      ].join('\n');
    const shares = (text: string) => {
      const r = compilePolicy(text);
      assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
      return [...r.policy.models.values()].map((m) => m.batchShare);
    };
    assert.deepEqual(shares(policy('', '')), [0.5, 0.5]);
    assert.deepEqual(shares(policy('batch: { maxShare: 0.2 }', '')), [0.2, 0.2]);
    assert.deepEqual(shares(policy('batch: { maxShare: 0.2 }', ', batch: { maxShare: 0.9 }')), [0.2, 0.9]);
  });
});
