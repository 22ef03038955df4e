/**
 * The generic cell rate algorithm (GCRA), the continuous form of a token bucket: each bucket keeps
 * one number, its theoretical arrival time (TAT). A request costs one emission interval
 * T = 1000 / rate ms; it passes when the new TAT is at most `burst` intervals ahead of now. No
 * window edges: a burst timed at a second's boundary gets `burst`, never twice that.
 *
 * A decision over several buckets (key, model, key on model) is all or nothing: every bucket must
 * allow it, and only then is every bucket charged. The Redis store runs the same arithmetic in Lua
 * (gateway/fleet/redis-rate.ts) on Redis's clock. Pure; the memory store below takes a clock.
 */
import type { CompiledRate } from '../policy/compile.js';

export interface Bucket {
  /** The store's key: `k:{keyId}`, `m:{model}`, `km:{keyId}:{model}`. */
  readonly key: string;
  /** Its name in the RateLimit headers: `key`, `model`, `key-model`. */
  readonly scope: string;
  readonly rate: CompiledRate;
}

export interface RateDecision {
  readonly allowed: boolean;
  /** When refused: ms until the request would pass. */
  readonly retryAfterMs: number;
  /** Per bucket, in order: requests left now, and ms until the bucket is full again. */
  readonly remaining: readonly number[];
  readonly resetMs: readonly number[];
  /** The store cannot decide (global mode, Redis down, failureMode closed). */
  readonly unavailable?: boolean;
}

export type FailureMode = 'open' | 'closed';

/**
 * Where buckets live: this process (memory) or Redis (one script per decision). `failureMode` is
 * the policy's, for a store that can fail (Redis): open falls back to local buckets, closed refuses.
 */
export interface RateLimitStore {
  take(buckets: readonly Bucket[], failureMode: FailureMode): RateDecision | Promise<RateDecision>;
  /**
   * Gives back the one request that `take` allowed on these buckets, when a later stage refused
   * it (shed at the concurrency limit): a request that was never served costs no quota. Best
   * effort, never waited for.
   */
  refund(buckets: readonly Bucket[]): void;
}

export function interval(rate: CompiledRate): number {
  return 1000 / rate.requestsPerSecond;
}

/**
 * One decision: `tats` are the buckets' stored TATs (0 for none) and are updated in place when the
 * request is allowed.
 */
export function decide(buckets: readonly Bucket[], tats: number[], now: number): RateDecision {
  let allowed = true;
  let retryAfterMs = 0;
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i] as Bucket;
    const t = interval(b.rate);
    const tau = t * b.rate.burst;
    const tat = Math.max(tats[i] as number, now);
    const next = tat + t;
    if (next - now > tau + 1e-9) {
      allowed = false;
      retryAfterMs = Math.max(retryAfterMs, next - tau - now);
    }
    tats[i] = tat;
  }
  const remaining: number[] = [];
  const resetMs: number[] = [];
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i] as Bucket;
    const t = interval(b.rate);
    if (allowed) tats[i] = (tats[i] as number) + t;
    const ahead = (tats[i] as number) - now;
    remaining.push(Math.max(0, Math.floor((t * b.rate.burst - ahead) / t + 1e-9)));
    resetMs.push(Math.max(0, ahead));
  }
  return { allowed, retryAfterMs, remaining, resetMs };
}

/** Buckets in this process's memory; full ones are forgotten once the map grows. */
export class MemoryRateStore implements RateLimitStore {
  private readonly tats = new Map<string, number>();
  private sweepAt = 4096;

  constructor(private readonly now: () => number) {}

  take(buckets: readonly Bucket[], _failureMode?: FailureMode): RateDecision {
    const now = this.now();
    const tats = buckets.map((b) => this.tats.get(b.key) ?? 0);
    const d = decide(buckets, tats, now);
    if (d.allowed) {
      for (let i = 0; i < buckets.length; i++) this.tats.set((buckets[i] as Bucket).key, tats[i] as number);
      if (this.tats.size >= this.sweepAt) this.sweep(now);
    }
    return d;
  }

  refund(buckets: readonly Bucket[]): void {
    const now = this.now();
    for (const b of buckets) {
      const tat = this.tats.get(b.key);
      if (tat === undefined || tat <= now) continue;
      const back = tat - interval(b.rate);
      if (back > now) this.tats.set(b.key, back);
      else this.tats.delete(b.key);
    }
  }

  /** Buckets held (for tests of the sweep). */
  get size(): number {
    return this.tats.size;
  }

  private sweep(now: number): void {
    for (const [k, tat] of this.tats) if (tat <= now) this.tats.delete(k);
    this.sweepAt = Math.max(4096, this.tats.size * 2);
  }
}
