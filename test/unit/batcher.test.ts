import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Batcher, type BatcherOptions, ItemError, QueueFullError } from '../../backend/batcher.js';
import { FakeClock, flushMicrotasks } from '../helpers/fake-clock.js';

// ---------------------------------------------------------------------------------------------
// Harness: a `run` whose batches the test resolves or rejects by hand, and a record of every
// event in the order it happened.

interface Call {
  readonly payloads: readonly string[];
  readonly startedAt: number;
  resolve(results: (string | ItemError)[]): void;
  reject(e: unknown): void;
}

interface Settled {
  status: 'pending' | 'fulfilled' | 'rejected';
  value?: string;
  error?: unknown;
}

function track(p: Promise<string>): Settled {
  const s: Settled = { status: 'pending' };
  p.then(
    (v) => {
      s.status = 'fulfilled';
      s.value = v;
    },
    (e: unknown) => {
      s.status = 'rejected';
      s.error = e;
    },
  );
  return s;
}

function harness(opts: Partial<BatcherOptions<string, string>> = {}) {
  const clock = new FakeClock(1000);
  const calls: Call[] = [];
  const events: string[] = [];
  const onBatchCalls: { rows: number; waits: number[]; at: number }[] = [];
  const batcher = new Batcher<string, string>({
    maxBatchSize: 4,
    maxQueueDelayMs: 10,
    maxQueueSize: 100,
    clock,
    run: (payloads) =>
      new Promise<(string | ItemError)[]>((resolve, reject) => {
        events.push(`run ${payloads.join(',')}`);
        calls.push({ payloads: [...payloads], startedAt: clock.now(), resolve, reject });
      }),
    onBatch: (rows, waits) => {
      events.push(`onBatch ${rows}`);
      onBatchCalls.push({ rows, waits: [...waits], at: clock.now() });
    },
    ...opts,
  });
  /** Submits `payload` with `rows` rows under `key` and tracks how its promise settles. */
  const submit = (payload: string, rows = 1, key = 'k') => track(batcher.submit(payload, rows, key));
  /** Resolves call `i` by answering `r:<payload>` for each of its payloads, then lets the batcher react. */
  const finish = async (i: number) => {
    const call = calls[i];
    assert.ok(call, `batch ${i} never ran`);
    call.resolve(call.payloads.map((p) => `r:${p}`));
    await flushMicrotasks();
  };
  return { clock, calls, events, onBatchCalls, batcher, submit, finish };
}

const payloadsOf = (calls: readonly Call[]) => calls.map((c) => c.payloads.join(','));

// ---------------------------------------------------------------------------------------------

describe('Batcher: merging and the queue delay', () => {
  test('requests merge into one batch up to maxBatchSize, which then runs at once', async () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10 });
    const a = h.submit('a');
    h.submit('b');
    h.submit('c');
    assert.equal(h.calls.length, 0, 'three of four rows: still waiting');
    h.submit('d');
    assert.equal(h.calls.length, 1, 'four rows fill the batch: it runs without waiting');
    assert.deepEqual(h.calls[0]!.payloads, ['a', 'b', 'c', 'd']);
    assert.equal(h.calls[0]!.startedAt, 1000, 'no time passed');
    assert.equal(h.clock.pendingTimers, 0, 'the delay timer is cancelled once the batch is full');
    await h.finish(0);
    assert.equal(a.status, 'fulfilled');
  });

  test('never more than maxBatchSize rows in a batch; the rest forms the next batch', async () => {
    const h = harness({ maxBatchSize: 3, maxQueueDelayMs: 10 });
    for (const p of ['a', 'b', 'c', 'd', 'e']) h.submit(p);
    assert.deepEqual(payloadsOf(h.calls), ['a,b,c']);
    assert.equal(h.batcher.depth, 2);
    await h.finish(0);
    // d waited 0 ms when a,b,c finished; it must still wait for company up to the delay.
    assert.equal(h.calls.length, 1);
    h.clock.advance(10);
    assert.deepEqual(payloadsOf(h.calls), ['a,b,c', 'd,e']);
  });

  test('the oldest request waits at most maxQueueDelayMs: nothing before, its batch at the delay', () => {
    const h = harness({ maxBatchSize: 8, maxQueueDelayMs: 10 });
    h.submit('a');
    h.clock.advance(4);
    h.submit('b');
    h.clock.advance(5);
    assert.equal(h.calls.length, 0, 'at 9 ms nothing has run');
    h.clock.advance(1);
    assert.equal(h.calls.length, 1, 'at 10 ms the batch runs');
    assert.deepEqual(h.calls[0]!.payloads, ['a', 'b']);
    assert.equal(h.calls[0]!.startedAt, 1010);
    assert.deepEqual(h.onBatchCalls[0]!.waits, [10, 6]);
  });

  test('the delay counts from the oldest request, not from the newest', () => {
    const h = harness({ maxBatchSize: 100, maxQueueDelayMs: 10 });
    h.submit('a');
    for (let t = 1; t <= 9; t++) {
      h.clock.advance(1);
      h.submit(`n${t}`);
    }
    assert.equal(h.calls.length, 0);
    h.clock.advance(1);
    assert.equal(h.calls.length, 1, 'a steady trickle must not postpone the batch past the oldest delay');
    assert.equal(h.calls[0]!.startedAt, 1010);
  });

  test('only one delay timer is armed however many requests wait', () => {
    const h = harness({ maxBatchSize: 100, maxQueueDelayMs: 10 });
    for (let i = 0; i < 20; i++) h.submit(`p${i}`);
    assert.equal(h.clock.pendingTimers, 1);
    assert.deepEqual(h.clock.requestedDelays, [10]);
  });

  test('a stale timer does not run an extra batch after a full batch already ran', async () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 10 });
    h.submit('a');
    h.submit('b');
    await h.finish(0);
    h.clock.advance(50);
    await flushMicrotasks();
    assert.equal(h.calls.length, 1);
    assert.equal(h.batcher.busy, false);
  });

  test('maxQueueDelayMs 0: a request runs at once; requests arriving meanwhile merge', async () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 0 });
    h.submit('a');
    assert.deepEqual(payloadsOf(h.calls), ['a']);
    h.submit('b');
    h.submit('c');
    assert.equal(h.calls.length, 1, 'b and c wait while a runs');
    await h.finish(0);
    assert.deepEqual(payloadsOf(h.calls), ['a', 'b,c']);
    assert.equal(h.clock.requestedDelays.length, 0, 'no timer is ever needed');
  });

  test('rows count, not requests: 2 + 2 rows fill a batch of 4', () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10 });
    h.submit('a', 2);
    assert.equal(h.calls.length, 0);
    h.submit('b', 2);
    assert.deepEqual(payloadsOf(h.calls), ['a,b']);
    assert.equal(h.onBatchCalls[0]!.rows, 4);
  });

  test('a request that does not fit stays for the next batch, in order', async () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10 });
    h.submit('a', 3);
    h.submit('b', 2);
    h.submit('c', 1);
    h.clock.advance(10);
    // FIFO: c must not jump ahead of b, so the first batch is a alone.
    assert.deepEqual(payloadsOf(h.calls), ['a']);
    await h.finish(0);
    assert.deepEqual(payloadsOf(h.calls), ['a', 'b,c'], 'b and c waited the delay already: no new wait');
  });

  test('a batch that can no longer grow runs at once instead of waiting for the delay', {}, () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10 });
    h.submit('a', 3);
    h.submit('b', 2);
    // a's batch is closed: b cannot join (3 + 2 > 4) and nothing may overtake b.
    assert.deepEqual(payloadsOf(h.calls), ['a']);
  });

  test('a request with more rows than maxBatchSize still runs (alone), not stuck forever', async () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10 });
    const big = h.submit('big', 9);
    h.submit('x', 1);
    h.clock.advance(10);
    assert.deepEqual(payloadsOf(h.calls), ['big']);
    await h.finish(0);
    assert.equal(big.status, 'fulfilled');
  });
});

describe('Batcher: keys, order and results', () => {
  test('items with different keys never share a batch', async () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10 });
    const keyOf: Record<string, string> = { a: 'k1', b: 'k2', c: 'k1', d: 'k2', e: 'k3', f: 'k1' };
    for (const [p, k] of Object.entries(keyOf)) h.submit(p, 1, k);
    h.clock.advance(10);
    for (let i = 0; i < 10 && h.calls.length > i; i++) await h.finish(i);
    assert.deepEqual(payloadsOf(h.calls), ['a,c,f', 'b,d', 'e']);
    for (const call of h.calls) {
      const keys = new Set(call.payloads.map((p) => keyOf[p]));
      assert.equal(keys.size, 1, `batch ${call.payloads.join(',')} mixes keys`);
    }
  });

  test('a full batch for the oldest key runs at once even with other keys in between', () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 10 });
    h.submit('a', 1, 'k1');
    h.submit('x', 1, 'k2');
    h.submit('b', 1, 'k1');
    assert.deepEqual(payloadsOf(h.calls), ['a,b']);
    assert.equal(h.batcher.depth, 1);
  });

  test('batches follow the age of their oldest request; the next key starts from its own wait', async () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10 });
    h.submit('a', 1, 'k1');
    h.clock.advance(6);
    h.submit('b', 1, 'k2');
    h.clock.advance(4);
    assert.deepEqual(payloadsOf(h.calls), ['a']);
    await h.finish(0);
    assert.equal(h.calls.length, 1, 'b has waited 4 of its 10 ms');
    h.clock.advance(5);
    assert.equal(h.calls.length, 1);
    h.clock.advance(1);
    assert.deepEqual(payloadsOf(h.calls), ['a', 'b']);
    assert.equal(h.calls[1]!.startedAt, 1016);
  });

  test('FIFO: payloads keep submission order within and across batches', async () => {
    const h = harness({ maxBatchSize: 3, maxQueueDelayMs: 0 });
    const names = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'];
    for (const n of names) h.submit(n);
    for (let i = 0; i < 10 && h.calls.length > i; i++) await h.finish(i);
    assert.deepEqual(
      h.calls.flatMap((c) => c.payloads),
      names,
    );
    assert.deepEqual(payloadsOf(h.calls), ['p0', 'p1,p2,p3', 'p4,p5,p6', 'p7']);
  });

  test('each caller gets the result at its own position', async () => {
    const h = harness({ maxBatchSize: 3, maxQueueDelayMs: 10 });
    const a = h.submit('a');
    const b = h.submit('b');
    const c = h.submit('c');
    h.calls[0]!.resolve(['A', 'B', 'C']);
    await flushMicrotasks();
    assert.deepEqual(
      [a, b, c].map((s) => s.value),
      ['A', 'B', 'C'],
    );
  });

  test('an ItemError in the results fails only its own item; the others get their results', async () => {
    const h = harness({ maxBatchSize: 3, maxQueueDelayMs: 10 });
    const [a, b, c] = ['a', 'b', 'c'].map((p) => h.submit(p));
    const refused = new Error('b alone was refused');
    h.calls[0]!.resolve(['A', new ItemError(refused), 'C']);
    await flushMicrotasks();
    assert.deepEqual([a!.status, a!.value], ['fulfilled', 'A']);
    assert.deepEqual([b!.status, b!.error], ['rejected', refused]);
    assert.deepEqual([c!.status, c!.value], ['fulfilled', 'C']);
  });

  test('results of two batches are not mixed up', async () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 10 });
    const s = ['a', 'b', 'c', 'd'].map((p) => h.submit(p));
    assert.equal(h.calls.length, 1);
    h.calls[0]!.resolve(['first-a', 'first-b']);
    await flushMicrotasks();
    h.calls[1]!.resolve(['second-c', 'second-d']);
    await flushMicrotasks();
    assert.deepEqual(
      s.map((x) => x.value),
      ['first-a', 'first-b', 'second-c', 'second-d'],
    );
  });
});

describe('Batcher: one batch at a time', () => {
  test('a second full batch starts only after the first resolves', async () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 10 });
    for (const p of ['a', 'b', 'c', 'd']) h.submit(p);
    assert.equal(h.calls.length, 1);
    h.clock.advance(1000);
    await flushMicrotasks();
    assert.equal(h.calls.length, 1, 'c,d is full and overdue but a,b still runs');
    assert.equal(h.batcher.depth, 2);
    assert.equal(h.batcher.busy, true);
    await h.finish(0);
    assert.deepEqual(payloadsOf(h.calls), ['a,b', 'c,d']);
  });

  test('a second batch starts only after the first rejects', async () => {
    const h = harness({ maxBatchSize: 1, maxQueueDelayMs: 0 });
    h.submit('a');
    h.submit('b');
    assert.equal(h.calls.length, 1);
    h.calls[0]!.reject(new Error('x'));
    await flushMicrotasks();
    assert.deepEqual(payloadsOf(h.calls), ['a', 'b']);
  });

  test('maxBatchSize 0: each request runs alone, one at a time, ignoring the delay', async () => {
    const h = harness({ maxBatchSize: 0, maxQueueDelayMs: 50 });
    const s = ['a', 'b', 'c'].map((p) => h.submit(p, 1));
    assert.deepEqual(payloadsOf(h.calls), ['a'], 'the first runs at once, no batching delay');
    assert.equal(h.batcher.depth, 2);
    await flushMicrotasks();
    assert.equal(h.calls.length, 1, 'b waits for a');
    await h.finish(0);
    assert.deepEqual(payloadsOf(h.calls), ['a', 'b']);
    await h.finish(1);
    assert.deepEqual(payloadsOf(h.calls), ['a', 'b', 'c']);
    await h.finish(2);
    assert.deepEqual(
      s.map((x) => x.value),
      ['r:a', 'r:b', 'r:c'],
    );
    assert.equal(h.clock.requestedDelays.length, 0);
    assert.deepEqual(
      h.onBatchCalls.map((b) => b.rows),
      [1, 1, 1],
    );
  });

  test('maxBatchSize 0 keeps multi-row requests whole and separate', async () => {
    const h = harness({ maxBatchSize: 0, maxQueueDelayMs: 0 });
    h.submit('a', 5);
    h.submit('b', 5);
    await h.finish(0);
    assert.deepEqual(payloadsOf(h.calls), ['a', 'b']);
    assert.deepEqual(
      h.onBatchCalls.map((b) => b.rows),
      [5, 5],
    );
  });
});

describe('Batcher: queue bound', () => {
  test('submit rejects with QueueFullError past maxQueueSize; the running batch does not count', async () => {
    const h = harness({ maxBatchSize: 0, maxQueueDelayMs: 0, maxQueueSize: 2 });
    const a = h.submit('a'); // runs at once, leaves the queue
    const b = h.submit('b');
    const c = h.submit('c');
    assert.equal(h.batcher.depth, 2);
    const d = h.submit('d');
    await flushMicrotasks();
    assert.equal(d.status, 'rejected');
    assert.ok(d.error instanceof QueueFullError);
    assert.equal(d.error.maxQueueSize, 2);
    assert.equal(d.error.name, 'QueueFullError');
    assert.match(d.error.message, /2/);
    assert.equal(h.batcher.depth, 2, 'the rejected request was not queued');
    await h.finish(0);
    const e = h.submit('e');
    await flushMicrotasks();
    assert.equal(e.status, 'pending', 'a slot freed up: e is accepted');
    for (let i = 1; i < 10 && h.calls.length > i; i++) await h.finish(i);
    assert.deepEqual(payloadsOf(h.calls), ['a', 'b', 'c', 'e']);
    assert.deepEqual(
      [a, b, c, e].map((x) => x.value),
      ['r:a', 'r:b', 'r:c', 'r:e'],
    );
  });

  test('the bound applies while requests wait for the delay too', async () => {
    const h = harness({ maxBatchSize: 10, maxQueueDelayMs: 10, maxQueueSize: 3 });
    h.submit('a');
    h.submit('b');
    h.submit('c');
    const d = h.submit('d');
    await flushMicrotasks();
    assert.ok(d.error instanceof QueueFullError);
    h.clock.advance(10);
    assert.deepEqual(payloadsOf(h.calls), ['a,b,c']);
  });
});

describe('Batcher: failing runs', () => {
  test('a run that rejects rejects every item of that batch, and the batcher keeps working', async () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 10 });
    const a = h.submit('a');
    const b = h.submit('b');
    const c = h.submit('c');
    const boom = new Error('boom');
    h.calls[0]!.reject(boom);
    await flushMicrotasks();
    assert.equal(a.error, boom);
    assert.equal(b.error, boom);
    assert.equal(c.status, 'pending', 'c was not in the failed batch');
    h.clock.advance(10);
    assert.deepEqual(payloadsOf(h.calls), ['a,b', 'c']);
    await h.finish(1);
    assert.equal(c.value, 'r:c');
  });

  test('a run that throws synchronously rejects its batch, and the next batch runs', async () => {
    const clock = new FakeClock();
    const seen: string[][] = [];
    const boom = new TypeError('sync boom');
    const batcher = new Batcher<string, string>({
      maxBatchSize: 2,
      maxQueueDelayMs: 0,
      maxQueueSize: 10,
      clock,
      run: (payloads) => {
        seen.push([...payloads]);
        if (payloads.includes('bad')) throw boom;
        return Promise.resolve(payloads.map((p) => p.toUpperCase()));
      },
    });
    const bad = track(batcher.submit('bad', 1, 'k'));
    const x = track(batcher.submit('x', 1, 'k'));
    const y = track(batcher.submit('y', 1, 'k'));
    await flushMicrotasks();
    assert.equal(bad.error, boom);
    assert.deepEqual(seen, [['bad'], ['x', 'y']]);
    assert.equal(x.value, 'X');
    assert.equal(y.value, 'Y');
    const later = track(batcher.submit('z', 1, 'k'));
    await flushMicrotasks();
    assert.equal(later.value, 'Z');
    assert.equal(batcher.busy, false);
  });

  test('a rejection with a non-Error value is passed through as is', async () => {
    const h = harness({ maxBatchSize: 1, maxQueueDelayMs: 0 });
    const a = h.submit('a');
    h.calls[0]!.reject('plain string');
    await flushMicrotasks();
    assert.equal(a.status, 'rejected');
    assert.equal(a.error, 'plain string');
  });
});

describe('Batcher: onBatch, depth, busy and idle', () => {
  test('onBatch reports the rows and each request wait, before run is called', () => {
    const h = harness({ maxBatchSize: 10, maxQueueDelayMs: 20 });
    h.submit('a', 3);
    h.clock.advance(5);
    h.submit('b', 2);
    h.clock.advance(12);
    h.submit('c', 4);
    h.clock.advance(3);
    assert.deepEqual(h.onBatchCalls, [{ rows: 9, waits: [20, 15, 3], at: 1020 }]);
    assert.deepEqual(h.events, ['onBatch 9', 'run a,b,c']);
  });

  test('depth counts waiting requests only; busy covers the running batch', async () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 10 });
    assert.equal(h.batcher.depth, 0);
    assert.equal(h.batcher.busy, false);
    h.submit('a');
    assert.equal(h.batcher.depth, 1);
    assert.equal(h.batcher.busy, true);
    h.submit('b');
    assert.equal(h.batcher.depth, 0, 'a,b left the queue to run');
    assert.equal(h.batcher.busy, true, 'but the batch still runs');
    await h.finish(0);
    assert.equal(h.batcher.busy, false);
  });

  test('idle() resolves at once when nothing is queued or running', async () => {
    const h = harness();
    let done = false;
    void h.batcher.idle().then(() => {
      done = true;
    });
    await flushMicrotasks();
    assert.equal(done, true);
  });

  test('idle() resolves only once the queue is drained and the last batch finished', async () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 10 });
    h.submit('a');
    h.submit('b');
    h.submit('c');
    let idleCount = 0;
    void h.batcher.idle().then(() => idleCount++);
    void h.batcher.idle().then(() => idleCount++);
    await flushMicrotasks();
    assert.equal(idleCount, 0);
    await h.finish(0);
    assert.equal(idleCount, 0, 'c still waits');
    h.clock.advance(10);
    await flushMicrotasks();
    assert.equal(idleCount, 0, 'c runs');
    await h.finish(1);
    assert.equal(idleCount, 2, 'every waiter is released');
    assert.equal(h.clock.pendingTimers, 0);
  });

  test('idle() also resolves after a failed last batch', async () => {
    const h = harness({ maxBatchSize: 1, maxQueueDelayMs: 0 });
    const a = h.submit('a');
    let idle = false;
    void h.batcher.idle().then(() => {
      idle = true;
    });
    h.calls[0]!.reject(new Error('nope'));
    await flushMicrotasks();
    assert.equal(a.status, 'rejected');
    assert.equal(idle, true);
  });

  test('the batcher works again after going idle', async () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 10 });
    h.submit('a');
    h.submit('b');
    await h.finish(0);
    await h.batcher.idle();
    h.clock.advance(100);
    const c = h.submit('c');
    h.clock.advance(9);
    assert.equal(h.calls.length, 1, 'the new oldest request gets a fresh delay');
    h.clock.advance(1);
    await h.finish(1);
    assert.equal(c.value, 'r:c');
    assert.equal(h.calls[1]!.startedAt, 1110);
  });
});

describe('Batcher: gathering the event-loop turn', () => {
  /** A harness whose `gather` callbacks the test runs by hand (setImmediate in a server). */
  function gathering(opts: Partial<BatcherOptions<string, string>> = {}) {
    const pending: (() => void)[] = [];
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 0, gather: (fn) => pending.push(fn), ...opts });
    const turn = () => {
      const fns = pending.splice(0);
      for (const fn of fns) fn();
    };
    return { ...h, pending, turn };
  }

  test('a batch that could start is taken only once the turn ends: requests read with it join', async () => {
    const g = gathering();
    g.submit('a');
    assert.equal(g.calls.length, 0, 'not taken yet');
    assert.equal(g.pending.length, 1, 'one gather asked for');
    assert.equal(g.batcher.busy, true);
    g.submit('b');
    g.submit('c');
    assert.equal(g.pending.length, 1, 'no second gather while one is pending');
    g.turn();
    assert.deepEqual(payloadsOf(g.calls), ['a,b,c']);
    assert.deepEqual(
      g.onBatchCalls.map((c) => c.rows),
      [3],
    );
    await g.finish(0);
    assert.equal(g.batcher.busy, false);
    assert.equal(g.pending.length, 0);
  });

  test('what arrives while a batch runs is gathered again after it, up to maxBatchSize', async () => {
    const g = gathering({ maxBatchSize: 2 });
    g.submit('a');
    g.turn();
    for (const p of ['b', 'c', 'd']) g.submit(p);
    assert.equal(g.pending.length, 0, 'nothing is gathered while a batch runs');
    await g.finish(0);
    assert.equal(g.pending.length, 1);
    g.submit('e');
    g.turn();
    assert.deepEqual(payloadsOf(g.calls), ['a', 'b,c']);
    await g.finish(1);
    g.turn();
    assert.deepEqual(payloadsOf(g.calls), ['a', 'b,c', 'd,e']);
  });

  test('with a queue delay, the gather follows the timer; maxBatchSize 0 never gathers', async () => {
    const g = gathering({ maxBatchSize: 4, maxQueueDelayMs: 5 });
    g.submit('a');
    assert.equal(g.pending.length, 0, 'waiting for company first');
    g.clock.advance(5);
    assert.equal(g.pending.length, 1);
    g.submit('b');
    g.turn();
    assert.deepEqual(payloadsOf(g.calls), ['a,b']);

    const solo = gathering({ maxBatchSize: 0 });
    solo.submit('x');
    assert.deepEqual(payloadsOf(solo.calls), ['x'], 'runs at once, alone');
    assert.equal(solo.pending.length, 0);
  });

  test('idle() waits for a batch that is being gathered', async () => {
    const g = gathering();
    g.submit('a');
    let idle = false;
    void g.batcher.idle().then(() => {
      idle = true;
    });
    await flushMicrotasks();
    assert.equal(idle, false);
    g.turn();
    await g.finish(0);
    assert.equal(idle, true);
  });
});

describe('Batcher: enqueue (a callback, no promise per request)', () => {
  test('settle is told each result once, at its own position', async () => {
    const h = harness({ maxBatchSize: 3, maxQueueDelayMs: 0 });
    const told: [string, unknown, string | undefined][] = [];
    for (const p of ['a', 'b', 'c']) h.batcher.enqueue(p, 1, 'k', (e, r) => told.push([p, e, r]));
    await h.finish(0);
    await h.finish(1);
    assert.deepEqual(told, [
      ['a', undefined, 'r:a'],
      ['b', undefined, 'r:b'],
      ['c', undefined, 'r:c'],
    ]);
  });

  test('the next batch is started before the finished one is told (a worker computes meanwhile)', async () => {
    const h = harness({ maxBatchSize: 1, maxQueueDelayMs: 0 });
    h.batcher.enqueue('a', 1, 'k', () => h.events.push('told a'));
    h.batcher.enqueue('b', 1, 'k', () => h.events.push('told b'));
    await h.finish(0);
    const order = h.events.filter((e) => e.startsWith('run') || e.startsWith('told'));
    assert.deepEqual(order, ['run a', 'run b', 'told a']);
  });

  test('a full queue throws QueueFullError at once and queues nothing', () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10, maxQueueSize: 1 });
    h.batcher.enqueue('a', 1, 'k', () => {});
    assert.throws(() => h.batcher.enqueue('b', 1, 'k', () => assert.fail('never told')), QueueFullError);
    assert.equal(h.batcher.depth, 1);
  });

  test('a failed batch tells every item the error; an undefined rejection becomes an Error', async () => {
    const h = harness({ maxBatchSize: 2, maxQueueDelayMs: 0 });
    const told: unknown[] = [];
    h.batcher.enqueue('a', 1, 'k', (e) => told.push(e));
    h.calls[0]!.reject(undefined);
    await flushMicrotasks();
    assert.equal(told.length, 1);
    assert.ok(told[0] instanceof Error, 'an error the caller can tell from success');
  });

  test('a settle that throws does not keep the rest of its batch from being told', async () => {
    const reported: unknown[] = [];
    const h = harness({ maxBatchSize: 3, maxQueueDelayMs: 0, onSettleError: (e) => reported.push(e) });
    const boom = new Error('settle broke');
    const told: string[] = [];
    h.batcher.enqueue('a', 1, 'k', () => {});
    h.batcher.enqueue('b', 1, 'k', () => {
      throw boom;
    });
    h.batcher.enqueue('c', 1, 'k', (_e, r) => told.push(r!));
    await h.finish(0);
    await h.finish(1);
    assert.deepEqual(told, ['r:c']);
    assert.deepEqual(reported, [boom], 'the error is reported, not swallowed');
    assert.equal(h.batcher.busy, false, 'the batcher went on');
  });
});
