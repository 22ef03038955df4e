// An endpoint's standing without sockets: passive ejection (consecutive failures, doubling,
// the share of a backend that may be out), a backend's Retry-After, fail-fast, and what the
// picker is told, all reached through admit() and settle(). A fake clock; nothing is sent (the
// pool connects lazily, to a closed port).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import {
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_OUTLIER_DETECTION,
} from '../../gateway/policy/compile.js';
import { createDispatcher } from '../../gateway/upstream/connection.js';
import {
  Endpoint,
  EndpointRegistry,
  type EndpointSettings,
  type Settlement,
} from '../../gateway/upstream/endpoint.js';
import { forward } from '../../gateway/upstream/forward.js';
import {
  CANCELLED,
  CLIENT_ERROR,
  OK,
  PER_TRY_TIMEOUT,
  SERVER_ERROR,
  TIMEOUT,
} from '../../gateway/upstream/outcome.js';
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
  const list = Array.from({ length: n }, (_, i) => endpoint(`http://127.0.0.1:${i + 1}`, settings, clock));
  return { list, clock };
}

function endpoint(origin: string, settings: EndpointSettings, clock: FakeClock): Endpoint {
  const e = new Endpoint(origin, createDispatcher(origin, { connections: 1 }), settings, clock, {});
  made.push(e);
  return e;
}

/** One attempt, admitted and settled with `outcome`; false when the breaker refused it. */
function attempt(e: Endpoint, outcome: Settlement, peers: readonly Endpoint[] = [e]): boolean {
  if (!e.admit()) return false;
  e.settle(outcome, peers);
  return true;
}
const failed = (e: Endpoint, peers?: readonly Endpoint[]) => attempt(e, SERVER_ERROR, peers);
const answered = (e: Endpoint) => attempt(e, OK);
const refusedConnection = (e: Endpoint) => attempt(e, { kind: 'network_error', code: 'ECONNREFUSED' });

describe('Endpoint.settle: every consequence of an outcome, in one place', () => {
  // After one failed attempt (a run of 1, one breaker failure), one more attempt settles as:
  const table: {
    outcome: Settlement;
    run: number;
    breakerFailures: number;
    state: string;
  }[] = [
    { outcome: OK, run: 0, breakerFailures: 1, state: 'available' },
    { outcome: CLIENT_ERROR, run: 0, breakerFailures: 1, state: 'available' },
    { outcome: SERVER_ERROR, run: 2, breakerFailures: 2, state: 'available' },
    {
      outcome: { kind: 'overloaded', retryAfterSeconds: 7 },
      run: 2,
      breakerFailures: 2,
      state: 'backing_off',
    },
    {
      outcome: { kind: 'overloaded', retryAfterSeconds: Number.NaN },
      run: 2,
      breakerFailures: 2,
      state: 'available',
    },
    {
      outcome: { kind: 'network_error', code: 'ECONNRESET' },
      run: 2,
      breakerFailures: 2,
      state: 'available',
    },
    {
      outcome: { kind: 'network_error', code: 'ECONNREFUSED' },
      run: 2,
      breakerFailures: 2,
      state: 'circuit_open',
    },
    {
      outcome: { kind: 'network_error', code: 'UND_ERR_CONNECT_TIMEOUT' },
      run: 2,
      breakerFailures: 2,
      state: 'circuit_open',
    },
    { outcome: TIMEOUT, run: 2, breakerFailures: 2, state: 'available' },
    { outcome: PER_TRY_TIMEOUT, run: 2, breakerFailures: 2, state: 'available' },
    // The client went away: nothing said of the replica; neither count moves.
    { outcome: CANCELLED, run: 1, breakerFailures: 1, state: 'available' },
  ];
  for (const c of table) {
    const name = 'code' in c.outcome ? `network_error ${c.outcome.code}` : JSON.stringify(c.outcome);
    test(`${name}: run of failures ${c.run}, breaker failures ${c.breakerFailures}, ${c.state}`, () => {
      const { list, clock } = endpoints(1);
      const [a] = list as [Endpoint];
      failed(a);
      assert.equal(attempt(a, c.outcome), true);
      assert.equal(a.consecutiveFailures, c.run);
      assert.deepEqual(a.recent, { requests: 2, failures: c.breakerFailures });
      assert.equal(a.state(clock.now()), c.state);
      assert.equal(a.outstanding, 0);
    });
  }
});

describe('Endpoint: passive ejection', () => {
  test('ejected after consecutiveFailures in a row, for baseEjectionMs; a success resets the run', () => {
    const { list, clock } = endpoints(2, { consecutiveFailures: 3, baseEjectionMs: 1000 });
    const [a] = list as [Endpoint];
    failed(a, list);
    failed(a, list);
    answered(a);
    failed(a, list);
    failed(a, list);
    assert.equal(a.state(clock.now()), 'available', 'the success broke the run');
    failed(a, list);
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
      failed(a, list);
      lengths.push(a.ejectedUntil - clock.now());
      clock.advance(a.ejectedUntil - clock.now());
    }
    assert.deepEqual(lengths, [100, 200, 350, 350]);
    answered(a);
    failed(a, list);
    assert.equal(a.ejectedUntil - clock.now(), 100);
  });

  test('never more than maxEjectionPercent of a backend at once, but always at least one', () => {
    const { list, clock } = endpoints(4, { consecutiveFailures: 1, maxEjectionPercent: 50 });
    for (const e of list) failed(e, list);
    assert.equal(list.filter((e) => !e.available(clock.now())).length, 2);
    const pair = endpoints(2, { consecutiveFailures: 1, maxEjectionPercent: 10 });
    for (const e of pair.list) failed(e, pair.list);
    assert.equal(pair.list.filter((e) => !e.available(pair.clock.now())).length, 1);
  });
});

describe('Endpoint: other reasons to stay out', () => {
  test("a backend's Retry-After keeps it out that long, at most 30 s", () => {
    const { list, clock } = endpoints(1);
    const [a] = list as [Endpoint];
    attempt(a, { kind: 'overloaded', retryAfterSeconds: 7 });
    assert.equal(a.state(clock.now()), 'backing_off');
    assert.equal(a.returnsAt(clock.now()), 7000);
    attempt(a, { kind: 'overloaded', retryAfterSeconds: 3600 });
    assert.equal(a.returnsAt(clock.now()), 30_000);
    attempt(a, { kind: 'overloaded', retryAfterSeconds: Number.NaN });
    assert.equal(a.returnsAt(clock.now()), 30_000, 'a missing or bad Retry-After changes nothing');
  });

  test('fail-fast opens the breaker at once; the picker sees circuit_open', () => {
    const { list, clock } = endpoints(1);
    const [a] = list as [Endpoint];
    assert.equal(a.breakerState, 'closed');
    refusedConnection(a);
    assert.equal(a.breakerState, 'open');
    assert.equal(a.state(clock.now()), 'circuit_open');
    assert.equal(a.returnsAt(clock.now()), DEFAULT_CIRCUIT_BREAKER.resetTimeoutMs);
  });

  test('the breaker opens on the error rate once volumeThreshold calls are in', async () => {
    const { list } = endpoints(1);
    const [a] = list as [Endpoint];
    for (let i = 0; i < 5; i++) answered(a);
    for (let i = 0; i < 4; i++) failed(a);
    assert.equal(a.breakerState, 'closed', '9 calls: under the volume threshold of 10');
    failed(a);
    assert.equal(a.breakerState, 'closed', '5 of 10 failed: 50 % is not more than 50 %');
    failed(a);
    assert.equal(a.breakerState, 'open', '6 of 11 failed');
    assert.deepEqual(a.recent, { requests: 11, failures: 6 });
    assert.equal(answered(a), false, 'an open breaker refuses the call');
    assert.equal(a.outstanding, 0, 'a refused call is not outstanding');
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
    const e = endpoint(srv.url, settings(), clock);
    failed(e, [e, e]);
    assert.equal(e.state(clock.now()), 'ejected');
    assert.equal(await e.check(), true);
    assert.equal(await e.check(), true);
    assert.equal(e.state(clock.now()), 'ejected', 'a ready answer says nothing about failing inferences');
    await srv.close();
  });

  test('a replica that was down (refused) and answers ready again returns at once', async () => {
    const srv = await readyServer();
    const clock = new FakeClock();
    const e = endpoint(srv.url, { ...settings(), outlierDetection: DEFAULT_OUTLIER_DETECTION }, clock);
    refusedConnection(e);
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
    let halfOpened = () => {};
    const origin = 'http://127.0.0.1:1';
    const e = new Endpoint(
      origin,
      createDispatcher(origin, { connections: 1 }),
      {
        circuitBreaker: { ...DEFAULT_CIRCUIT_BREAKER, resetTimeoutMs: 20 },
        healthCheck: { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 },
        outlierDetection: DEFAULT_OUTLIER_DETECTION,
      },
      clock,
      { onBreaker: (_e, state) => state === 'half_open' && halfOpened() },
    );
    made.push(e);
    // opossum's reset timer is a real one, and unref'd: a timer of the test's own holds the process.
    const hold = setTimeout(() => {}, 10_000);
    const reset = new Promise<void>((resolve) => {
      halfOpened = resolve;
    });
    refusedConnection(e);
    await reset;
    clearTimeout(hold);
    return { e, clock };
  }

  test('after the reset timeout one probe goes through, others are refused, and its success closes the breaker', async () => {
    const { e, clock } = await halfOpen();
    assert.equal(e.state(clock.now()), 'available', 'half-open: a probe may go');
    assert.equal(e.admit(), true, 'the probe goes');
    assert.equal(e.state(clock.now()), 'circuit_open', 'the probe is out');
    assert.equal(e.admit(), false, 'a second call is refused while the probe is out');
    e.settle(OK, [e]);
    assert.equal(e.breakerState, 'closed');
  });

  test('a probe cut off because its client went away frees the probe: the next call probes', async () => {
    const { e, clock } = await halfOpen();
    assert.equal(e.admit(), true, 'the probe goes');
    e.settle(CANCELLED, [e]);
    assert.equal(e.breakerState, 'half_open', 'no verdict: still half-open');
    assert.equal(e.state(clock.now()), 'available', 'a probe may go again');
    assert.equal(e.admit(), true);
    e.settle(OK, [e]);
    assert.equal(e.breakerState, 'closed');
  });

  test('clients that give up early never open the breaker of a replica', () => {
    const { list } = endpoints(1);
    const [a] = list as [Endpoint];
    for (let i = 0; i < 100; i++) assert.equal(attempt(a, CANCELLED), true, `attempt ${i + 1} admitted`);
    assert.equal(a.breakerState, 'closed');
    assert.equal(a.consecutiveFailures, 0);
  });

  test('a failed probe opens the breaker again', async () => {
    const { e } = await halfOpen();
    assert.equal(failed(e), true);
    assert.equal(e.breakerState, 'open');
  });
});
