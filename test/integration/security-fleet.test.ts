// Auth and rate limits in fleet mode, with a real redis-server: keys created and revoked with the
// CLI reach every gateway (the revocation within the announcement's delivery), four gateways hold
// one global limit within 2% for STEADY_SECONDS at twice the rate (three of them with skewed clocks)
// and give a burst timed at a
// second's boundary no more than GCRA allows, and with Redis stopped the limit fails open (this
// gateway's share) or closed (503), as the policy says, logged once and counted.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../common/clock.js';
import { createLogger, type Logger } from '../../common/logging.js';
import { parseRedisUrl } from '../../common/redis/connection.js';
import { fleetKeys } from '../../common/redis/keys.js';
import { RedisLink } from '../../common/redis/link.js';
import { MemoryRateStore } from '../../gateway/admission/gcra.js';
import { RedisKeyStore } from '../../gateway/fleet/redis-keys.js';
import { RedisPolicySource, sha256 as textSha } from '../../gateway/fleet/redis-source.js';
import { RedisPolicyStore } from '../../gateway/fleet/redis-store.js';
import { type FleetSecurity, fleetSecurity } from '../../gateway/fleet/security.js';
import { buildGateway, type Gateway, type PolicyEvent } from '../../gateway/server.js';
import { removeTempDirs, waitFor } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';
import { type FakeReplica, startFakeReplica } from '../helpers/gateway.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { send } from '../helpers/security.js';

/**
 * How long the global limit is offered twice its rate. The issue asks for 10 s; the whole file
 * then takes about 20 s, well within the suite's budget.
 */
const STEADY_SECONDS = 10;

let redis: RedisServer;
let replica: FakeReplica;
let prefixes = 0;

before(async () => {
  redis = await startRedis();
  replica = await startFakeReplica();
});
after(async () => {
  await replica.close();
  await redis.close();
  await removeTempDirs();
});

interface FleetGateway {
  gateway: Gateway;
  url: string;
  adminUrl: string;
  security: FleetSecurity;
  link: RedisLink;
  events: PolicyEvent[];
  logs: string[];
  close(): Promise<void>;
}

function policy(limits: string): string {
  return `version: 1
defaults: { healthCheck: { intervalMs: 0 } }
backends:
  pool: { endpoints: [${replica.url}] }
models:
  m: { variants: { v: { backend: pool, model: m } } }
  steady: { variants: { v: { backend: pool, model: steady } }, rateLimit: { requestsPerSecond: 100, burst: 20 } }
  edge: { variants: { v: { backend: pool, model: edge } }, rateLimit: { requestsPerSecond: 100, burst: 10 } }
  share: { variants: { v: { backend: pool, model: share } }, rateLimit: { requestsPerSecond: 20, burst: 20 } }
auth:
  required: false
${limits}`;
}

async function startFleetGateway(
  id: string,
  prefix: string,
  seed: string,
  skewMs = 0,
): Promise<FleetGateway> {
  const logs: string[] = [];
  const logger: Logger = createLogger({
    name: id,
    level: 'info',
    destination: { write: (s: string) => logs.push(s) },
  });
  const keys = fleetKeys(prefix);
  const link = new RedisLink(parseRedisUrl(redis.url), logger, `test-${id}`);
  await link.start(2000);
  const security = await fleetSecurity(link, keys, logger, {
    pollMs: 200,
    countEveryMs: 200,
    liveWithinMs: 1000,
  });
  const source = new RedisPolicySource({
    link,
    keys,
    gatewayId: id,
    host: 'test',
    pid: process.pid,
    logger,
    pollMs: 200,
    heartbeatMs: 200,
    ttlMs: 1000,
    seed: { text: seed, origin: 'seed.yaml' },
  });
  const events: PolicyEvent[] = [];
  const gateway = await buildGateway({
    policySource: source,
    // A gateway whose clock is off by skewMs: global limits must not care.
    clock: { ...systemClock, now: () => performance.now() + skewMs },
    processMetrics: false,
    logger,
    security,
    onPolicyEvent: (e) => events.push(e),
  });
  const url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  const adminUrl = await gateway.admin.listen({ host: '127.0.0.1', port: 0 });
  return {
    gateway,
    url,
    adminUrl,
    security,
    link,
    events,
    logs,
    async close() {
      security.keys.close();
      security.globalRates.close();
      await gateway.shutdown();
      await link.close();
    },
  };
}

async function fleet(
  n: number,
  seed: string,
  skews: readonly number[] = [],
): Promise<{ prefix: string; gateways: FleetGateway[] }> {
  const prefix = `sec${++prefixes}:`;
  const gateways: FleetGateway[] = [];
  for (let i = 0; i < n; i++) gateways.push(await startFleetGateway(`g${i}`, prefix, seed, skews[i] ?? 0));
  return { prefix, gateways };
}

/** Resolves once `check` holds for the directory, checked now and after every reload. */
function whenKeys(g: FleetGateway, check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    g.security.keys.onReload(() => {
      if (check()) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

describe('API keys in Redis', () => {
  test('created with the CLI, accepted everywhere; revoked with the CLI, refused everywhere at once', async () => {
    const { prefix, gateways } = await fleet(2, policy(''));
    try {
      const flags = ['--redis', redis.url, '--redis-prefix', prefix];
      const created = runCli(['keys', 'create', '--id', 'team-x', '--models', 'm', '--rps', '50', ...flags]);
      assert.equal((await created.exited).code, 0, created.stderr());
      const key = created.stdout().trim();
      assert.match(key, /^igk_[A-Za-z0-9_-]{32}$/);
      assert.ok(!created.stderr().includes('warning'), created.stderr());
      const hash = textSha(key);
      for (const g of gateways)
        await whenKeys(g, () => g.security.keys.get(hash) !== undefined, 'the new key');
      for (const g of gateways) {
        const a = await send(g.url, {
          path: '/v2/models/m/infer',
          headers: ['authorization', `Bearer ${key}`],
        });
        assert.equal(a.status, 200, a.text);
        assert.equal(a.headers['ratelimit-policy'], '"key";q=50;w=1');
      }
      const dup = runCli(['keys', 'create', '--id', 'team-x', ...flags]);
      assert.equal((await dup.exited).code, 3, 'an id is never reused');

      const revokedAt = performance.now();
      const revoke = runCli(['keys', 'revoke', 'team-x', ...flags]);
      const waits = gateways.map((g) =>
        whenKeys(g, () => g.security.keys.get(hash)?.revoked === true, 'the revocation'),
      );
      assert.equal((await revoke.exited).code, 0, revoke.stderr());
      await Promise.all(waits);
      // The announcement, not the 200 ms poll, carried it (CLI start-up included in the time).
      const tookMs = performance.now() - revokedAt;
      for (const g of gateways) {
        const a = await send(g.url, { path: '/v2/models/m/infer', headers: ['x-api-key', key] });
        assert.equal(a.status, 401);
        assert.equal(a.code, 'GW_ERR_UNAUTHENTICATED');
        assert.match(a.text, /team-x' was revoked/);
      }
      assert.ok(tookMs < 5000, `revocation took ${tookMs} ms`);

      // Written by the store directly: an expired key, and one for every model.
      const g0 = gateways[0] as FleetGateway;
      const store = new RedisKeyStore(g0.link.cmd, fleetKeys(prefix));
      const base = {
        models: undefined,
        requestsPerSecond: undefined,
        burst: undefined,
        createdAt: Date.now(),
        revokedAt: undefined,
      };
      await store.create({
        ...base,
        id: 'lapsed',
        sha256: textSha('igk_lapsed'),
        expiresAt: Date.now() - 1000,
      });
      await store.create({ ...base, id: 'any', sha256: textSha('igk_any'), expiresAt: undefined });
      await whenKeys(g0, () => g0.security.keys.get(textSha('igk_any')) !== undefined, 'the two keys');
      const lapsed = await send(g0.url, { path: '/v2/models/m/infer', headers: ['x-api-key', 'igk_lapsed'] });
      assert.equal(lapsed.status, 401);
      assert.match(lapsed.text, /'lapsed' has expired/);
      assert.equal(
        (await send(g0.url, { path: '/v2/models/share/infer', headers: ['x-api-key', 'igk_any'] })).status,
        200,
      );

      const list = runCli(['keys', 'list', ...flags]);
      assert.equal((await list.exited).code, 0);
      assert.match(list.stdout(), /^ID\s+STATE\s+MODELS/);
      assert.match(list.stdout(), /team-x\s+revoked\s+m\s+50/);
      assert.match(list.stdout(), /lapsed\s+expired\s+\*/);
      assert.ok(
        !list.stdout().includes(key) && !list.stdout().includes(hash),
        'neither key nor hash is listed',
      );
    } finally {
      await Promise.all(gateways.map((g) => g.close()));
    }
  });
});

/** Fires `count` requests at `model`, round robin over the gateways, one every `everyMs`. */
async function offer(gateways: FleetGateway[], model: string, count: number, everyMs: number) {
  const agents = gateways.map(() => new http.Agent({ keepAlive: true, maxSockets: 64 }));
  const statuses: number[] = [];
  const sentAt: number[] = [];
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const due = t0 + i * everyMs;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const g = i % gateways.length;
    sentAt.push(performance.now());
    pending.push(
      new Promise<void>((resolve, reject) => {
        const req = http.request(`${(gateways[g] as FleetGateway).url}/v2/models/${model}/infer`, {
          method: 'POST',
          agent: agents[g],
          headers: { 'content-type': 'application/json', 'content-length': '2' },
        });
        req.on('response', (res) => {
          statuses.push(res.statusCode ?? 0);
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end('{}');
      }),
    );
  }
  const sentSeconds = (performance.now() - t0) / 1000;
  await Promise.all(pending);
  for (const a of agents) a.destroy();
  return { statuses, sentAt, sentSeconds, admitted: statuses.filter((s) => s === 200).length };
}

describe('one global limit across four gateways', () => {
  test(`twice the rate for ${STEADY_SECONDS} s: admitted within 2% of the limit; a burst at a second's edge gets no more than GCRA allows`, async (t) => {
    // Three of the four with clocks one, two and ten minutes ahead: the decisions use Redis's clock.
    // (Ahead only: the gateway's clock is monotonic from 0, and code may read 0 as "never".)
    const { gateways } = await fleet(4, policy('rateLimit: { mode: global }\n'), [60_000, 120_000, 600_000]);
    try {
      const rate = 100;
      // A burst of 200 ms: a pause of the event loop (other processes on the CPUs) shorter than
      // that loses nothing of what accrued.
      const steadyBurst = 20;
      const burst = 10;
      const run = await offer(gateways, 'steady', 2 * rate * STEADY_SECONDS, 1000 / (2 * rate));
      // What one exact GCRA would admit of the requests as they were really sent: the client lags
      // on busy CPUs, and a pause longer than the burst loses what it would have accrued.
      let now = 0;
      const simulated = new MemoryRateStore(() => now);
      const bucket = { key: 's', scope: 'model', rate: { requestsPerSecond: rate, burst: steadyBurst } };
      let expected = 0;
      for (const at of run.sentAt) {
        now = at;
        if (simulated.take([bucket]).allowed) expected += 1;
      }
      // And never more than the limit allows over the whole run.
      assert.ok(
        run.admitted <= steadyBurst + rate * run.sentSeconds + 2,
        `admitted ${run.admitted}: over the limit`,
      );
      const error = Math.abs(run.admitted - expected) / (rate * STEADY_SECONDS);
      assert.ok(
        error <= 0.02,
        `admitted ${run.admitted}, expected ${expected} (${(error * 100).toFixed(2)}% off)`,
      );
      t.diagnostic(
        `steady: ${run.admitted} admitted, ${expected} expected (${(steadyBurst + rate * run.sentSeconds).toFixed(1)} at an even pace), ${(error * 100).toFixed(2)}% off`,
      );
      const byStatus: Record<number, number> = {};
      for (const st of run.statuses) byStatus[st] = (byStatus[st] ?? 0) + 1;
      t.diagnostic(`statuses: ${JSON.stringify(byStatus)}`);
      assert.deepEqual([...new Set(run.statuses)].sort(), [200, 429]);

      // A burst of twice the rate, half 50 ms before a second's boundary and half just after: a
      // fixed window would pass up to 2 x 100; GCRA passes the burst and what accrued meanwhile.
      const toEdge = 1000 - (Date.now() % 1000);
      await new Promise((r) => setTimeout(r, toEdge < 200 ? toEdge + 950 : toEdge - 50));
      const t0 = performance.now();
      const [a, b] = await Promise.all([
        offer(gateways, 'edge', rate, 0),
        new Promise((r) => setTimeout(r, 100)).then(() => offer(gateways, 'edge', rate, 0)),
      ]);
      const seconds = (performance.now() - t0) / 1000;
      const admitted = a.admitted + b.admitted;
      t.diagnostic(`edge: ${admitted} of ${2 * rate} admitted in ${seconds.toFixed(3)} s`);
      assert.ok(admitted <= burst + rate * seconds + 1, `edge burst: ${admitted} in ${seconds.toFixed(3)} s`);
      assert.ok(admitted >= burst, `edge burst: at least the burst (${admitted})`);
    } finally {
      await Promise.all(gateways.map((g) => g.close()));
    }
  });
});

async function burstAt(g: FleetGateway, model: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await send(g.url, { path: `/v2/models/${model}/infer` })).status);
  return out;
}

describe('Redis stopped', () => {
  test('failureMode open: each gateway keeps its share (limit / live gateways); closed: 503; both logged once', async () => {
    const { prefix, gateways } = await fleet(2, policy('rateLimit: { mode: global, failureMode: open }\n'));
    const [g0, g1] = gateways as [FleetGateway, FleetGateway];
    try {
      await waitFor('both gateways counted live', async () =>
        g0.security.globalRates.liveGateways === 2 ? true : undefined,
      );
      await redis.stop();
      await waitFor('the outage seen', async () =>
        !g0.link.reachable && !g1.link.reachable ? true : undefined,
      );
      // 20/s with a burst of 20, shared by 2: a burst of 10 here (plus what accrues meanwhile).
      const statuses = await burstAt(g0, 'share', 20);
      const admitted = statuses.filter((s) => s === 200).length;
      assert.ok(admitted >= 10 && admitted <= 12, `admitted ${admitted} of 20: ${statuses.join(',')}`);
      assert.equal(statuses.filter((s) => s !== 200 && s !== 429).length, 0);
      const warned = g0.logs.filter((l) => l.includes('failing open'));
      assert.equal(warned.length, 1, 'logged once');
      const metrics = await (await fetch(`${g0.adminUrl}/metrics`)).text();
      assert.match(metrics, /infergate_rate_limit_fallback_total\{failure_mode="open"\} 20/);

      // Back, then the same policy with failureMode closed.
      await redis.start();
      await waitFor('Redis back', async () => (g0.link.reachable && g1.link.reachable ? true : undefined));
      const store = new RedisPolicyStore(g0.link.cmd, fleetKeys(prefix));
      const closed = policy('rateLimit: { mode: global, failureMode: closed }\n');
      await store.apply({ source: closed, sha256: textSha(closed), author: 'test', message: 'closed' });
      await waitFor('closed applied', async () =>
        gateways.every((g) => g.gateway.snapshot.policy.rateLimit.failureMode === 'closed')
          ? true
          : undefined,
      );
      assert.equal((await send(g0.url, { path: '/v2/models/share/infer' })).status, 200);
      await redis.stop();
      await waitFor('the outage seen', async () => (!g0.link.reachable ? true : undefined));
      const no = await send(g0.url, { path: '/v2/models/share/infer' });
      assert.equal(no.status, 503);
      assert.equal(no.code, 'GW_ERR_RATE_LIMIT_UNAVAILABLE');
      assert.equal(no.headers['retry-after'], '1');
      // A model without a limit is served all along.
      assert.equal((await send(g0.url, { path: '/v2/models/m/infer' })).status, 200);
      assert.equal(g0.logs.filter((l) => l.includes('failing closed')).length, 1);
      await redis.start();
      await waitFor('Redis back', async () => (g0.link.reachable ? true : undefined));
      await waitFor('served again', async () =>
        (await send(g0.url, { path: '/v2/models/share/infer' })).status === 200 ? true : undefined,
      );
    } finally {
      await redis.start();
      await Promise.all(gateways.map((g) => g.close()));
    }
  });
});
