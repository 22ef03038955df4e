/**
 * Global rate limits (fleet mode, `rateLimit.mode: global`): every bucket in Redis, one atomic Lua
 * script per decision (EVALSHA through ioredis's defineCommand) running GCRA on Redis's own clock
 * (`TIME`), so gateways whose clocks disagree still share one limit exactly. The arithmetic is
 * that of gateway/admission/gcra.ts, all buckets of a request decided together.
 *
 * Redis unreachable: `failureMode: open` decides with local buckets holding this gateway's share
 * of each limit (the limit divided by the live gateways, from their heartbeats), `closed` answers
 * unavailable (503). Either is logged once per outage and counted per decision.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../common/logging.js';
import type { FleetKeys } from '../../common/redis/keys.js';
import type { RedisLink } from '../../common/redis/link.js';
import {
  type Bucket,
  type FailureMode,
  interval,
  MemoryRateStore,
  type RateDecision,
  type RateLimitStore,
} from '../admission/gcra.js';

const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = #KEYS
local tats = {}
local allowed = true
local retry = 0
for i = 1, n do
  local T = tonumber(ARGV[2 * i - 1])
  local tau = T * tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local nxt = tat + T
  if nxt - now > tau + 1e-9 then
    allowed = false
    if nxt - tau - now > retry then retry = nxt - tau - now end
  end
  tats[i] = tat
end
local out = {allowed and 1 or 0, tostring(retry)}
for i = 1, n do
  local T = tonumber(ARGV[2 * i - 1])
  local tau = T * tonumber(ARGV[2 * i])
  if allowed then
    tats[i] = tats[i] + T
    redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.ceil(tats[i] - now) + 1000)
  end
  local ahead = tats[i] - now
  out[#out + 1] = math.max(0, math.floor((tau - ahead) / T + 1e-9))
  out[#out + 1] = tostring(math.max(0, ahead))
end
return out
`;

/** Gives one request back to each bucket (ARGV: the intervals), by Redis's clock. */
const REFUND = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat > now then
    tat = tat - tonumber(ARGV[i])
    if tat > now then
      redis.call('SET', KEYS[i], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return 1
`;

/** Gateways whose heartbeat is younger than ARGV[1] ms, by Redis's clock. */
const LIVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
`;

type TakeCommand = (numKeys: number, ...args: string[]) => Promise<(string | number)[]>;

/** The script alone, on a connection: one EVALSHA per decision. Throws when Redis fails. */
export class RedisRateScript {
  private readonly run: TakeCommand;
  private readonly giveBack: TakeCommand;

  constructor(
    redis: Redis,
    private readonly keys: FleetKeys,
  ) {
    if (typeof (redis as unknown as Record<string, unknown>).infergateRateTake !== 'function') {
      redis.defineCommand('infergateRateTake', { lua: TAKE });
      redis.defineCommand('infergateRateRefund', { lua: REFUND });
    }
    const commands = redis as unknown as Record<string, TakeCommand>;
    this.run = (commands.infergateRateTake as TakeCommand).bind(redis);
    this.giveBack = (commands.infergateRateRefund as TakeCommand).bind(redis);
  }

  async take(buckets: readonly Bucket[]): Promise<RateDecision> {
    const args: string[] = [];
    for (const b of buckets) args.push(this.keys.rateBucket(b.key));
    for (const b of buckets) args.push(String(interval(b.rate)), String(b.rate.burst));
    const r = await this.run(buckets.length, ...args);
    const remaining: number[] = [];
    const resetMs: number[] = [];
    for (let i = 2; i < r.length; i += 2) {
      remaining.push(Number(r[i]));
      resetMs.push(Number(r[i + 1]));
    }
    return { allowed: Number(r[0]) === 1, retryAfterMs: Number(r[1]), remaining, resetMs };
  }

  /** One request back to each bucket. Throws when Redis fails. */
  async refund(buckets: readonly Bucket[]): Promise<void> {
    const args: string[] = [];
    for (const b of buckets) args.push(this.keys.rateBucket(b.key));
    for (const b of buckets) args.push(String(interval(b.rate)));
    await this.giveBack(buckets.length, ...args);
  }
}

export interface RedisRateStoreOptions {
  readonly link: RedisLink;
  readonly keys: FleetKeys;
  readonly logger: Logger;
  /** Monotonic ms, for the fallback buckets. */
  readonly now: () => number;
  /** A heartbeat younger than this counts a gateway as live (default 10000 ms: the record's TTL). */
  readonly liveWithinMs?: number;
  /** How often the live gateways are counted while Redis is up (default 2000 ms). */
  readonly countEveryMs?: number;
  /**
   * A decision Redis has not answered within this is taken as if Redis were down (default 100 ms):
   * a Redis that accepts commands but stalls never holds requests longer. The late answer, if any,
   * still charges the global buckets.
   */
  readonly decisionTimeoutMs?: number;
}

/** A decision waiting for Redis: settled once, by its answer or by the sweep past the timeout. */
interface Waiting {
  readonly since: number;
  settle(d: RateDecision | undefined): void;
}

const UNAVAILABLE: RateDecision = Object.freeze({
  allowed: false,
  retryAfterMs: 1000,
  remaining: [],
  resetMs: [],
  unavailable: true,
});

export class RedisRateStore implements RateLimitStore {
  /** Told of every decision taken without Redis (the gateway counts them in a metric). */
  onFallback: ((mode: FailureMode) => void) | undefined = undefined;
  private readonly script: RedisRateScript;
  private readonly local: MemoryRateStore;
  private live = 1;
  private down = false;
  private readonly timer: NodeJS.Timeout;
  /** One sweep for every decision in flight, not a timer per request. */
  private readonly sweep: NodeJS.Timeout;
  private readonly waiting = new Set<Waiting>();
  private readonly timeoutMs: number;

  constructor(private readonly opts: RedisRateStoreOptions) {
    this.script = new RedisRateScript(opts.link.cmd, opts.keys);
    this.local = new MemoryRateStore(opts.now);
    this.timeoutMs = opts.decisionTimeoutMs ?? 100;
    void this.countLive();
    this.timer = setInterval(() => void this.countLive(), opts.countEveryMs ?? 2000);
    this.timer.unref();
    this.sweep = setInterval(() => this.expire(), Math.max(5, this.timeoutMs / 4));
    this.sweep.unref();
  }

  /** The live gateways last counted (at least 1): the divisor of the fallback buckets. */
  get liveGateways(): number {
    return this.live;
  }

  take(buckets: readonly Bucket[], failureMode: FailureMode): RateDecision | Promise<RateDecision> {
    if (!this.opts.link.reachable) return this.fallback(buckets, failureMode);
    return new Promise<RateDecision>((resolve) => {
      const w: Waiting = {
        since: this.opts.now(),
        settle: (d) => {
          if (!this.waiting.delete(w)) return;
          resolve(d ?? this.fallback(buckets, failureMode));
        },
      };
      this.waiting.add(w);
      this.script.take(buckets).then(
        (d) => {
          if (this.down && this.waiting.has(w)) {
            this.down = false;
            this.opts.logger.info('rate limits: Redis is reachable again; global buckets apply');
          }
          w.settle(d);
        },
        () => w.settle(undefined),
      );
    });
  }

  /** Back to the buckets that decided: Redis's, or the local share while Redis is down. */
  refund(buckets: readonly Bucket[]): void {
    if (this.down || !this.opts.link.reachable) {
      this.local.refund(this.share(buckets));
      return;
    }
    // Lost if Redis fails now: the token stays spent, as it would have before refunds.
    this.script.refund(buckets).catch(() => {});
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.sweep);
    for (const w of [...this.waiting]) w.settle(undefined);
  }

  /** Decisions Redis has not answered in time: taken as if it were down. */
  private expire(): void {
    if (this.waiting.size === 0) return;
    const limit = this.opts.now() - this.timeoutMs;
    for (const w of [...this.waiting]) if (w.since <= limit) w.settle(undefined);
  }

  private fallback(buckets: readonly Bucket[], mode: FailureMode): RateDecision {
    this.onFallback?.(mode);
    if (!this.down) {
      this.down = true;
      this.opts.logger.warn(
        { failureMode: mode, liveGateways: this.live },
        mode === 'open'
          ? `rate limits: Redis unreachable; failing open with local buckets of 1/${this.live} of each limit`
          : 'rate limits: Redis unreachable; failing closed (requests with a global limit are refused)',
      );
    }
    if (mode === 'closed') return UNAVAILABLE;
    return this.local.take(this.share(buckets));
  }

  /** This gateway's share of each bucket: the limit divided by the live gateways. */
  private share(buckets: readonly Bucket[]): Bucket[] {
    const n = this.live;
    return buckets.map((b) => ({
      key: b.key,
      scope: b.scope,
      rate: {
        requestsPerSecond: b.rate.requestsPerSecond / n,
        burst: Math.max(1, Math.floor(b.rate.burst / n)),
      },
    }));
  }

  private async countLive(): Promise<void> {
    if (!this.opts.link.reachable) return;
    try {
      const n = Number(
        await this.opts.link.cmd.eval(
          LIVE,
          1,
          this.opts.keys.gateways,
          String(this.opts.liveWithinMs ?? 10_000),
        ),
      );
      this.live = Math.max(1, n);
    } catch {
      // Kept: the last count.
    }
  }
}
