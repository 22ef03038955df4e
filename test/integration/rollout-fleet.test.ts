// Fleet mode for canaries: a real redis-server, two gateways sharing one rollout through it. The
// leader is killed mid-rollout (its lock left to expire, as a crash leaves it): the other takes
// over and the stored steps go 0, 1, 2, ... each written once, none skipped, to the promotion.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../common/logging.js';
import { parseRedisUrl } from '../../common/redis/connection.js';
import { fleetKeys } from '../../common/redis/keys.js';
import { RedisLink } from '../../common/redis/link.js';
import { CanaryFleet, canaryKeys } from '../../gateway/fleet/canary-fleet.js';
import { waitFor } from '../helpers/backend.js';
import {
  type FakeReplica,
  mlpBody,
  policyYaml,
  type RunningGateway,
  startFakeReplica,
  startGateway,
} from '../helpers/gateway.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

let redis: RedisServer;
let stable: FakeReplica;
let candidate: FakeReplica;
let client: Redis;

before(async () => {
  redis = await startRedis();
  stable = await startFakeReplica();
  candidate = await startFakeReplica();
  client = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true });
  await client.connect();
});
after(async () => {
  client.disconnect();
  await stable.close();
  await candidate.close();
  await redis.close();
});

function policy(): string {
  return policyYaml({
    variants: { stable: { endpoints: [stable.url] }, candidate: { endpoints: [candidate.url] } },
    split: { stable: 1 },
    defaults: { healthCheck: { intervalMs: 0 } },
    modelKeys: {
      canary: {
        variant: 'candidate',
        baseline: 'stable',
        steps: [20, 40, 60, 80],
        stepSeconds: 0.4,
        minSamples: 10,
        maxErrorRateIncrease: 0.05,
        maxLatencyIncreasePercent: 400,
      },
    },
  });
}

interface Member {
  gw: RunningGateway;
  fleet: CanaryFleet;
  link: RedisLink;
  stopped: boolean;
}

async function member(id: string): Promise<Member> {
  const link = new RedisLink(parseRedisUrl(redis.url), silentLogger(), `test-${id}`);
  assert.ok(await link.start(2000));
  const fleet = new CanaryFleet({
    link,
    keys: fleetKeys('roll:'),
    gatewayId: id,
    logger: silentLogger(),
    leaseMs: 600,
  });
  const gw = await startGateway({ policy: policy(), canaryCoordinator: fleet });
  return { gw, fleet, link, stopped: false };
}

/** Requests to a gateway until `stop()` says so. */
async function drive(m: Member, stop: () => boolean): Promise<void> {
  let i = 0;
  while (!stop() && !m.stopped) {
    await fetch(`${m.gw.url}/v2/models/m/infer`, { method: 'POST', body: mlpBody(i++ % 20) }).catch(() => {});
  }
}

const keys = canaryKeys(fleetKeys('roll:'), 'm');
const stored = () => client.hgetall(keys.state);

describe('canary in fleet mode', () => {
  test('the leader killed mid-rollout: another takes over without repeating or skipping a step', async () => {
    const a = await member('gw-a');
    await waitFor('gw-a to lead', async () => (a.fleet.leads('m') ? true : undefined));
    const b = await member('gw-b');
    let done = false;
    const traffic = Promise.all([
      drive(a, () => done),
      drive(a, () => done),
      drive(b, () => done),
      drive(b, () => done),
    ]);
    try {
      // The follower applies the leader's weights.
      await waitFor(
        'step 2 stored',
        async () => (Number((await stored()).step) >= 1 ? true : undefined),
        20_000,
      );
      await waitFor('gw-b to follow', async () =>
        b.gw.gateway.rollouts.canary('m')?.step === Number((await stored()).step) ? true : undefined,
      );
      assert.equal(b.fleet.leads('m'), false);
      assert.equal(
        b.gw.gateway.rollouts.canary('m')?.weight,
        [20, 40, 60, 80][Number((await stored()).step)],
      );
      // Kill the leader: no release of its lock.
      a.stopped = true;
      await a.fleet.close(false);
      await a.gw.close();
      await a.link.close();
      const end = await waitFor(
        'the rollout to end on gw-b',
        async () => {
          const s = await stored();
          return s.state === 'promoted' || s.state === 'rolled_back' ? s : undefined;
        },
        30_000,
      );
      assert.equal(end.state, 'promoted');
      assert.equal(end.by, 'gw-b');
      assert.ok(b.fleet.leads('m'));
      assert.equal(b.gw.gateway.rollouts.canary('m')?.weight, 100);
    } finally {
      done = true;
      await traffic;
    }
    const log = (await client.lrange(keys.log, 0, -1)).map(
      (l) => JSON.parse(l) as { version: number; token: number; state: string; step: number; by: string },
    );
    // Versions 1, 2, 3, ... and steps 0, 1, 2, 3 each written once, then the promotion at the last step.
    assert.deepEqual(
      log.map((e) => e.version),
      log.map((_, i) => i + 1),
    );
    assert.deepEqual(
      log.map((e) => [e.state, e.step]),
      [
        ['progressing', 0],
        ['progressing', 1],
        ['progressing', 2],
        ['progressing', 3],
        ['promoted', 3],
      ],
    );
    assert.ok(log.some((e) => e.by === 'gw-a') && log.some((e) => e.by === 'gw-b'), JSON.stringify(log));
    const firstB = log.findIndex((e) => e.by === 'gw-b');
    assert.ok(
      log.slice(firstB).every((e) => e.by === 'gw-b' && e.token > (log[0]?.token ?? 0)),
      'fenced: a newer token',
    );
    await b.fleet.close();
    await b.gw.close();
    await b.link.close();
  });
});
