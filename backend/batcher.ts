import type { Clock } from '../common/clock.js';

/**
 * Dynamic batcher for one model version. Requests whose non-batch dims agree (same `key`) are
 * merged along dim 0 up to `maxBatchSize` rows, the oldest waiting at most `maxQueueDelayMs` for
 * company, and run one batch at a time. With `maxBatchSize` 0 every request runs alone, still in
 * order and one at a time. The queue is bounded; `submit` rejects with QueueFullError past it.
 */

export interface BatcherOptions<T, R> {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  maxQueueSize: number;
  clock: Clock;
  /**
   * Runs one batch; answers one result per item, in order. An item that failed alone (while the
   * others succeeded) answers an ItemError; a rejection fails the whole batch.
   */
  run: (payloads: readonly T[]) => Promise<(R | ItemError)[]>;
  /**
   * Runs `fn` once the event loop has read what else arrived in this turn (setImmediate in a
   * server). A batch that could start at once is taken only then, so that requests read together
   * run together. Without it, a batch is taken at once.
   */
  gather?: (fn: () => void) => void;
  /** Told of an error that a Settle callback threw (default: raised as an uncaught exception). */
  onSettleError?: (error: unknown) => void;
  /** Called as each batch starts: its rows, request count, and each request's queue wait. */
  onBatch?: (rows: number, waitsMs: readonly number[]) => void;
}

/**
 * Told how a queued request ended: an error, or undefined and the result. Called once, from the
 * batch's settlement. An error it throws goes to `onSettleError`, after the rest of the batch is told.
 */
export type Settle<R> = (error: unknown, result?: R) => void;

interface Item<T, R> {
  payload: T;
  rows: number;
  key: string;
  enqueuedAt: number;
  settle: Settle<R>;
}

/** One item's failure within a batch whose other items have results. */
export class ItemError {
  constructor(readonly error: unknown) {}
}

export class QueueFullError extends Error {
  constructor(readonly maxQueueSize: number) {
    super(`queue is full (${maxQueueSize} requests waiting)`);
    this.name = 'QueueFullError';
  }
}

export class Batcher<T, R> {
  private readonly queue: Item<T, R>[] = [];
  private running = false;
  private timer: unknown = undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: BatcherOptions<T, R>) {}

  /** Requests waiting (not counting the batch being run). */
  get depth(): number {
    return this.queue.length;
  }

  /** Whether `submit` would reject with QueueFullError now. */
  get full(): boolean {
    return this.queue.length >= this.opts.maxQueueSize;
  }

  get busy(): boolean {
    return this.running || this.queue.length > 0;
  }

  submit(payload: T, rows: number, key: string): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      try {
        this.enqueue(payload, rows, key, (e, r) => (e === undefined ? resolve(r as R) : reject(e)));
      } catch (e) {
        reject(e);
      }
    });
  }

  /**
   * Queues a request whose end `settle` is told; no promise per request. Throws QueueFullError
   * (and queues nothing) when the queue is full.
   */
  enqueue(payload: T, rows: number, key: string, settle: Settle<R>): void {
    if (this.queue.length >= this.opts.maxQueueSize) throw new QueueFullError(this.opts.maxQueueSize);
    this.queue.push({ payload, rows, key, enqueuedAt: this.opts.clock.now(), settle });
    this.pump();
  }

  /** Resolves once the queue is empty and no batch runs. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.running) return;
    const oldest = this.queue[0];
    if (oldest === undefined) {
      this.cancelTimer();
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      return;
    }
    const { maxBatchSize, maxQueueDelayMs, clock } = this.opts;
    if (maxBatchSize > 0) {
      const waited = clock.now() - oldest.enqueuedAt;
      if (waited < maxQueueDelayMs && !this.batchClosed(oldest.key)) {
        if (this.timer === undefined) {
          this.timer = clock.setTimer(() => {
            this.timer = undefined;
            this.pump();
          }, maxQueueDelayMs - waited);
        }
        return;
      }
    }
    this.cancelTimer();
    const gather = this.opts.gather;
    if (gather === undefined || maxBatchSize === 0) {
      this.runOldest();
      return;
    }
    this.running = true;
    gather(this.runOldest);
  }

  /** Takes the batch of the oldest request's key and runs it. */
  private readonly runOldest = (): void => {
    this.runBatch(this.takeBatch(this.queue[0]!.key));
  };

  private cancelTimer(): void {
    if (this.timer !== undefined) {
      this.opts.clock.clearTimer(this.timer);
      this.timer = undefined;
    }
  }

  /**
   * Whether the batch for `key` cannot grow any more: it is full, or the next request of its key
   * does not fit (and later ones may not jump ahead of it), so waiting longer gains nothing.
   */
  private batchClosed(key: string): boolean {
    let rows = 0;
    for (const item of this.queue) {
      if (item.key !== key) continue;
      if (rows + item.rows > this.opts.maxBatchSize) return true;
      rows += item.rows;
    }
    return rows >= this.opts.maxBatchSize;
  }

  private takeBatch(key: string): Item<T, R>[] {
    const first = this.queue.shift()!;
    const batch = [first];
    if (this.opts.maxBatchSize === 0) return batch;
    let rows = first.rows;
    for (let i = 0; i < this.queue.length; ) {
      const item = this.queue[i]!;
      if (item.key !== key) {
        i++;
        continue;
      }
      if (rows + item.rows > this.opts.maxBatchSize) break;
      rows += item.rows;
      batch.push(item);
      this.queue.splice(i, 1);
    }
    return batch;
  }

  private runBatch(batch: Item<T, R>[]): void {
    this.running = true;
    const now = this.opts.clock.now();
    if (this.opts.onBatch !== undefined) {
      let rows = 0;
      const waits: number[] = [];
      for (const item of batch) {
        rows += item.rows;
        waits.push(now - item.enqueuedAt);
      }
      this.opts.onBatch(rows, waits);
    }
    const payloads: T[] = [];
    for (const item of batch) payloads.push(item.payload);
    let done: Promise<(R | ItemError)[]>;
    try {
      done = this.opts.run(payloads);
    } catch (e) {
      done = Promise.reject(e);
    }
    // One reaction per batch (no .finally): settle the batch, then look at the queue again.
    done.then(
      (results) => this.settleBatch(batch, undefined, results),
      (e: unknown) => this.settleBatch(batch, e === undefined ? new Error('batch failed') : e, undefined),
    );
  }

  private settleBatch(
    batch: readonly Item<T, R>[],
    error: unknown,
    results: (R | ItemError)[] | undefined,
  ): void {
    // The next batch starts first: a worker thread then computes it while this thread answers.
    this.batchDone();
    for (let i = 0; i < batch.length; i++) {
      try {
        if (results === undefined) batch[i]!.settle(error);
        else {
          const r = results[i];
          if (r instanceof ItemError) batch[i]!.settle(r.error);
          else batch[i]!.settle(undefined, r);
        }
      } catch (e) {
        const report = this.opts.onSettleError;
        if (report !== undefined) report(e);
        else
          queueMicrotask(() => {
            throw e;
          });
      }
    }
  }

  private batchDone(): void {
    this.running = false;
    this.pump();
  }
}
