import type { Clock } from '../../common/clock.js';

export interface LimiterOptions {
  /** Requests served at once. */
  readonly maxInFlight: number;
  /** Requests allowed to wait for a slot; beyond it, refused at once. */
  readonly maxQueue: number;
  /** How long a request may wait for a slot. */
  readonly queueTimeoutMs: number;
}

/** Why a request was refused: the queue was full, or its wait ran out. */
export type Refusal = 'queue_full' | 'queue_timeout';

interface Waiter {
  grant: (() => void) | undefined;
  timer: unknown;
  resolve: (r: Refusal | undefined) => void;
}

/**
 * A concurrency limit with a bounded wait: never an unbounded queue. `acquire` resolves with
 * undefined once the request holds a slot (it must then call `release`), or with the refusal.
 * Limits can change with a policy reload; waiters are served in arrival order.
 */
export class ConcurrencyLimiter {
  private inFlight = 0;
  private readonly queue: Waiter[] = [];
  private head = 0;
  /** Waiters neither granted nor timed out. */
  private pending = 0;

  constructor(
    private opts: LimiterOptions,
    private readonly clock: Clock,
  ) {}

  get active(): number {
    return this.inFlight;
  }

  get waiting(): number {
    return this.pending;
  }

  /** Requests served at once, as the policy sets it now. */
  get capacity(): number {
    return this.opts.maxInFlight;
  }

  /** A slot is free and nobody waits for one: `tryAcquire` would succeed. */
  get hasRoom(): boolean {
    return this.inFlight < this.opts.maxInFlight && this.pending === 0;
  }

  update(opts: LimiterOptions): void {
    this.opts = opts;
    this.drain();
  }

  /** Synchronous fast path: true when a slot was taken at once. */
  tryAcquire(): boolean {
    if (this.inFlight < this.opts.maxInFlight && this.waiting === 0) {
      this.inFlight += 1;
      return true;
    }
    return false;
  }

  acquire(): Promise<Refusal | undefined> {
    if (this.tryAcquire()) return Promise.resolve(undefined);
    if (this.waiting >= this.opts.maxQueue || this.opts.queueTimeoutMs <= 0) {
      return Promise.resolve('queue_full');
    }
    return new Promise((resolve) => {
      const waiter: Waiter = { grant: undefined, timer: undefined, resolve };
      waiter.grant = () => {
        this.pending -= 1;
        this.clock.clearTimer(waiter.timer);
        resolve(undefined);
      };
      waiter.timer = this.clock.setTimer(() => {
        waiter.grant = undefined;
        this.pending -= 1;
        resolve('queue_timeout');
        this.compact();
      }, this.opts.queueTimeoutMs);
      this.pending += 1;
      this.queue.push(waiter);
    });
  }

  release(): void {
    this.inFlight -= 1;
    if (this.pending > 0) this.drain();
    else if (this.queue.length > 0) {
      // Only timed-out waiters are left.
      this.queue.length = 0;
      this.head = 0;
    }
  }

  private drain(): void {
    while (this.inFlight < this.opts.maxInFlight && this.head < this.queue.length) {
      const w = this.queue[this.head] as Waiter;
      this.head += 1;
      if (w.grant === undefined) continue; // timed out
      this.inFlight += 1;
      w.grant();
    }
    this.compact();
  }

  private compact(): void {
    while (this.head < this.queue.length && (this.queue[this.head] as Waiter).grant === undefined)
      this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
  }
}
