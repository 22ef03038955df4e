import type { Clock } from '../../common/clock.js';

const BUCKETS = 10;
const BUCKET_MS = 1000;
/** Retries always allowed per window, so a quiet model can still retry. */
export const MIN_RETRIES_PER_WINDOW = 10;

/**
 * Retries over the last 10 seconds may be at most `percent` % of the requests in that window, plus
 * a floor of {@link MIN_RETRIES_PER_WINDOW}. A sick fleet then sees at most that much extra load
 * instead of a retry storm. Counts live in ten one-second buckets.
 */
export class RetryBudget {
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private readonly stamps = new Float64Array(BUCKETS).fill(-1);

  constructor(private readonly clock: Clock) {}

  /** Count a request (its first attempt). */
  recordRequest(): void {
    this.requests[this.bucket()]! += 1;
  }

  /** Whether a retry would be allowed now (nothing is counted). */
  canRetry(percent: number): boolean {
    this.bucket();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.requests[i]!;
      retries += this.retries[i]!;
    }
    // At most the allowance: the retry asked for must fit in it whole.
    return retries + 1 <= MIN_RETRIES_PER_WINDOW + (requests * percent) / 100;
  }

  /** Whether a retry is allowed now; if so it is counted. */
  tryRetry(percent: number): boolean {
    if (!this.canRetry(percent)) return false;
    this.retries[this.bucket()]! += 1;
    return true;
  }

  private bucket(): number {
    const second = Math.floor(this.clock.now() / BUCKET_MS);
    const b = second % BUCKETS;
    if (this.stamps[b] !== second) {
      this.stamps[b] = second;
      this.requests[b] = 0;
      this.retries[b] = 0;
    }
    // Buckets older than the window are stale; clear them lazily.
    for (let i = 0; i < BUCKETS; i++) {
      const stamp = this.stamps[i]!;
      if (stamp >= 0 && second - stamp >= BUCKETS) {
        this.stamps[i] = -1;
        this.requests[i] = 0;
        this.retries[i] = 0;
      }
    }
    return b;
  }
}
