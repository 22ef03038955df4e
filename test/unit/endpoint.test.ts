// An endpoint's standing without sockets: passive ejection (consecutive failures, doubling,
// the share of a backend that may be out), a backend's Retry-After, fail-fast, and what the
// picker is told. A fake clock; nothing is sent (the pool connects lazily, to a closed port).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_OUTLIER_DETECTION,
} from '../../gateway/policy/compile.js';
import { Endpoint, type EndpointSettings } from '../../gateway/upstream/endpoint.js';
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
