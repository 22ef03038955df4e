// Load shedding's concurrency limiter, with a fake clock: slots, a bounded queue, a bounded wait,
// arrival order, and limits changed by a reload.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConcurrencyLimiter } from '../../gateway/admission/limiter.js';
import { FakeClock, flushMicrotasks } from '../helpers/fake-clock.js';

const limiter = (maxInFlight: number, maxQueue: number, queueTimeoutMs: number, clock = new FakeClock()) =>
  new ConcurrencyLimiter({ maxInFlight, maxQueue, queueTimeoutMs }, clock);

describe('ConcurrencyLimiter', () => {
  test('grants up to maxInFlight at once, then queues up to maxQueue, then refuses at once', async () => {
    const l = limiter(2, 2, 100);
    assert.equal(await l.acquire(), undefined);
    assert.equal(await l.acquire(), undefined);
    assert.equal(l.active, 2);
    const w1 = l.acquire();
    const w2 = l.acquire();
    assert.equal(l.waiting, 2);
    assert.equal(await l.acquire(), 'queue_full');
    assert.equal(l.tryAcquire(), false);
    l.release();
    assert.equal(await w1, undefined);
    l.release();
    assert.equal(await w2, undefined);
    assert.equal(l.active, 2);
    assert.equal(l.waiting, 0);
  });

  test('a waiter gives up after queueTimeoutMs and stops counting against the queue', async () => {
    const clock = new FakeClock();
    const l = limiter(1, 1, 50, clock);
    assert.equal(await l.acquire(), undefined);
    const waiter = l.acquire();
    clock.advance(49);
    await flushMicrotasks();
    assert.equal(l.waiting, 1);
    clock.advance(1);
    assert.equal(await waiter, 'queue_timeout');
    assert.equal(l.waiting, 0);
    // The queue has room again, and a release does not hand the slot to the one that left.
    const next = l.acquire();
    l.release();
    assert.equal(await next, undefined);
    assert.equal(l.active, 1);
  });

  test('waiters are served in arrival order', async () => {
    const l = limiter(1, 10, 1000);
    await l.acquire();
    const order: number[] = [];
    const waiters = [0, 1, 2, 3].map((i) => l.acquire().then(() => order.push(i)));
    for (let i = 0; i < 4; i++) {
      l.release();
      await flushMicrotasks();
    }
    await Promise.all(waiters);
    assert.deepEqual(order, [0, 1, 2, 3]);
  });

  test('maxQueue 0 or queueTimeoutMs 0 refuses at once when full', async () => {
    for (const l of [limiter(1, 0, 100), limiter(1, 5, 0)]) {
      await l.acquire();
      assert.equal(await l.acquire(), 'queue_full');
    }
  });

  test('raising the limit by a reload lets waiters in at once; lowering it holds new requests', async () => {
    const l = limiter(1, 5, 1000);
    await l.acquire();
    const waiters = [l.acquire(), l.acquire()];
    l.update({ maxInFlight: 3, maxQueue: 5, queueTimeoutMs: 1000 });
    assert.deepEqual(await Promise.all(waiters), [undefined, undefined]);
    assert.equal(l.active, 3);
    l.update({ maxInFlight: 1, maxQueue: 0, queueTimeoutMs: 1000 });
    l.release();
    assert.equal(l.tryAcquire(), false, '2 in flight over a limit of 1');
    l.release();
    l.release();
    assert.equal(l.tryAcquire(), true);
  });

  test('timed-out waiters never leak: many timeouts, then the queue is empty', async () => {
    const clock = new FakeClock();
    const l = limiter(1, 10_000, 10, clock);
    await l.acquire();
    const waiters = Array.from({ length: 3000 }, () => l.acquire());
    clock.advance(10);
    assert.ok((await Promise.all(waiters)).every((r) => r === 'queue_timeout'));
    assert.equal(l.waiting, 0);
    l.release();
    assert.equal(l.active, 0);
    assert.equal(await l.acquire(), undefined);
  });
});
