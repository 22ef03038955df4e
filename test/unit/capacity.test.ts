// The capacity sweep's pieces that decide its figure: the open-loop client (against a real
// HTTP server on port 0: every arrival sent or counted), when a step breaks, and the options.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { openLoop } from '../../load/capacity/open-loop.js';
import { parseCapacityOptions } from '../../load/capacity/run.js';
import { broke } from '../../load/capacity/sweep.js';

async function server(status: (n: number) => number) {
  let n = 0;
  const s = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.statusCode = status(++n);
      res.end('{}');
    });
  });
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/v2/models/simple/infer`,
    s,
    count: () => n,
  };
}

test('openLoop sends every arrival of the schedule and counts the answers that are not 200', async () => {
  const srv = await server((n) => (n % 10 === 0 ? 503 : 200));
  try {
    const r = await openLoop({
      url: srv.url,
      body: '{}',
      headers: {},
      rate: 400,
      seconds: 0.5,
      maxInFlight: 200,
    });
    assert.equal(r.offered, 200);
    assert.equal(srv.count(), 200);
    assert.equal(r.answered + r.failed + r.dropped, 200);
    assert.equal(r.failed, 20);
    assert.equal(r.dropped, 0);
    assert.ok(r.p99Ms >= r.p50Ms && r.p50Ms > 0);
  } finally {
    srv.s.close();
  }
});

test('openLoop drops arrivals beyond maxInFlight instead of queueing them in the client', async () => {
  const held: (() => void)[] = [];
  const s = createServer((req, res) => {
    req.resume();
    held.push(() => res.end('{}'));
  });
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  try {
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}/x`;
    // The answers are held until well after the 250 ms schedule is over: 4 in flight at most.
    setTimeout(() => {
      for (const f of held) f();
    }, 600);
    const done = await openLoop({ url, body: '{}', headers: {}, rate: 200, seconds: 0.25, maxInFlight: 4 });
    assert.equal(done.offered, 50);
    assert.equal(done.answered, 4);
    assert.equal(done.dropped, 46);
  } finally {
    s.close();
  }
});

test('a step breaks on p99, on failures or drops over 1%, or on answers short of the rate', () => {
  const ok = { offered: 1000, answered: 1000, failed: 0, dropped: 0, achievedRps: 500, p99Ms: 20 };
  const r = (x: Partial<typeof ok>) => ({
    ...ok,
    p50Ms: 1,
    p90Ms: 1,
    maxMs: 1,
    meanMs: 1,
    wallSeconds: 2,
    ...x,
  });
  assert.equal(broke(500, r({}), 50), undefined);
  assert.match(broke(500, r({ p99Ms: 51 }), 50)!, /p99 51/);
  assert.equal(broke(500, r({ failed: 10 }), 50), undefined, '1% is allowed');
  assert.match(broke(500, r({ failed: 6, dropped: 5 }), 50)!, /6 failed, 5 dropped/);
  assert.match(broke(500, r({ achievedRps: 440 }), 50)!, /440 answers/);
  assert.equal(broke(500, r({ answered: 0 }), 50), 'no answers');
});

test('bench:capacity options: defaults, --quick, and bad values named', () => {
  const d = parseCapacityOptions([]);
  assert.deepEqual(d.models, ['simple', 'mlp-large']);
  assert.equal(d.sweep.simple.p99Ms, 50);
  assert.equal(d.sweep.simple.refine, 2);
  const q = parseCapacityOptions(['--quick', '--models', 'simple', '--p99-ms', '20']);
  assert.deepEqual([q.models, q.sweep.simple.p99Ms, q.sweep.simple.refine], [['simple'], 20, 0]);
  assert.throws(() => parseCapacityOptions(['--models', 'resnet']), /--models: unknown 'resnet'/);
  assert.throws(() => parseCapacityOptions(['--p99-ms', '0']), /--p99-ms/);
  assert.throws(() => parseCapacityOptions(['--factor', '1']), /--factor/);
});
