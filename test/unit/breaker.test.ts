// The breaker counts a request's two calls (admit, success) into opossum's rolling window directly,
// as opossum's own listeners of `fire` and `success` do, instead of emitting the events. These
// tests hold that shortcut to opossum: the counts are those the events would give, and opossum
// still has no other listener of those events (an upgrade that adds one fails here).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type CircuitBreaker from 'opossum';
import { DEFAULT_CIRCUIT_BREAKER } from '../../gateway/policy/compile.js';
import { Breaker } from '../../gateway/upstream/breaker.js';

const made: Breaker[] = [];
function breaker(): { b: Breaker; cb: () => CircuitBreaker } {
  const b = new Breaker(DEFAULT_CIRCUIT_BREAKER, () => {});
  made.push(b);
  return { b, cb: () => (b as unknown as { cb: CircuitBreaker }).cb };
}

describe('Breaker: counting without events', () => {
  test('opossum listens to fire and success only for what the breaker does itself', () => {
    const { b, cb } = breaker();
    assert.equal(cb().listenerCount('fire'), 1, 'the count');
    assert.equal(cb().listenerCount('success'), 2, 'the count, and closing a half-open breaker');
    b.shutdown();
  });

  test('admitted calls and successes land in the rolling window as the events would put them', () => {
    const { b, cb } = breaker();
    const viaEvents = breaker();
    for (let i = 0; i < 3; i++) {
      assert.equal(b.admit(), true);
      viaEvents.cb().emit('fire');
    }
    b.success();
    b.success();
    viaEvents.cb().emit('success');
    viaEvents.cb().emit('success');
    b.failure();
    viaEvents.cb().emit('failure');
    const { fires, successes, failures } = cb().stats;
    const want = viaEvents.cb().stats;
    assert.deepEqual({ fires, successes, failures }, { fires: 3, successes: 2, failures: 1 });
    assert.deepEqual(
      { fires, successes, failures },
      { fires: want.fires, successes: want.successes, failures: want.failures },
    );
    assert.deepEqual(cb().status.window, viaEvents.cb().status.window, 'every bucket, latencies too');
    assert.deepEqual(b.recent, { requests: 3, failures: 1 });
  });

  test('a policy change that makes a new opossum breaker counts into the new one', () => {
    const { b, cb } = breaker();
    b.update({ ...DEFAULT_CIRCUIT_BREAKER, volumeThreshold: DEFAULT_CIRCUIT_BREAKER.volumeThreshold + 1 });
    assert.equal(b.admit(), true);
    b.success();
    assert.equal(cb().stats.fires, 1);
    assert.equal(cb().stats.successes, 1);
  });
});

process.on('exit', () => {
  for (const b of made) b.shutdown();
});
