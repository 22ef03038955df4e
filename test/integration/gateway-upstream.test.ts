// Upstream behaviour through a real gateway: deadlines, retries on connect errors and 503s to
// another endpoint, no retry after a 4xx or a 500, the retry budget, and endpoint spreading. Real
// backends where they can show it; a fake replica (test/helpers/gateway.ts) for statuses and
// delays a real replica does not produce on demand; a port with nothing on it for connect errors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mulberry32 } from '../../models/reference.js';
import { assertErrorBody, request, sampleValue, scrape, waitFor } from '../helpers/backend.js';
import {
  deadPort,
  type FakeReplica,
  gatewayTestbed,
  mlpBody,
  policyYaml,
  type RunningGateway,
} from '../helpers/gateway.js';

const bed = gatewayTestbed({ a: [{ name: 'mlp', version: '1' }], b: [{ name: 'mlp', version: '1' }] });
const body = mlpBody(5);
const real = bed.endpoint('a');
const real2 = bed.endpoint('b');

async function gateway(
  endpoints: string[],
  opts: {
    defaults?: Record<string, unknown>;
    timeoutMs?: number;
    retries?: { attempts?: number; budgetPercent?: number; backoffMs?: number; perTryTimeoutMs?: number };
    bodyLimit?: number;
  } = {},
): Promise<RunningGateway> {
  return bed.gateway({
    policy: policyYaml({
      variants: { only: { endpoints, version: '1' } },
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.retries === undefined ? {} : { retries: opts.retries }),
      ...(opts.defaults === undefined ? {} : { defaults: opts.defaults }),
    }),
    random: mulberry32(7),
    ...(opts.bodyLimit === undefined ? {} : { bodyLimit: opts.bodyLimit }),
  });
}

const fake = (mode: Partial<FakeReplica['mode']>) => bed.fake(mode);

const send = (g: RunningGateway) =>
  request(`${g.url}/v2/models/m/infer`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });

async function metrics(g: RunningGateway) {
  return (await scrape(g.adminUrl)).samples;
}

describe('deadlines', () => {
  test("a backend slower than the model's timeoutMs gets a 504 GW_ERR_UPSTREAM_TIMEOUT at the deadline", async () => {
    const slow = await fake({ delayMs: 3000 });
    const g = await gateway([slow.url], { timeoutMs: 150 });
    const started = performance.now();
    const res = await send(g);
    const took = performance.now() - started;
    assertErrorBody(res, 504, 'GW_ERR_UPSTREAM_TIMEOUT');
    assert.ok(took >= 145 && took < 1500, `answered after ${took.toFixed(0)} ms`);
    const samples = await metrics(g);
    assert.equal(
      sampleValue(samples, 'infergate_upstream_attempts_total', { endpoint: slow.url, outcome: 'timeout' }),
      1,
    );
  });
});

describe('retries', () => {
  test('an attempt past perTryTimeoutMs is abandoned and retried on another endpoint, within the deadline', async () => {
    const hung = await fake({ hang: true });
    const g = await gateway([hung.url, real.url], {
      timeoutMs: 2000,
      retries: { attempts: 2, perTryTimeoutMs: 100, backoffMs: 1, budgetPercent: 100 },
      defaults: { outlierDetection: { consecutiveFailures: 1000 }, healthCheck: { intervalMs: 0 } },
    });
    for (let i = 0; i < 12; i++) {
      const started = performance.now();
      const res = await send(g);
      const took = performance.now() - started;
      assert.equal(res.status, 200, res.body.toString());
      assert.ok(took < 1000, `answered after ${took.toFixed(0)} ms, not at the 2 s deadline`);
    }
    assert.ok(hung.received.length > 0, 'some first attempts went to the hung replica');
    const samples = await metrics(g);
    assert.equal(
      sampleValue(samples, 'infergate_retries_total', { model: 'm', reason: 'timeout' }),
      hung.received.length,
    );
  });

  test('every attempt past perTryTimeoutMs: 504 GW_ERR_UPSTREAM_TIMEOUT before the deadline', async () => {
    const hung = await fake({ hang: true });
    const g = await gateway([hung.url], {
      timeoutMs: 5000,
      retries: { attempts: 1, perTryTimeoutMs: 100, backoffMs: 1 },
      defaults: { outlierDetection: { consecutiveFailures: 1000 }, healthCheck: { intervalMs: 0 } },
    });
    const started = performance.now();
    assertErrorBody(await send(g), 504, 'GW_ERR_UPSTREAM_TIMEOUT');
    const took = performance.now() - started;
    assert.ok(took >= 195 && took < 2000, `two attempts of 100 ms, answered after ${took.toFixed(0)} ms`);
    assert.equal(hung.received.length, 2);
  });

  test('connect errors are retried on another endpoint: no client sees them', async () => {
    const dead = `http://127.0.0.1:${await deadPort()}`;
    // Half the first attempts fail here, more than the default budget (20 %) allows for long.
    const g = await gateway([dead, real.url], { retries: { budgetPercent: 100 } });
    for (let i = 0; i < 60; i++) {
      const res = await send(g);
      assert.equal(res.status, 200, res.body.toString());
    }
    const samples = await metrics(g);
    const failed = sampleValue(samples, 'infergate_upstream_attempts_total', {
      endpoint: dead,
      outcome: 'network_error',
    });
    assert.ok((failed ?? 0) > 0, 'some attempts went to the dead endpoint');
    assert.equal(
      sampleValue(samples, 'infergate_retries_total', { model: 'm', reason: 'network_error' }),
      failed,
    );
  });

  test('a 503 (replica overloaded or draining) is retried on another endpoint', async () => {
    const busy = await fake({ status: 503, retryAfter: '1' });
    const g = await gateway([busy.url, real.url]);
    for (let i = 0; i < 40; i++) assert.equal((await send(g)).status, 200);
    assert.ok(busy.received.length > 0);
    const samples = await metrics(g);
    assert.equal(
      sampleValue(samples, 'infergate_retries_total', { model: 'm', reason: 'overloaded' }),
      busy.received.length,
    );
  });

  test('a 4xx is never retried and passes through with its code', async () => {
    const a = await fake({ status: 400 });
    const b = await fake({ status: 400 });
    const g = await gateway([a.url, b.url], { retries: { attempts: 3 } });
    for (let i = 0; i < 20; i++) assertErrorBody(await send(g), 400, 'BE_ERR_FAKE_400');
    assert.equal(a.received.length + b.received.length, 20, 'one attempt per request');
  });

  test('a 500 is not retried and becomes a 502 GW_ERR_UPSTREAM_ERROR naming the backend code', async () => {
    const broken = await fake({ status: 500 });
    const g = await gateway([broken.url], { retries: { attempts: 3 } });
    const res = await send(g);
    const err = assertErrorBody(res, 502, 'GW_ERR_UPSTREAM_ERROR');
    assert.match(err.error, /answered 500 \(BE_ERR_FAKE_500\)/);
    assert.equal(broken.received.length, 1);
  });

  test('no endpoint reachable: 503 GW_ERR_UPSTREAM_UNAVAILABLE after trying each, then GW_ERR_NO_HEALTHY_ENDPOINT at once', async () => {
    const g = await gateway(
      [`http://127.0.0.1:${await deadPort()}`, `http://127.0.0.1:${await deadPort()}`],
      {
        retries: { attempts: 2, backoffMs: 1 },
      },
    );
    const res = await send(g);
    assertErrorBody(res, 503, 'GW_ERR_UPSTREAM_UNAVAILABLE');
    assert.equal(res.headers.get('retry-after'), '1');
    const samples = await metrics(g);
    const attempts = samples
      .filter((s) => s.name === 'infergate_upstream_attempts_total' && s.labels.outcome === 'network_error')
      .reduce((a, s) => a + s.value, 0);
    assert.equal(attempts, 2, 'each endpoint once: a refused connection opens its breaker at once');
    const next = await send(g);
    assertErrorBody(next, 503, 'GW_ERR_NO_HEALTHY_ENDPOINT');
    assert.ok(Number(next.headers.get('retry-after')) >= 1);
    const upstreams = (await (await fetch(`${g.adminUrl}/admin/upstreams`)).json()) as {
      backends: { endpoints: { breaker: string }[] }[];
    };
    assert.deepEqual(
      upstreams.backends.flatMap((b) => b.endpoints.map((e) => e.breaker)),
      ['open', 'open'],
    );
  });

  test("every replica overloaded: the backend's 503 and its Retry-After reach the client, and are honoured", async () => {
    const a = await fake({ status: 503, retryAfter: '7' });
    const g = await gateway([a.url], { retries: { attempts: 1, backoffMs: 1 } });
    const res = await send(g);
    assertErrorBody(res, 503, 'BE_ERR_FAKE_503');
    assert.equal(res.headers.get('retry-after'), '7');
    assert.equal(a.received.length, 1, 'not asked again before its Retry-After');
    // Until then the gateway answers for it, at once, without sending anything.
    const next = await send(g);
    assertErrorBody(next, 503, 'GW_ERR_NO_HEALTHY_ENDPOINT');
    const wait = Number(next.headers.get('retry-after'));
    assert.ok(wait >= 6 && wait <= 7, `Retry-After ${wait}`);
    assert.equal(a.received.length, 1);
  });

  test('the retry budget caps retries at the floor plus budgetPercent of requests', async () => {
    // A replica that always answers 503 (no Retry-After); ejection and breakers off, so that only
    // the budget limits the retries.
    const busy = await fake({ status: 503 });
    const g = await gateway([busy.url, real.url], {
      retries: { attempts: 1, budgetPercent: 0, backoffMs: 0 },
      defaults: {
        outlierDetection: { consecutiveFailures: 1000 },
        healthCheck: { intervalMs: 0 },
        circuitBreaker: { errorThresholdPercentage: 100 },
      },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 80; i++) statuses.push((await send(g)).status);
    const samples = await metrics(g);
    const retries = sampleValue(samples, 'infergate_retries_total', { model: 'm', reason: 'overloaded' });
    const denied = sampleValue(samples, 'infergate_retry_budget_exhausted_total', { model: 'm' }) ?? 0;
    assert.equal(retries, 10, 'the floor of 10 retries per 10 s window');
    assert.ok(denied > 0, 'later failures were not retried');
    assert.equal(statuses.filter((s) => s === 503).length, denied);
    assert.equal(statuses.filter((s) => s === 200).length, 80 - denied);
  });
});

describe('deadlines in the pool queue', () => {
  test('a request queued behind a hung one in the connection pool still ends at its own deadline', async () => {
    const hung = await fake({ hang: true });
    const policy = `version: 1
defaults: { healthCheck: { intervalMs: 0 }, retries: { attempts: 0 } }
backends:
  one: { endpoints: [${hung.url}] }
models:
  slow-model:
    variants: { v: { backend: one, model: a } }
    timeoutMs: 1500
  quick-model:
    variants: { v: { backend: one, model: b } }
    timeoutMs: 200
`;
    const g = await bed.gateway({ policy, pools: { connections: 1 } });
    const post = (model: string) =>
      request(`${g.url}/v2/models/${model}/infer`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
    const arrived = hung.nextRequest();
    const first = post('slow-model');
    await arrived;
    const started = performance.now();
    const res = await post('quick-model');
    const took = performance.now() - started;
    assertErrorBody(res, 504, 'GW_ERR_UPSTREAM_TIMEOUT');
    assert.ok(took < 1000, `the queued request ended after ${took.toFixed(0)} ms (its timeout: 200)`);
    assert.equal(hung.received.length, 1, 'the queued request was never sent');
    assertErrorBody(await first, 504, 'GW_ERR_UPSTREAM_TIMEOUT');
  });
});

describe('clients that go away', () => {
  test('a client that disconnects cancels its attempt and frees its concurrency slot at once', async () => {
    const hung = await fake({ hang: true });
    const g = await gateway([hung.url], {
      timeoutMs: 5000,
      defaults: { healthCheck: { intervalMs: 0 }, concurrency: { maxInFlight: 1, maxQueue: 0 } },
    });
    const gone = new AbortController();
    const arrived = hung.nextRequest();
    const first = fetch(`${g.url}/v2/models/m/infer`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      signal: gone.signal,
    }).catch((e: Error) => e.name);
    await arrived;
    gone.abort();
    assert.equal(await first, 'AbortError');
    await waitFor('the upstream attempt abandoned', async () => {
      const doc = (await (await fetch(`${g.adminUrl}/admin/upstreams`)).json()) as {
        backends: { endpoints: { outstanding: number }[] }[];
      };
      return doc.backends[0]?.endpoints[0]?.outstanding === 0 ? true : undefined;
    });
    hung.mode.hang = false;
    const next = await send(g);
    assert.equal(next.status, 200, 'the slot was freed (a held slot would give 503 GW_ERR_OVERLOADED)');
    const samples = await metrics(g);
    assert.equal(
      sampleValue(samples, 'infergate_requests_total', { model: 'm', variant: 'only', code: '499' }),
      1,
    );
  });
});

describe('endpoint picking and limits', () => {
  test('P2C spreads requests over the endpoints of a backend', async () => {
    const g = await gateway([real.url, real2.url]);
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 25; i++) assert.equal((await send(g)).status, 200);
      }),
    );
    const samples = await metrics(g);
    const a =
      sampleValue(samples, 'infergate_upstream_attempts_total', { endpoint: real.url, outcome: 'ok' }) ?? 0;
    const b =
      sampleValue(samples, 'infergate_upstream_attempts_total', { endpoint: real2.url, outcome: 'ok' }) ?? 0;
    assert.equal(a + b, 200);
    assert.ok(Math.min(a, b) >= 50, `spread ${a} / ${b}`);
  });

  test('a body over the limit is a 413 GW_ERR_BODY_TOO_LARGE and is never forwarded', async () => {
    const f = await fake({});
    const g = await gateway([f.url], { bodyLimit: 1024 });
    const res = await request(`${g.url}/v2/models/m/infer`, {
      method: 'POST',
      body: 'x'.repeat(4096),
      headers: { 'content-type': 'application/json' },
    });
    assertErrorBody(res, 413, 'GW_ERR_BODY_TOO_LARGE');
    assert.equal(f.received.length, 0);
  });
});
