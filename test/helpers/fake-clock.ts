import type { Clock } from '../../common/clock.js';

interface PendingTimer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
}

/**
 * A Clock whose time only moves when a test calls `advance`. Timers fire in due order (ties in the
 * order they were set), each with `now()` equal to its due time, so code under test sees exactly
 * the instants it asked for.
 */
export class FakeClock implements Clock {
  private time: number;
  private nextId = 1;
  private readonly timers = new Map<number, PendingTimer>();
  /** Every delay passed to setTimer, in call order. */
  readonly requestedDelays: number[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.requestedDelays.push(ms);
    this.timers.set(id, { id, due: this.time + Math.max(0, ms), fn });
    return id;
  }

  clearTimer(handle: unknown): void {
    if (typeof handle === 'number') this.timers.delete(handle);
  }

  /** Timers set and neither fired nor cleared. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Due time of the earliest pending timer, or undefined. */
  get nextDue(): number | undefined {
    return this.earliest()?.due;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way (including new ones). */
  advance(ms: number): void {
    if (ms < 0) throw new Error('time cannot go backwards');
    const target = this.time + ms;
    for (;;) {
      const next = this.earliest();
      if (next === undefined || next.due > target) break;
      this.timers.delete(next.id);
      this.time = Math.max(this.time, next.due);
      next.fn();
    }
    this.time = target;
  }

  private earliest(): PendingTimer | undefined {
    let best: PendingTimer | undefined;
    for (const t of this.timers.values()) {
      if (best === undefined || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
    }
    return best;
  }
}

/** Lets every queued promise callback run (one macrotask turn), without any real waiting on time. */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
