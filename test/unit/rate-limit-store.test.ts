// One suite, both stores: the in-memory buckets and the Redis script (a real redis-server), held to
// the same GCRA behaviour: a burst passes at once and no more, a refusal says when to retry and the
// retry then passes, decisions over several buckets are all or nothing, buckets are independent.
// Then the exact arithmetic on a fake clock, and the stage's headers and refusals.
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../common/logging.js';
import { parseRedisUrl } from '../../common/redis/connection.js';
import { fleetKeys } from '../../common/redis/keys.js';
import { RedisLink } from '../../common/redis/link.js';
import {
  type Bucket,
  decide,
  MemoryRateStore,
  type RateDecision,
  type RateLimitStore,
} from '../../gateway/admission/gcra.js';
import { concurrencyStage } from '../../gateway/admission/concurrency.js';
import { ConcurrencyLimiter } from '../../gateway/admission/limiter.js';
import { rateLimitStage } from '../../gateway/admission/rate-limit.js';
import { admit, type Refusal, release } from '../../gateway/admission/stage.js';
import { RedisRateScript, RedisRateStore } from '../../gateway/fleet/redis-rate.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

let server: RedisServer;
let redis: Redis;
let n = 0;
before(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { lazyConnect: true });
  await redis.connect();
});
after(async () => {
  redis.disconnect();
  await server.close();
});

const bucket = (rps: number, burst: number, key = `b${++n}`, scope = 'key'): Bucket => ({
  key,
  scope,
  rate: { requestsPerSecond: rps, burst },
});

const stores: [string, () => RateLimitStore][] = [
  ['memory', () => new MemoryRateStore(() => performance.now())],
  [
    'redis',
    () => {
      const script = new RedisRateScript(redis, fleetKeys(`rl${++n}:`));
      return { take: (b) => script.take(b), refund: (b) => void script.refund(b) };
    },
  ],
];

for (const [name, make] of stores) {
  describe(`rate-limit store: ${name}`, () => {
    const take = async (s: RateLimitStore, b: Bucket[]): Promise<RateDecision> => s.take(b, 'open');

    test('a burst passes at once, counting down, and the next is refused with when to retry', async () => {
      const s = make();
      const b = bucket(10, 5);
      const remaining: number[] = [];
      for (let i = 0; i < 5; i++) {
        const d = await take(s, [b]);
        assert.equal(d.allowed, true, `request ${i + 1}`);
        remaining.push(d.remaining[0] as number);
      }
      assert.deepEqual(remaining, [4, 3, 2, 1, 0]);
      const no = await take(s, [b]);
      assert.equal(no.allowed, false);
      assert.equal(no.remaining[0], 0);
      // One interval (100 ms) at most, less the time the burst took.
      assert.ok(no.retryAfterMs > 0 && no.retryAfterMs <= 100.5, `retry after ${no.retryAfterMs}`);
      assert.ok(
        (no.resetMs[0] as number) > 400 && (no.resetMs[0] as number) <= 500.5,
        `reset ${no.resetMs[0]}`,
      );
    });

    test('after the time it said, the retry passes', async () => {
      const s = make();
      const b = bucket(20, 1);
      assert.equal((await take(s, [b])).allowed, true);
      const no = await take(s, [b]);
      assert.equal(no.allowed, false);
      // The behaviour under test is the passing of time: waiting for it is the test.
      await delay(Math.ceil(no.retryAfterMs) + 2);
      assert.equal((await take(s, [b])).allowed, true);
    });

    test('several buckets: all or nothing (a refusal charges none of them)', async () => {
      const s = make();
      const wide = bucket(100, 10);
      const narrow = bucket(1, 1);
      assert.equal((await take(s, [wide, narrow])).allowed, true);
      const no = await take(s, [wide, narrow]);
      assert.equal(no.allowed, false);
      assert.deepEqual(no.remaining, [9, 0]);
      // The wide bucket was charged once only: 9 left for it alone.
      let passed = 0;
      for (let i = 0; i < 12; i++) if ((await take(s, [wide])).allowed) passed += 1;
      assert.equal(passed, 9);
    });

    test('buckets are independent of each other', async () => {
      const s = make();
      const a = bucket(1, 1);
      const b = bucket(1, 1);
      assert.equal((await take(s, [a])).allowed, true);
      assert.equal((await take(s, [a])).allowed, false);
      assert.equal((await take(s, [b])).allowed, true);
    });

    test('a refund gives back one request; a full bucket gains nothing from one', async () => {
      const s = make();
      const b = bucket(0.001, 2);
      s.refund([b]);
      assert.equal((await take(s, [b])).allowed, true);
      assert.equal((await take(s, [b])).allowed, true);
      assert.equal((await take(s, [b])).allowed, false, 'the burst, no more: the early refund gave nothing');
      s.refund([b]);
      // The Redis store's refund is not awaited by the stage; give the script its turn here.
      if (name === 'redis') await redis.ping();
      const again = await take(s, [b]);
      assert.equal(again.allowed, true, 'the refunded request passes');
      assert.equal(again.remaining[0], 0);
      assert.equal((await take(s, [b])).allowed, false);
    });

    test('a fractional rate (one request per two seconds) keeps its burst', async () => {
      const s = make();
      const b = bucket(0.5, 2);
      assert.equal((await take(s, [b])).allowed, true);
      assert.equal((await take(s, [b])).allowed, true);
      const no = await take(s, [b]);
      assert.equal(no.allowed, false);
      assert.ok(no.retryAfterMs > 1900 && no.retryAfterMs <= 2000.5, `retry after ${no.retryAfterMs}`);
    });
  });
}

describe('GCRA on a fake clock', () => {
  test('exact: rate 10/s burst 2 passes 2 at t=0, one every 100 ms after; no window edge', () => {
    let now = 0;
    const s = new MemoryRateStore(() => now);
    const b = bucket(10, 2);
    const at = (t: number) => {
      now = t;
      return s.take([b]).allowed;
    };
    assert.deepEqual([at(0), at(0), at(0)], [true, true, false]);
    assert.deepEqual([at(99), at(100), at(100)], [false, true, false]);
    // At a second's boundary a fixed window would reset; GCRA gives only what accrued.
    assert.deepEqual([at(999), at(1000), at(1000), at(1000)], [true, true, false, false]);
  });

  test('decide() leaves the stored times alone on a refusal', () => {
    const b = [bucket(1, 1)];
    const tats = [1500];
    const d = decide(b, tats, 1000);
    assert.equal(d.allowed, false);
    assert.deepEqual(tats, [1500]);
    assert.equal(d.retryAfterMs, 500);
  });

  test('the memory store forgets full buckets once it holds many', () => {
    let now = 0;
    const s = new MemoryRateStore(() => now);
    for (let i = 0; i < 5000; i++) s.take([bucket(1000, 10, `k${i}`)]);
    now = 10_000;
    for (let i = 0; i < 4000; i++) s.take([bucket(1000, 10, `later${i}`)]);
    assert.ok(s.size < 5000, `held ${s.size}`);
  });
});

describe('the rate-limit stage', () => {
  const facts = (keyId?: string) => ({
    id: 'r',
    modelName: 'mlp',
    headers: {},
    keyId,
    admitted: 0,
    refusedBy: undefined as string | undefined,
    replyHeaders: undefined as Record<string, string> | undefined,
  });

  test('headers on every answer, 429 with Retry-After when a bucket is empty, counted by scope', () => {
    let now = 0;
    const limited: string[] = [];
    const stage = rateLimitStage({
      model: 'mlp',
      modelRate: { requestsPerSecond: 100, burst: 100 },
      keyModelRate: undefined,
      defaultKeyRate: { requestsPerSecond: 1, burst: 1 },
      store: new MemoryRateStore(() => now),
      failureMode: 'open',
      onLimited: (m, s) => limited.push(`${m}/${s}`),
    });
    const first = facts('team-a');
    assert.equal(stage.admit(first), undefined);
    assert.deepEqual(first.replyHeaders, {
      'ratelimit-policy': '"model";q=100;w=1, "key";q=1;w=1',
      ratelimit: '"model";r=99;t=1, "key";r=0;t=1',
    });
    const second = facts('team-a');
    const no = stage.admit(second) as Refusal;
    assert.equal(no.error.statusCode, 429);
    assert.equal(no.error.code, 'GW_ERR_RATE_LIMITED');
    assert.equal(no.error.retryAfterSeconds, 1);
    assert.deepEqual(limited, ['mlp/key']);
    // Another key has its own bucket; anonymous requests only meet the model's.
    assert.equal(stage.admit(facts('team-b')), undefined);
    const anon = facts();
    assert.equal(stage.admit(anon), undefined);
    assert.equal(anon.replyHeaders?.['ratelimit-policy'], '"model";q=100;w=1');
    now = 1000;
    assert.equal(stage.admit(facts('team-a')), undefined);
  });

  test("each key on a model: its own bucket beside the model's, named key-model", () => {
    const stage = rateLimitStage({
      model: 'mlp',
      modelRate: undefined,
      keyModelRate: { requestsPerSecond: 2, burst: 2 },
      defaultKeyRate: undefined,
      store: new MemoryRateStore(() => 0),
      failureMode: 'open',
      onLimited: () => {},
    });
    const a = facts('a');
    assert.equal(stage.admit(a), undefined);
    assert.deepEqual(a.replyHeaders, {
      'ratelimit-policy': '"key-model";q=2;w=1',
      ratelimit: '"key-model";r=1;t=1',
    });
    assert.equal(stage.admit(facts('a')), undefined);
    assert.equal((stage.admit(facts('a')) as Refusal).error.code, 'GW_ERR_RATE_LIMITED');
    assert.equal(stage.admit(facts('b')), undefined);
    // Anonymous requests meet no bucket here: no headers.
    const anon = facts();
    assert.equal(stage.admit(anon), undefined);
    assert.equal(anon.replyHeaders, undefined);
  });

  test('a request shed by the concurrency stage after it gets its token back; a served one does not', async () => {
    const clock = new FakeClock();
    const stages = [
      rateLimitStage({
        model: 'mlp',
        modelRate: { requestsPerSecond: 0.001, burst: 2 },
        keyModelRate: undefined,
        defaultKeyRate: undefined,
        store: new MemoryRateStore(() => clock.now()),
        failureMode: 'open',
        onLimited: () => {},
      }),
      concurrencyStage(
        'model',
        new ConcurrencyLimiter({ maxInFlight: 1, maxQueue: 0, queueTimeoutMs: 0 }, clock),
        () => {},
      ),
    ];
    const served = facts();
    assert.equal(await admit(stages, served), undefined, 'the first takes a token and the slot');
    for (let i = 0; i < 5; i++) {
      const shed = facts();
      const no = (await admit(stages, shed)) as Refusal;
      assert.equal(no.error.code, 'GW_ERR_OVERLOADED', `shed ${i + 1}`);
      assert.equal(shed.refusedBy, 'model-concurrency');
    }
    release(stages, served);
    // Five were shed and refunded: one token of the two is left, and only one.
    assert.equal(await admit(stages, facts()), undefined);
    const limited = (await admit(stages, facts())) as Refusal;
    assert.equal(limited.error.code, 'GW_ERR_RATE_LIMITED', 'the served request kept its token');
  });

  test('a store that cannot decide (Redis down, closed): 503 GW_ERR_RATE_LIMIT_UNAVAILABLE', () => {
    const stage = rateLimitStage({
      model: 'mlp',
      modelRate: { requestsPerSecond: 1, burst: 1 },
      keyModelRate: undefined,
      defaultKeyRate: undefined,
      store: {
        take: () => ({ allowed: false, retryAfterMs: 1000, remaining: [], resetMs: [], unavailable: true }),
        refund: () => {},
      },
      failureMode: 'closed',
      onLimited: () => {},
    });
    const no = stage.admit(facts()) as Refusal;
    assert.equal(no.error.statusCode, 503);
    assert.equal(no.error.code, 'GW_ERR_RATE_LIMIT_UNAVAILABLE');
  });
});

describe('global limits: a Redis that stalls', () => {
  test('a decision Redis does not answer within the timeout is taken as if it were down', async () => {
    const link = new RedisLink(parseRedisUrl(server.url), silentLogger(), 'test-stall');
    assert.equal(await link.start(2000), true);
    const store = new RedisRateStore({
      link,
      keys: fleetKeys(`stall${++n}:`),
      logger: silentLogger(),
      now: () => performance.now(),
      decisionTimeoutMs: 50,
    });
    const fallbacks: string[] = [];
    store.onFallback = (mode) => fallbacks.push(mode);
    try {
      const b = bucket(100, 10);
      assert.equal((await store.take([b], 'open')).allowed, true, 'answered by Redis');
      assert.deepEqual(fallbacks, []);
      // A real Redis that accepts commands and answers none of them for a while.
      await redis.call('CLIENT', 'PAUSE', '800', 'ALL');
      const open = await store.take([b], 'open');
      assert.equal(open.allowed, true, 'fail open: the local share decides');
      assert.equal(open.unavailable, undefined);
      const closed = await store.take([b], 'closed');
      assert.equal(closed.unavailable, true, 'fail closed: refused');
      assert.deepEqual(fallbacks, ['open', 'closed']);
    } finally {
      store.close();
      await link.close();
    }
  });
});
