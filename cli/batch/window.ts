/**
 * The adaptive concurrency window of `infergate batch`: additive increase, multiplicative decrease
 * (AIMD). Each success grows the window by 1/window (one slot per window of successes), up to the
 * `--concurrency` ceiling; back-pressure (429, 503) halves it, at most once per round trip: an
 * answer to a request sent before the last decrease does not decrease it again. The line that got
 * back-pressure waits its `Retry-After` before it is sent again; once the window is down to its
 * floor, `Retry-After` holds every line. Pure: the clock is passed in.
 */
export class AdaptiveWindow {
  private size: number;
  /** Counts the decreases; a request carries the epoch it was sent in. */
  private epochNow = 0;
  private holdUntil = 0;

  constructor(
    readonly max: number,
    initial = max,
    readonly min = 1,
  ) {
    if (!(max >= 1)) throw new Error('the window needs a ceiling of at least 1');
    this.size = Math.min(max, Math.max(min, initial));
  }

  /** Requests allowed in flight now. */
  get limit(): number {
    return Math.max(this.min, Math.floor(this.size));
  }

  get epoch(): number {
    return this.epochNow;
  }

  /** Clock time (ms) before which nothing is sent (from `Retry-After`); 0: none. */
  get pausedUntil(): number {
    return this.holdUntil;
  }

  onSuccess(): void {
    this.size = Math.min(this.max, this.size + 1 / this.size);
  }

  /**
   * A 429 or 503 for a request sent in `sentEpoch`, with the wait its `Retry-After` asked for.
   * True when the window was cut.
   */
  onBackpressure(sentEpoch: number, now: number, retryAfterMs: number | undefined): boolean {
    if (retryAfterMs !== undefined && retryAfterMs > 0 && this.size <= this.min)
      this.holdUntil = Math.max(this.holdUntil, now + retryAfterMs);
    if (sentEpoch < this.epochNow) return false;
    this.size = Math.max(this.min, this.size / 2);
    this.epochNow += 1;
    return true;
  }
}

/** `Retry-After` (seconds, or an HTTP date) in ms from `nowMs` (wall clock); undefined: none or bad. */
export function retryAfterMs(header: string | string[] | undefined, nowMs: number): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Math.min(Number(value), 3600) * 1000;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - nowMs), 3_600_000);
}

/** Exponential backoff with full jitter for try `attempt` (1-based): in [0, min(cap, base·2^(n-1))). */
export function backoffMs(attempt: number, random: () => number, baseMs = 50, capMs = 5000): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1)));
}
