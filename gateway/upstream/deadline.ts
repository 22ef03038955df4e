/** Request deadlines and per-try timeouts, many per timer. */
import type { Clock } from '../../common/clock.js';

export interface Deadline {
  readonly at: number;
  /** Cleared when the request ends first. */
  fire: (() => void) | undefined;
}

/**
 * Deadlines of one timeout value expire in the order they were set, so one timer per value
 * serves them all (a timer per request cost more than the rest of the deadline logic).
 */
export class DeadlineQueue {
  private readonly entries: Deadline[] = [];
  private head = 0;
  private timer: unknown;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  add(fire: () => void): Deadline {
    const d: Deadline = { at: this.clock.now() + this.timeoutMs, fire };
    this.entries.push(d);
    if (this.timer === undefined) this.arm(this.timeoutMs);
    return d;
  }

  private arm(ms: number): void {
    this.timer = this.clock.setTimer(() => this.expire(), Math.max(1, ms));
  }

  private expire(): void {
    this.timer = undefined;
    const now = this.clock.now();
    while (this.head < this.entries.length) {
      const d = this.entries[this.head] as Deadline;
      if (d.fire !== undefined && d.at > now) break;
      this.head += 1;
      const fire = d.fire;
      d.fire = undefined;
      fire?.();
    }
    if (this.head === this.entries.length) {
      this.entries.length = 0;
      this.head = 0;
      return;
    }
    if (this.head > 1024) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    this.arm((this.entries[this.head] as Deadline).at - now);
  }
}

/** Deadline queues by clock and timeout value. */
const deadlineQueues = new WeakMap<Clock, Map<number, DeadlineQueue>>();

export function deadlineQueue(clock: Clock, timeoutMs: number): DeadlineQueue {
  let byTimeout = deadlineQueues.get(clock);
  if (byTimeout === undefined) {
    byTimeout = new Map();
    deadlineQueues.set(clock, byTimeout);
  }
  let q = byTimeout.get(timeoutMs);
  if (q === undefined) {
    q = new DeadlineQueue(clock, timeoutMs);
    byTimeout.set(timeoutMs, q);
  }
  return q;
}
