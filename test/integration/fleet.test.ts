// Fleet mode end to end: a real redis-server on a free port, two gateways (each with its own Redis
// connections, as two processes have), the control plane as users run it (the CLI), fake replicas.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../common/logging.js';
import { parseRedisUrl } from '../../common/redis/connection.js';
import { fleetKeys } from '../../common/redis/keys.js';
import { RedisLink } from '../../common/redis/link.js';
import { RegistrationStore } from '../../common/redis/registrations.js';
import { RedisPolicySource, sha256 } from '../../gateway/fleet/redis-source.js';
import { parseAnnouncement, RedisPolicyStore } from '../../gateway/fleet/redis-store.js';
import { RegisteredEndpointSource } from '../../gateway/registered-endpoints.js';
import { buildGateway, type Gateway, type PolicyEvent } from '../../gateway/server.js';
import { removeTempDirs, sampleRepository, tempDir, waitFor } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';
import { deadPort, type FakeReplica, mlpBody, policyYaml, startFakeReplica } from '../helpers/gateway.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

interface FleetGateway {
  id: string;
  gateway: Gateway;
  url: string;
  adminUrl: string;
  source: RedisPolicySource;
  endpoints: RegisteredEndpointSource;
  events: PolicyEvent[];
  close(): Promise<void>;
}

let redis: RedisServer;
let a: FakeReplica;
let b: FakeReplica;
let prefixCounter = 0;

before(async () => {
  redis = await startRedis();
  a = await startFakeReplica({ body: '{"model_name":"a","outputs":[]}' });
  b = await startFakeReplica({ body: '{"model_name":"b","outputs":[]}' });
});

after(async () => {
  await a.close();
  await b.close();
  await redis.close();
  await removeTempDirs();
});

/** Waits until `check` holds (awaited events where the product offers none outside). */
function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<true> {
  return waitFor(what, async () => ((await check()) ? true : undefined), timeoutMs);
}

/** A fresh prefix per test: tests share the server, never their keys. */
function freshPrefix(): string {
  prefixCounter += 1;
  return `t${prefixCounter}:`;
}

/** The policy: model `m` on variant `a` or `b` (all traffic to the one named). */
function policyTo(variant: 'a' | 'b'): string {
  return policyYaml({
    variants: { a: { endpoints: [a.url] }, b: { endpoints: [b.url] } },
    split: variant === 'a' ? { a: 100, b: 0 } : { a: 0, b: 100 },
    defaults: { healthCheck: { intervalMs: 0 } },
  });
}

async function startFleetGateway(
  id: string,
  prefix: string,
  opts: { seed?: string; cachePath?: string; startupTimeoutMs?: number; pollMs?: number } = {},
): Promise<FleetGateway> {
  const logger = silentLogger();
  const keys = fleetKeys(prefix);
  const link = new RedisLink(parseRedisUrl(redis.url), logger, `test-${id}`);
  await link.start(opts.startupTimeoutMs ?? 2000);
  const endpoints = new RegisteredEndpointSource({ link, keys, logger, pollMs: 200 });
  await endpoints.start();
  const source = new RedisPolicySource({
    link,
    keys,
    gatewayId: id,
    host: 'test',
    pid: process.pid,
    logger,
    pollMs: opts.pollMs ?? 200,
    heartbeatMs: 200,
    ttlMs: 1000,
    startupTimeoutMs: opts.startupTimeoutMs ?? 2000,
    ...(opts.seed !== undefined ? { seed: { text: opts.seed, origin: 'seed.yaml' } } : {}),
    ...(opts.cachePath !== undefined ? { cachePath: opts.cachePath } : {}),
  });
  const events: PolicyEvent[] = [];
  const gateway = await buildGateway({
    policySource: source,
    endpointSource: endpoints,
    processMetrics: false,
    logger,
    onPolicyEvent: (e) => events.push(e),
  });
  const url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  const adminUrl = await gateway.admin.listen({ host: '127.0.0.1', port: 0 });
  return {
    id,
    gateway,
    url,
    adminUrl,
    source,
    endpoints,
    events,
    async close() {
      await gateway.shutdown();
      await link.close();
    },
  };
}

async function answeredBy(g: FleetGateway, body = '{}'): Promise<string> {
  const res = await fetch(`${g.url}/v2/models/m/infer`, { method: 'POST', body });
  assert.equal(res.status, 200);
  return ((await res.json()) as { model_name: string }).model_name;
}

async function policyFile(text: string): Promise<string> {
  const dir = await tempDir('infergate-fleet-');
  const file = path.join(dir, 'policy.yaml');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, text);
  return file;
}

function cli(prefix: string, args: string[]) {
  return runCli(['policy', ...args, '--redis', redis.url, '--redis-prefix', prefix]);
}

async function storeFor(prefix: string): Promise<{ store: RedisPolicyStore; redis: Redis }> {
  const r = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
  await r.connect();
  return { store: new RedisPolicyStore(r, fleetKeys(prefix)), redis: r };
}

describe('fleet mode: policies in Redis', () => {
  test('one apply: every gateway switches and acknowledges; apply --wait prints the table', async () => {
    const prefix = freshPrefix();
    const g1 = await startFleetGateway('gw-1', prefix, { seed: policyTo('a') });
    const g2 = await startFleetGateway('gw-2', prefix);
    try {
      assert.equal(await answeredBy(g1), 'a');
      assert.equal(await answeredBy(g2), 'a');
      const file = await policyFile(policyTo('b'));
      const apply = cli(prefix, ['apply', file, '--wait', '--message', 'all to b', '--timeout', '10']);
      const exit = await apply.exited;
      assert.equal(exit.code, 0, apply.stderr());
      assert.match(apply.stdout(), /applied version 2/);
      assert.match(apply.stdout(), /gw-1\s+ACK\s+2/);
      assert.match(apply.stdout(), /gw-2\s+ACK\s+2/);
      assert.equal(await answeredBy(g1), 'b');
      assert.equal(await answeredBy(g2), 'b');
      const view = (await (await fetch(`${g1.adminUrl}/admin/policy`)).json()) as {
        version: number;
        sourceSha256: string;
      };
      assert.equal(view.version, 2);
      assert.equal(view.sourceSha256, sha256(policyTo('b')));
      const metrics = await (await fetch(`${g1.adminUrl}/metrics`)).text();
      assert.match(metrics, /^infergate_policy_version 2$/m);
      assert.match(metrics, /^infergate_redis_up 1$/m);

      const status = cli(prefix, ['status']);
      assert.equal((await status.exited).code, 0);
      assert.match(status.stdout(), /store: version 2/);
      assert.match(status.stdout(), /gw-1\s+test\s+\d+\s+2\s+redis\s+2\s+ACK\s+0/);
    } finally {
      await g1.close();
      await g2.close();
    }
  });

  test('history, diff (file and versions), rollback and an --if-version conflict', async () => {
    const prefix = freshPrefix();
    const g = await startFleetGateway('gw-h', prefix, { seed: policyTo('a') });
    try {
      const file = await policyFile(policyTo('b'));
      const diff = cli(prefix, ['diff', file]);
      assert.equal((await diff.exited).code, 0);
      assert.match(diff.stdout(), /models\.m\.split\.a: 100 -> 0/);
      assert.match(diff.stdout(), /^- {4}split: \{"a":100,"b":0\}$/m);
      assert.match(diff.stdout(), /^\+ {4}split: \{"a":0,"b":100\}$/m);

      assert.equal(
        (await cli(prefix, ['apply', file, '--message', 'to b', '--if-version', '1']).exited).code,
        0,
      );
      const conflict = cli(prefix, ['apply', file, '--if-version', '1']);
      assert.equal((await conflict.exited).code, 3);
      assert.match(conflict.stderr(), /store is at version 2, not 1/);

      const history = cli(prefix, ['history']);
      assert.equal((await history.exited).code, 0);
      const rows = history.stdout().trim().split('\n');
      assert.match(rows[0] ?? '', /^VERSION\s+TIME\s+AUTHOR\s+MESSAGE\s+SHA256$/);
      assert.match(rows[1] ?? '', /^2 \*\s+.*to b\s+[0-9a-f]{12}$/);
      assert.match(rows[2] ?? '', /^1\s+.*seeded from seed\.yaml/);

      const versions = cli(prefix, ['diff', '--from', '1', '--to', '2']);
      assert.equal((await versions.exited).code, 0);
      assert.match(versions.stdout(), /version 1 -> version 2/);

      const rollback = cli(prefix, ['rollback', '--wait', '--timeout', '10']);
      assert.equal((await rollback.exited).code, 0, rollback.stderr());
      assert.match(rollback.stdout(), /applied version 3/);
      assert.equal(await answeredBy(g), 'a');
      const get = cli(prefix, ['get', '--version', '3']);
      assert.equal((await get.exited).code, 0);
      assert.equal(get.stdout().trimEnd(), policyTo('a').trimEnd());
      assert.match(get.stderr(), /rollback to version 1/);
    } finally {
      await g.close();
    }
  });

  test('a hand-written invalid version is NACKed with its errors; traffic flows on the last good policy', async () => {
    const prefix = freshPrefix();
    const g = await startFleetGateway('gw-n', prefix, { seed: policyTo('a') });
    const { store, redis: r } = await storeFor(prefix);
    try {
      // Written by hand, past the CLI's validation: a split over a variant that does not exist.
      const bad = policyTo('a').replace('split: {"a":100,"b":0}', 'split: {"a":100,"zz":0}');
      const result = await store.apply({ source: bad, sha256: sha256(bad), author: 'hand', message: 'bad' });
      assert.equal(result.kind, 'applied');
      await until(async () => (await store.gateways())[0]?.lastVersion === 2, 'the NACK of version 2');
      const [record] = await store.gateways();
      assert.equal(record?.lastResult, 'nack');
      assert.equal(record?.servingVersion, 1);
      assert.ok(
        record?.errors.some((e) => e.includes('models.m.split')),
        JSON.stringify(record?.errors),
      );
      for (let i = 0; i < 20; i++) assert.equal(await answeredBy(g), 'a');
      const status = cli(prefix, ['status']);
      await status.exited;
      assert.match(status.stdout(), /gw-n\s+test\s+\d+\s+1\s+redis\s+2\s+NACK\s+1/);
      assert.match(status.stdout(), /gw-n refused version 2: models\.m\.split/);
    } finally {
      r.disconnect();
      await g.close();
    }
  });

  test('an announcement carries the source; one written by hand with the number alone is read from the store', async () => {
    const prefix = freshPrefix();
    // No poll within the test's reach: both versions arrive by the channel alone.
    const g = await startFleetGateway('gw-p', prefix, { seed: policyTo('a'), pollMs: 600_000 });
    const { store, redis: r } = await storeFor(prefix);
    const sub = new Redis({ port: redis.port, host: '127.0.0.1' });
    const heard: string[] = [];
    await sub.subscribe(store.keys.policyEvents);
    sub.on('message', (_c, m: string) => heard.push(m));
    try {
      const text = policyTo('b');
      await store.apply({ source: text, sha256: sha256(text), author: 't', message: 'to b' });
      await until(() => g.source.serving.servingVersion === 2, 'version 2 from the announcement');
      assert.equal(await answeredBy(g), 'b');
      await until(() => heard.length === 1, 'the announcement');
      assert.deepEqual(parseAnnouncement(heard[0] as string), { version: 2, source: text });

      const back = policyTo('a');
      const v = await r.incr(store.keys.policyVersion);
      await r.hset(store.keys.policy(v), {
        version: v,
        source: back,
        sha256: sha256(back),
        time: Date.now(),
      });
      await r.lpush(store.keys.policyHistory, v);
      await r.publish(store.keys.policyEvents, String(v));
      await until(() => g.source.serving.servingVersion === 3, 'version 3 from a number-only announcement');
      assert.equal(await answeredBy(g), 'a');
      assert.equal(parseAnnouncement('not a number'), undefined);
      assert.equal(parseAnnouncement('0'), undefined);
    } finally {
      sub.disconnect();
      r.disconnect();
      await g.close();
    }
  });

  test('apply --wait reports a gateway that refused (exit 5) and one that never answers (exit 6)', async () => {
    const prefix = freshPrefix();
    const g = await startFleetGateway('gw-w', prefix, { seed: policyTo('a') });
    const { store, redis: r } = await storeFor(prefix);
    // An older gateway that refuses every new version: a fault a real gateway of this build cannot
    // produce on demand, so this one is written by the test.
    const sub = new Redis({ port: redis.port, host: '127.0.0.1' });
    const keys = fleetKeys(prefix);
    const refuse = async (version: number) =>
      store.writeGateway(
        {
          id: 'gw-old',
          host: 'old',
          pid: 1,
          startedAt: Date.now(),
          servingVersion: 1,
          servingSha256: '',
          servingFrom: 'redis',
          lastVersion: version,
          lastResult: 'nack',
          errors: ['models.m: unknown key "future"'],
          lastAt: Date.now(),
        },
        5000,
        { id: 'gw-old', version, result: 'nack', at: Date.now() },
      );
    await refuse(1);
    await sub.subscribe(keys.policyEvents);
    sub.on('message', (_c, m) => void refuse(parseAnnouncement(m)?.version ?? 0));
    try {
      const file = await policyFile(policyTo('b'));
      const apply = cli(prefix, ['apply', file, '--wait', '--timeout', '10']);
      assert.equal((await apply.exited).code, 5, apply.stderr());
      assert.match(apply.stdout(), /gw-old\s+NACK\s+1\s+models\.m: unknown key "future"/);
      assert.match(apply.stdout(), /gw-w\s+ACK\s+2/);
      assert.match(apply.stderr(), /1 of 2 gateways refused version 2/);

      sub.disconnect();
      // A gateway that stays in the set but never acknowledges: --wait runs out of time.
      await store.writeGateway(
        { ...(await store.gateways()).find((x) => x.id === 'gw-old')!, lastVersion: 2, lastResult: 'ack' },
        20_000,
      );
      const again = cli(prefix, ['apply', await policyFile(policyTo('a')), '--wait', '--timeout', '1']);
      assert.equal((await again.exited).code, 6, again.stderr());
      assert.match(again.stderr(), /1 of 2 gateways have not acknowledged version 3/);
    } finally {
      sub.disconnect();
      r.disconnect();
      await g.close();
    }
  });

  test('the control plane validates before it writes, and says so when Redis is unreachable', async () => {
    const prefix = freshPrefix();
    const bad = await policyFile('version: 1\nmodels: { m: { variants: {} } }\n');
    const invalid = cli(prefix, ['apply', bad]);
    assert.equal((await invalid.exited).code, 1);
    assert.match(invalid.stderr(), /models\.m\.variants/);
    const { store, redis: r } = await storeFor(prefix);
    assert.equal(await store.latestVersion(), 0);
    r.disconnect();
    const down = runCli(['policy', 'status', '--redis', 'redis://user:s3cret@127.0.0.1:1']);
    const exit = await down.exited;
    assert.equal(exit.code, 4);
    assert.match(down.stderr(), /refused the connection/);
    assert.doesNotMatch(down.stderr(), /s3cret|at .*\.js:\d+/);
  });

  test('Redis stopped and restarted under load: no failed request; a version applied as it returns is picked up', async () => {
    const prefix = freshPrefix();
    const g = await startFleetGateway('gw-o', prefix, { seed: policyTo('a') });
    let failed = 0;
    let answered = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        const res = await fetch(`${g.url}/v2/models/m/infer`, { method: 'POST', body: '{}' });
        await res.arrayBuffer();
        if (res.status === 200) answered += 1;
        else failed += 1;
      }
    })();
    try {
      await until(() => answered > 20, 'traffic before the outage');
      await redis.stop();
      await until(() => !g.source.reachable(), 'the gateway to see the outage');
      const during = answered;
      await until(() => answered > during + 50, 'traffic during the outage');
      const metrics = await (await fetch(`${g.adminUrl}/metrics`)).text();
      assert.match(metrics, /^infergate_redis_up 0$/m);
      await redis.start();
      // Applied at once, before the gateway's reconnect: its subscription misses the announcement.
      const { store, redis: r } = await storeFor(prefix);
      const text = policyTo('b');
      assert.equal(
        (await store.apply({ source: text, sha256: sha256(text), author: 't', message: 'm' })).kind,
        'applied',
      );
      r.disconnect();
      await until(async () => (await answeredBy(g)) === 'b', 'version 2 served after the outage', 15_000);
      assert.equal(failed, 0);
    } finally {
      running = false;
      await load;
      await g.close();
    }
  });

  test('a gateway started while Redis is down serves its cached version, then catches up', async () => {
    const prefix = freshPrefix();
    const cachePath = path.join(await tempDir('infergate-cache-'), 'policy-cache.json');
    const first = await startFleetGateway('gw-c1', prefix, { seed: policyTo('b'), cachePath });
    await until(async () => {
      try {
        const { readFile } = await import('node:fs/promises');
        return JSON.parse(await readFile(cachePath, 'utf8')).version === 1;
      } catch {
        return false;
      }
    }, 'the cache to be written');
    await first.close();
    await redis.stop();
    let second: FleetGateway | undefined;
    try {
      second = await startFleetGateway('gw-c2', prefix, { cachePath, startupTimeoutMs: 300 });
      assert.equal(await answeredBy(second), 'b');
      assert.equal(second.source.serving.servingFrom, 'cache');
      await redis.start();
      const s = second;
      await until(
        () => s.source.serving.servingFrom === 'redis',
        'the gateway to acknowledge from Redis',
        15_000,
      );
      const { store, redis: r } = await storeFor(prefix);
      const rec = (await store.gateways()).find((x) => x.id === 'gw-c2');
      r.disconnect();
      assert.equal(rec?.servingVersion, 1);
      assert.equal(rec?.lastResult, 'ack');
    } finally {
      await redis.start();
      await second?.close();
    }
  });

  test('without Redis and without a cache the gateway does not start, and says why', async () => {
    const logger = silentLogger();
    const link = new RedisLink(parseRedisUrl('redis://127.0.0.1:1'), logger, 'test-down');
    const source = new RedisPolicySource({
      link,
      keys: fleetKeys(freshPrefix()),
      gatewayId: 'gw-x',
      host: 'test',
      pid: 1,
      logger,
      startupTimeoutMs: 200,
    });
    await assert.rejects(
      buildGateway({ policySource: source, processMetrics: false, logger }),
      /refused the connection.*pass --policy-cache FILE/,
    );
    await link.close();
  });
});

describe('fleet mode: replicas that register themselves', () => {
  test('join on heartbeat, leave within the TTL, leave at once when deregistered; unknown names ignored', async () => {
    const prefix = freshPrefix();
    const c = await startFakeReplica({ body: '{"model_name":"c","outputs":[]}' });
    const g = await startFleetGateway('gw-r', prefix, { seed: policyTo('a') });
    const { redis: r } = await storeFor(prefix);
    const regs = new RegistrationStore(r, fleetKeys(prefix));
    const beat = (backend: string, ttl: number) =>
      regs.heartbeat(
        { backend, origin: c.url, ready: true, queueDepth: 0, models: [{ name: 'mlp', versions: ['1'] }] },
        ttl,
      );
    const endpointsOfA = async () => {
      const view = (await (await fetch(`${g.adminUrl}/admin/upstreams`)).json()) as { backends: unknown };
      return (view.backends as { name: string; endpoints: { url: string; source: string }[] }[]).find(
        (x) => x.name === 'be-a',
      )?.endpoints;
    };
    try {
      assert.equal(await beat('be-a', 5000), true);
      await until(async () => (await endpointsOfA())?.length === 2, 'the registered endpoint to join');
      const eps = await endpointsOfA();
      assert.deepEqual(
        eps?.map((e) => [e.url, e.source]),
        [
          [a.url, 'policy'],
          [c.url, 'registered'],
        ],
      );
      const seen = new Set<string>();
      for (let i = 0; i < 40; i++) seen.add(await answeredBy(g));
      assert.ok(seen.has('c') && seen.has('a'), [...seen].join());

      await regs.deregister('be-a', c.url);
      await until(async () => (await endpointsOfA())?.length === 1, 'the deregistered endpoint to leave');

      // A short TTL, never refreshed: out of rotation once it runs out.
      await beat('be-a', 400);
      await until(async () => (await endpointsOfA())?.length === 2, 'the endpoint to join again');
      await until(async () => (await endpointsOfA())?.length === 1, 'the endpoint to leave at its TTL', 3000);

      await beat('no-such-backend', 5000);
      await until(
        () => g.endpoints.registrations.some((x) => x.backend === 'no-such-backend'),
        'the listing',
      );
      const all = (
        (await (await fetch(`${g.adminUrl}/admin/upstreams`)).json()) as { backends: { name: string }[] }
      ).backends;
      assert.ok(!all.some((x) => x.name === 'no-such-backend'));
    } finally {
      r.disconnect();
      await g.close();
      await c.close();
    }
  });

  test('infergate backend --register: a real replica joins, serves, and deregisters before it drains', async () => {
    const prefix = freshPrefix();
    const g = await startFleetGateway('gw-b', prefix, { seed: policyTo('a') });
    const repo = await sampleRepository();
    const port = await deadPort();
    const replica = runCli([
      'backend',
      '--model-repository',
      repo,
      '--models',
      'mlp:1',
      '--port',
      String(port),
      '--register',
      redis.url,
      '--redis-prefix',
      prefix,
      '--backend',
      'be-a',
      '--advertise',
      `http://127.0.0.1:${port}`,
    ]);
    const registered = async () => {
      const view = (await (await fetch(`${g.adminUrl}/admin/upstreams`)).json()) as {
        backends: { name: string; endpoints: { url: string; source: string }[] }[];
      };
      return (
        view.backends.find((x) => x.name === 'be-a')?.endpoints.some((e) => e.source === 'registered') ===
        true
      );
    };
    try {
      await replica.waitForLog(
        'registered',
        (r) => r.msg.startsWith("registered as an endpoint of backend 'be-a'"),
        60_000,
      );
      await until(registered, 'the replica in rotation');
      const seen = new Set<string>();
      for (let i = 0; i < 40 && seen.size < 2; i++) seen.add(await answeredBy(g, mlpBody(i)));
      assert.ok(seen.has('mlp'), [...seen].join());
      replica.child.kill('SIGTERM');
      await replica.waitForLog('deregistered', (r) => r.msg === 'deregistered');
      await until(async () => !(await registered()), 'the replica out of rotation');
      assert.equal((await replica.exited).code, 0);
    } finally {
      await replica.stop();
      await g.close();
    }
  });
});
