import CircuitBreaker from 'opossum';
import type { CompiledCircuitBreaker } from '../policy/compile.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

/** The part of opossum's Status (its rolling window) that its own event listeners call. */
interface Counts {
  increment(property: 'fires' | 'successes', runTime?: number): void;
}

/**
 * An endpoint's circuit breaker: opossum's state machine (open, the reset timer, half-open, close
 * on a successful probe) and its rolling window of counts. Calls are not made through `fire()`:
 * outcomes reach opossum as its own events (`fire`, `success`, `failure`, `reject`) and it opens by
 * its own rule (more than errorThresholdPercentage of at least volumeThreshold calls failed, or a
 * failed probe). Skipping `fire()`'s promise wrapping saved 3-4 µs per request on the hot path.
 * The two calls of every request (`fire`, `success`) count into opossum's window directly, as its
 * listeners of those events do (a test checks that they are still all it has), without emitting.
 */
export class Breaker {
  private cb: CircuitBreaker;
  /** cb's rolling window, counted into directly on the hot path (see `admit` and `success`). */
  private counts: Counts;
  /** Half-open: the one probe allowed is out. */
  private probing = false;
  /** Opened by a refused connection (nothing listened), not by the error rate. */
  openedByFailFast = false;

  constructor(
    private settings: CompiledCircuitBreaker,
    private readonly onChange: (state: BreakerState) => void,
  ) {
    this.cb = this.make();
    this.counts = countsOf(this.cb);
  }

  get state(): BreakerState {
    if (this.cb.opened) return 'open';
    if (this.cb.halfOpen) return 'half_open';
    return 'closed';
  }

  get opened(): boolean {
    return this.cb.opened;
  }

  /** Would refuse a call now: open, or half-open with its probe out. */
  get refuses(): boolean {
    return this.cb.opened || (this.cb.halfOpen && this.probing);
  }

  /** Calls and failures over the rolling window. */
  get recent(): { requests: number; failures: number } {
    const s = this.cb.stats;
    return { requests: s.fires, failures: s.failures };
  }

  get resetTimeoutMs(): number {
    return this.settings.resetTimeoutMs;
  }

  /** Lets one call through (counted), or refuses it: open, or half-open with its probe out. */
  admit(): boolean {
    const b = this.cb;
    if (!b.closed) {
      if (!b.halfOpen || this.probing) {
        b.emit('reject');
        return false;
      }
      this.probing = true;
    }
    // What opossum's own listener of 'fire' does, without the event's dispatch (one per request).
    this.counts.increment('fires');
    return true;
  }

  /** The admitted call succeeded; a half-open breaker closes on it, as opossum's does. */
  success(): void {
    this.probing = false;
    // opossum's two listeners of 'success': the count, and closing a half-open breaker.
    this.counts.increment('successes');
    if (this.cb.halfOpen) this.cb.close();
  }

  /**
   * The admitted call ended without a verdict on the replica (the client went away and it was cut
   * off): neither a success nor a failure. A half-open breaker's probe is free again, so the next
   * call probes. In the window it stays a call without a failure.
   */
  abandon(): void {
    this.probing = false;
  }

  /** The admitted call failed; opens by opossum's own rule. */
  failure(): void {
    this.probing = false;
    const b = this.cb;
    b.emit('failure');
    if (b.opened) return;
    if (b.halfOpen) {
      b.open();
      return;
    }
    const { fires, failures } = b.stats;
    const s = this.settings;
    if (fires >= s.volumeThreshold && (failures / fires) * 100 > s.errorThresholdPercentage) b.open();
  }

  /**
   * Nothing listens there (connection refused, unreachable): open at once instead of waiting for
   * the error rate, as Finagle's fail-fast does. A health check that passes, or the half-open probe
   * after the reset timeout, brings the endpoint back.
   */
  failFast(): void {
    if (this.cb.closed || this.cb.halfOpen) {
      this.cb.open();
      this.openedByFailFast = true;
    }
  }

  close(): void {
    if (!this.cb.closed) this.cb.close();
    this.openedByFailFast = false;
  }

  /** opossum's thresholds are fixed at construction: changed ones make a new breaker, closed. */
  update(settings: CompiledCircuitBreaker): void {
    const old = this.settings;
    this.settings = settings;
    if (
      settings.errorThresholdPercentage === old.errorThresholdPercentage &&
      settings.volumeThreshold === old.volumeThreshold &&
      settings.resetTimeoutMs === old.resetTimeoutMs &&
      settings.windowMs === old.windowMs
    ) {
      return;
    }
    this.cb.shutdown();
    this.cb = this.make();
    this.counts = countsOf(this.cb);
    this.probing = false;
  }

  shutdown(): void {
    this.cb.shutdown();
  }

  /** opossum for its state machine and counts only: its action and its own timeout are never used. */
  private make(): CircuitBreaker {
    const s = this.settings;
    const cb = new CircuitBreaker(() => Promise.resolve(), {
      errorThresholdPercentage: s.errorThresholdPercentage,
      volumeThreshold: s.volumeThreshold,
      resetTimeout: s.resetTimeoutMs,
      rollingCountTimeout: s.windowMs,
      rollingCountBuckets: 10,
      timeout: false,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    });
    cb.on('open', () => this.onChange('open'));
    cb.on('halfOpen', () => this.onChange('half_open'));
    cb.on('close', () => {
      this.openedByFailFast = false;
      this.onChange('closed');
    });
    return cb;
  }
}

/** opossum's Status, which its listeners of `fire` and `success` increment. */
function countsOf(cb: CircuitBreaker): Counts {
  return cb.status as unknown as Counts;
}
