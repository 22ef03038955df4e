// An endpoint's standing without sockets: passive ejection (consecutive failures, doubling,
// the share of a backend that may be out), a backend's Retry-After, fail-fast, and what the
// picker is told. A fake clock; nothing is sent (the pool connects lazily, to a closed port).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import {
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_OUTLIER_DETECTION,
} from '../../gateway/policy/compile.js';
import { Endpoint, EndpointRegistry, type EndpointSettings } from '../../gateway/upstream/endpoint.js';
import { forward } from '../../gateway/upstream/forward.js';
import { RetryBudget } from '../../gateway/upstream/retry-budget.js';
import { FakeClock } from '../helpers/fake-clock.js';

const made: Endpoint[] = [];
after(async () => {
  await Promise.all(made.map((e) => e.close()));
});

function endpoints(
  n: number,
  outlier: Partial<EndpointSettings['outlierDetection']> = {},
  clock = new FakeClock(),
) {
  const settings: EndpointSettings = {
    circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
    healthCheck: { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 },
    outlierDetection: { ...DEFAULT_OUTLIER_DETECTION, ...outlier },
  };
  const list = Array.from(
    { length: n },
    (_, i) => new Endpoint(`http://127.0.0.1:${i + 1}`, { connections: 1 }, settings, clock, {}),
  );
  made.push(...list);
  return { list, clock };
}

describe('Endpoint: passive ejection', () => {
  test('ejected after consecutiveFailures in a row, for baseEjectionMs; a success resets the run', () => {
    const { list, clock } = endpoints(2, { consecutiveFailures: 3, baseEjectionMs: 1000 });
    const [a] = list as [Endpoint];
    a.recordFailure(list);
    a.recordFailure(list);
    a.recordSuccess();
    a.recordFailure(list);
    a.recordFailure(list);
    assert.equal(a.state(clock.now()), 'available', 'the success broke the run');
    a.recordFailure(list);
    assert.equal(a.state(clock.now()), 'ejected');
    assert.equal(a.returnsAt(clock.now()), 1000);
    clock.advance(999);
    assert.equal(a.available(clock.now()), false);
    clock.advance(1);
    assert.equal(a.available(clock.now()), true);
  });

  test('each repeat doubles the ejection, up to maxEjectionMs; a clean answer after it resets', () => {
    const { list, clock } = endpoints(2, { consecutiveFailures: 1, baseEjectionMs: 100, maxEjectionMs: 350 });
    const [a] = list as [Endpoint];
    const lengths: number[] = [];
    for (let i = 0; i < 4; i++) {
      a.recordFailure(list);
      lengths.push(a.ejectedUntil - clock.now());
      clock.advance(a.ejectedUntil - clock.now());
    }
    assert.deepEqual(lengths, [100, 200, 350, 350]);
    a.recordSuccess();
    a.recordFailure(list);
    assert.equal(a.ejectedUntil - clock.now(), 100);
  });

  test('never more than maxEjectionPercent of a backend at once, but always at least one', () => {
    const { list, clock } = endpoints(4, { consecutiveFailures: 1, maxEjectionPercent: 50 });
    for (const e of list) e.recordFailure(list);
    assert.equal(list.filter((e) => !e.available(clock.now())).length, 2);
    const pair = endpoints(2, { consecutiveFailures: 1, maxEjectionPercent: 10 });
    for (const e of pair.list) e.recordFailure(pair.list);
    assert.equal(pair.list.filter((e) => !e.available(pair.clock.now())).length, 1);
  });
});

describe('Endpoint: other reasons to stay out', () => {
  test("a backend's Retry-After keeps it out that long, at most 30 s", () => {
    const { list, clock } = endpoints(1);
    const [a] = list as [Endpoint];
    a.backOff(7);
    assert.equal(a.state(clock.now()), 'backing_off');
    assert.equal(a.returnsAt(clock.now()), 7000);
    a.backOff(3600);
    assert.equal(a.returnsAt(clock.now()), 30_000);
    a.backOff(Number.NaN);
    assert.equal(a.returnsAt(clock.now()), 30_000, 'a missing or bad Retry-After changes nothing');
  });

  test('fail-fast opens the breaker at once; the picker sees circuit_open', () => {
    const { list, clock } = endpoints(1);
    const [a] = list as [Endpoint];
    assert.equal(a.breakerState, 'closed');
    a.failFast();
    assert.equal(a.breakerState, 'open');
    assert.equal(a.state(clock.now()), 'circuit_open');
    assert.equal(a.returnsAt(clock.now()), DEFAULT_CIRCUIT_BREAKER.resetTimeoutMs);
  });

  test('the breaker opens on the error rate once volumeThreshold calls are in', async () => {
    const { list } = endpoints(1);
    const [a] = list as [Endpoint];
    const fail = () =>
      a.run(
        async () => ({ status: 500 }),
        (r) => r.status >= 500,
      );
    const ok = () =>
      a.run(
        async () => ({ status: 200 }),
        (r) => r.status >= 500,
      );
    for (let i = 0; i < 5; i++) await ok();
    for (let i = 0; i < 4; i++) await fail();
    assert.equal(a.breakerState, 'closed', '9 calls: under the volume threshold of 10');
    await fail();
    assert.equal(a.breakerState, 'closed', '5 of 10 failed: 50 % is not more than 50 %');
    await fail();
    assert.equal(a.breakerState, 'open', '6 of 11 failed');
    assert.deepEqual(a.recent, { requests: 11, failures: 6 });
    assert.equal(await ok(), undefined, 'an open breaker refuses the call');
  });
});

describe('Endpoint: health checks and reloads', () => {
  async function readyServer(): Promise<{ url: string; close(): Promise<void> }> {
    const server = http.createServer((_req, res) => res.writeHead(200).end('{"ready":true}'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    return {
      url: `http://127.0.0.1:${port}`,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }
  const settings = (): EndpointSettings => ({
    circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
    healthCheck: { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 },
    outlierDetection: { ...DEFAULT_OUTLIER_DETECTION, consecutiveFailures: 1, baseEjectionMs: 60_000 },
  });

  test('a replica that stays ready while its answers fail keeps its ejection when checks pass', async () => {
    const srv = await readyServer();
    const clock = new FakeClock();
    const e = new Endpoint(srv.url, { connections: 1 }, settings(), clock, {});
    made.push(e);
    e.recordFailure([e, e]);
    assert.equal(e.state(clock.now()), 'ejected');
    assert.equal(await e.check(), true);
    assert.equal(await e.check(), true);
    assert.equal(e.state(clock.now()), 'ejected', 'a ready answer says nothing about failing inferences');
    await srv.close();
  });

  test('a replica that was down (refused) and answers ready again returns at once', async () => {
    const srv = await readyServer();
    const clock = new FakeClock();
    const e = new Endpoint(srv.url, { connections: 1 }, settings(), clock, {});
    made.push(e);
    e.failFast();
    assert.equal(e.state(clock.now()), 'circuit_open');
    assert.equal(await e.check(), true);
    assert.equal(e.breakerState, 'closed');
    assert.equal(e.state(clock.now()), 'available');
    await srv.close();
  });

  test('an endpoint dropped by a reload serves older snapshots until its grace ends, and can come back', async () => {
    const clock = new FakeClock();
    const registry = new EndpointRegistry(clock);
    const backend = (endpoints: string[]) => ({
      name: 'b',
      endpoints,
      circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
      healthCheck: { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 },
      outlierDetection: DEFAULT_OUTLIER_DETECTION,
    });
    registry.sync([backend(['http://127.0.0.1:1', 'http://127.0.0.1:2'])]);
    const one = registry.get('http://127.0.0.1:1');
    const two = registry.get('http://127.0.0.1:2');
    registry.sync([backend(['http://127.0.0.1:2'])], 1000);
    assert.equal(one.state(clock.now()), 'available', 'still usable by requests of the older snapshot');
    clock.advance(1000);
    await new Promise((r) => setImmediate(r));
    assert.equal(one.state(clock.now()), 'closed');
    registry.sync([backend(['http://127.0.0.1:1', 'http://127.0.0.1:2'])]);
    assert.notEqual(registry.get('http://127.0.0.1:1'), one, 'a closed endpoint is made anew');
    registry.sync([backend(['http://127.0.0.1:1'])], 1000);
    clock.advance(500);
    registry.sync([backend(['http://127.0.0.1:1', 'http://127.0.0.1:2'])], 1000);
    assert.equal(registry.get('http://127.0.0.1:2'), two, 'brought back within its grace: the same endpoint');
    clock.advance(1000);
    assert.equal(two.state(clock.now()), 'available');
    await registry.close();
  });

  test('a request holding only closed endpoints ends at once instead of spinning', async () => {
    const clock = new FakeClock();
    const { list } = endpoints(1, {}, clock);
    const [e] = list as [Endpoint];
    await e.close();
    const result = await forward(
      {
        method: 'POST',
        path: '/x',
        headers: {},
        body: Buffer.alloc(0),
        endpoints: [e],
        timeoutMs: 200,
        retries: { attempts: 2, budgetPercent: 20, backoffMs: 0, perTryTimeoutMs: 0 },
        budget: new RetryBudget(clock),
      },
      { clock, random: Math.random },
    );
    assert.equal(result.kind, 'no_endpoint');
  });
});

describe('Endpoint: the half-open probe', () => {
  /** An endpoint whose breaker a refused connection opened and whose 20 ms reset has run out. */
  async function halfOpen(): Promise<{ e: Endpoint; clock: FakeClock }> {
    const clock = new FakeClock();
    const e = new Endpoint(
      'http://127.0.0.1:1',
      { connections: 1 },
      {
        circuitBreaker: { ...DEFAULT_CIRCUIT_BREAKER, resetTimeoutMs: 20 },
        healthCheck: { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 },
        outlierDetection: DEFAULT_OUTLIER_DETECTION,
      },
      clock,
      {},
    );
    made.push(e);
    e.failFast();
    // opossum's reset timer is a real one.
    await new Promise<void>((resolve) => {
      const poll = () => (e.breakerState === 'half_open' ? resolve() : setTimeout(poll, 5));
      poll();
    });
    return { e, clock };
  }
  const failedOn5xx = (r: { status: number }) => r.status >= 500;

  test('after the reset timeout one probe goes through, others are refused, and its success closes the breaker', async () => {
    const { e, clock } = await halfOpen();
    assert.equal(e.state(clock.now()), 'available', 'half-open: a probe may go');
    let answer: (r: { status: number }) => void = () => {};
    const probe = e.run(
      () =>
        new Promise<{ status: number }>((r) => {
          answer = r;
        }),
      failedOn5xx,
    );
    assert.equal(e.state(clock.now()), 'circuit_open', 'the probe is out');
    assert.equal(await e.run(async () => ({ status: 200 }), failedOn5xx), undefined);
    answer({ status: 200 });
    assert.deepEqual(await probe, { status: 200 });
    assert.equal(e.breakerState, 'closed');
  });

  test('a failed probe opens the breaker again', async () => {
    const { e } = await halfOpen();
    await e.run(async () => ({ status: 500 }), failedOn5xx);
    assert.equal(e.breakerState, 'open');
  });
});
