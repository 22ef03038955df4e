// Fault tests: a replica killed under load, a replica that hangs, one that answers 500, a gateway
// stopped under load, and overload past the concurrency limit. Real processes where the fault is
// a process's (kill, restart, SIGTERM); a fake replica for hangs and 500s. Each test is bounded.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { request, tempDir, waitFor } from '../helpers/backend.js';
import type { CliProcess } from '../helpers/cli.js';
import { deadPort, gatewayTestbed, mlpBody, policyYaml, Tally } from '../helpers/gateway.js';

const bed = gatewayTestbed({
  real: [{ name: 'mlp', version: '1' }],
  // A real network whose layers refuse some shapes its metadata allows ([-1,3,-1,-1]).
  ocr: [{ name: 'text-direction', version: '1' }],
});
const real = bed.endpoint('real');
const body = mlpBody(11);

interface Upstream {
  url: string;
  state: string;
  breaker: string;
  healthy: boolean;
}

async function upstreams(adminUrl: string): Promise<Upstream[]> {
  const doc = (await (await fetch(`${adminUrl}/admin/upstreams`)).json()) as {
    backends: { endpoints: Upstream[] }[];
  };
  return doc.backends.flatMap((b) => b.endpoints);
}

async function upstream(adminUrl: string, url: string): Promise<Upstream> {
  const found = (await upstreams(adminUrl)).find((e) => e.url === url);
  assert.ok(found, `${url} in /admin/upstreams`);
  return found;
}

/** Sends requests from `concurrency` loops until `stop()`; records every outcome. */
function steadyLoad(url: string, concurrency: number) {
  const outcomes: { status: number; error?: string; at: number }[] = [];
  const answered = new Tally();
  let stopped = false;
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped) {
      try {
        const res = await request(url, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
        });
        outcomes.push({
          status: res.status,
          at: performance.now(),
          ...(res.status === 200 ? {} : { error: res.body.toString() }),
        });
        answered.add();
      } catch (e) {
        const cause = (e as { cause?: { code?: string } }).cause;
        outcomes.push({ status: 0, error: cause?.code ?? (e as Error).message, at: performance.now() });
        answered.add();
        if (cause?.code === 'ECONNREFUSED') await new Promise((r) => setTimeout(r, 5));
      }
    }
  });
  return {
    outcomes,
    /** Resolves after `n` more outcomes (30 s at most). */
    until(n: number) {
      return answered.reached(answered.count + n, `${n} more outcomes`, 30_000);
    },
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

async function cliBackend(port: number): Promise<CliProcess> {
  const p = bed.cli(['backend', '--model-repository', bed.repo, '--port', String(port), '--models', 'mlp:1']);
  await p.waitForLog('backend listening', (r) => r.msg.startsWith('backend listening on http://'));
  return p;
}

describe('fault tests', () => {
  test('a) a replica SIGKILLed under load: no client error, its breaker opens, it returns within the check interval', async (t) => {
    const port = await deadPort();
    const doomedUrl = `http://127.0.0.1:${port}`;
    let doomed = await cliBackend(port);
    const intervalMs = 200;
    const g = await bed.gateway({
      policy: policyYaml({
        variants: { only: { endpoints: [real.url, doomedUrl], version: '1' } },
        defaults: { healthCheck: { intervalMs, timeoutMs: 150, unhealthyThreshold: 1, healthyThreshold: 1 } },
      }),
    });
    const load = steadyLoad(`${g.url}/v2/models/m/infer`, 8);
    t.after(() => load.stop());
    await load.until(200);

    doomed.child.kill('SIGKILL');
    const killedAt = performance.now();
    await doomed.exited;
    await waitFor('the killed replica taken out', async () =>
      (await upstream(g.adminUrl, doomedUrl)).state === 'available' ? undefined : true,
    );
    const ejectionMs = performance.now() - killedAt;
    // Whichever saw the death first (a failed request or a failed check), a refused connection
    // opens the breaker.
    await waitFor('its breaker open', async () =>
      (await upstream(g.adminUrl, doomedUrl)).breaker === 'open' ? true : undefined,
    );
    await load.until(300);

    doomed = await cliBackend(port);
    const restartedAt = performance.now();
    await waitFor('the restarted replica back in rotation', async () =>
      (await upstream(g.adminUrl, doomedUrl)).state === 'available' ? true : undefined,
    );
    const returnMs = performance.now() - restartedAt;
    const before = load.outcomes.length;
    await load.until(300);
    await load.stop();

    const failures = load.outcomes.filter((o) => o.status !== 200);
    assert.deepEqual(failures, [], 'retries absorb the dead replica: no client sees an error');
    // Brought back by its health checks, not by a timer: the bound leaves a busy machine room
    // (fifteen intervals) and stays below the 5 s of the default ejection period.
    assert.ok(returnMs < intervalMs * 15, `back in rotation ${returnMs.toFixed(0)} ms after restart`);
    // It takes traffic again.
    const metrics = await (await fetch(`${doomedUrl}/metrics`)).text();
    const served = metrics.match(/infergate_backend_requests_total\{[^}]*code="200"[^}]*\} (\d+)/);
    assert.ok(served !== null && Number(served[1]) > 0, 'the restarted replica serves requests');
    t.diagnostic(
      `failover: out of rotation ${ejectionMs.toFixed(0)} ms after SIGKILL, ${failures.length} client errors in ${load.outcomes.length} requests, back ${returnMs.toFixed(0)} ms after restart (check interval ${intervalMs} ms); ${load.outcomes.length - before} requests after return`,
    );
  });

  test('a replica drained with SIGTERM under load: no client error, and it gets no new traffic', async (t) => {
    const port = await deadPort();
    const drainingUrl = `http://127.0.0.1:${port}`;
    const replica = await cliBackend(port);
    const g = await bed.gateway({
      policy: policyYaml({
        variants: { only: { endpoints: [real.url, drainingUrl], version: '1' } },
        defaults: { healthCheck: { intervalMs: 200, timeoutMs: 150, unhealthyThreshold: 1 } },
      }),
    });
    const load = steadyLoad(`${g.url}/v2/models/m/infer`, 8);
    t.after(() => load.stop());
    await load.until(200);
    replica.child.kill('SIGTERM');
    assert.equal((await replica.exited).code, 0, 'the replica drained and exited 0');
    await waitFor('the drained replica out of rotation', async () =>
      (await upstream(g.adminUrl, drainingUrl)).state === 'available' ? undefined : true,
    );
    await load.until(300);
    await load.stop();
    assert.deepEqual(
      load.outcomes.filter((o) => o.status !== 200),
      [],
      '503s from the draining replica and its closed port are retried on the other',
    );
  });

  test('b) a replica that accepts and never answers: requests end at the timeout, it is ejected, later requests go to the healthy one', async () => {
    const hung = await bed.fake({ hang: true });
    const g = await bed.gateway({
      policy: policyYaml({
        variants: { only: { endpoints: [real.url, hung.url], version: '1' } },
        timeoutMs: 250,
        defaults: {
          healthCheck: { intervalMs: 0 },
          outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 60_000 },
        },
      }),
    });
    const results: { status: number; ms: number; code?: string }[] = [];
    await waitFor(
      'the hung endpoint ejected',
      async () => {
        const started = performance.now();
        const res = await request(`${g.url}/v2/models/m/infer`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
        });
        results.push({
          status: res.status,
          ms: performance.now() - started,
          code: (res.json as { code?: string } | undefined)?.code,
        });
        return (await upstream(g.adminUrl, hung.url)).state === 'ejected' ? true : undefined;
      },
      20_000,
    );
    const timedOut = results.filter((r) => r.status === 504);
    assert.ok(
      timedOut.length >= 1 && timedOut.length <= 2,
      `${timedOut.length} requests hit the hung replica`,
    );
    for (const r of timedOut) {
      assert.equal(r.code, 'GW_ERR_UPSTREAM_TIMEOUT');
      assert.ok(r.ms >= 245 && r.ms < 1500, `ended after ${r.ms.toFixed(0)} ms (timeout 250)`);
    }
    const seen = hung.received.length;
    for (let i = 0; i < 40; i++) {
      const res = await request(`${g.url}/v2/models/m/infer`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 200);
    }
    assert.equal(hung.received.length, seen, 'no request reaches the ejected replica');
  });

  test('c) a replica that answers 500 is ejected, and returns once it heals', async () => {
    const sick = await bed.fake({ status: 500 });
    const g = await bed.gateway({
      policy: policyYaml({
        variants: { only: { endpoints: [real.url, sick.url], version: '1' } },
        defaults: {
          healthCheck: { intervalMs: 0 },
          outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 400 },
        },
      }),
    });
    const send = () =>
      request(`${g.url}/v2/models/m/infer`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
    const statuses: number[] = [];
    await waitFor('the sick endpoint ejected', async () => {
      statuses.push((await send()).status);
      return (await upstream(g.adminUrl, sick.url)).state === 'ejected' ? true : undefined;
    });
    assert.equal(statuses.filter((s) => s === 502).length, 3, 'three 500s (as 502) before the ejection');
    const atEjection = sick.received.length;
    for (let i = 0; i < 20; i++) assert.equal((await send()).status, 200);
    assert.equal(sick.received.length, atEjection, 'ejected: no traffic');

    sick.mode.status = 200; // it heals
    await waitFor(
      'the healed endpoint back',
      async () => ((await upstream(g.adminUrl, sick.url)).state === 'available' ? true : undefined),
      5000,
    );
    await waitFor('traffic on the healed endpoint', async () => {
      assert.equal((await send()).status, 200);
      return sick.received.length > atEjection ? true : undefined;
    });
  });

  test('d) SIGTERM to the gateway under load: every accepted request completes', async (t) => {
    const dir = await tempDir();
    const file = path.join(dir, 'policy.yaml');
    await writeFile(file, policyYaml({ variants: { only: { endpoints: [real.url], version: '1' } } }));
    const p = bed.cli([
      'gateway',
      '--policy',
      file,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--drain-delay-ms',
      '300',
    ]);
    const line = await p.waitForLog('gateway listening', (r) =>
      r.msg.startsWith('gateway listening on http://'),
    );
    const url = line.address as string;
    const servedByBackend = async () => {
      const text = await (await fetch(`${real.url}/metrics`)).text();
      const m = /infergate_backend_requests_total\{model="mlp",version="1",code="200"\} (\d+)/.exec(text);
      return Number(m?.[1] ?? 0);
    };
    const backendBefore = await servedByBackend();
    const load = steadyLoad(`${url}/v2/models/m/infer`, 8);
    t.after(() => load.stop());
    await load.until(200);
    const atSignal = load.outcomes.length;
    p.child.kill('SIGTERM');
    const exit = await p.exited;
    // Keep the clients going until they see the listener gone.
    await waitFor('clients refused by the closed listener', async () =>
      load.outcomes.slice(atSignal).some((o) => o.error === 'ECONNREFUSED') ? true : undefined,
    );
    await load.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    const after = load.outcomes.slice(atSignal);
    assert.ok(after.filter((o) => o.status === 200).length > 0, 'requests kept being served while draining');
    // No HTTP error at all: what failed, failed to connect (refused, or reset in the kernel's
    // accept queue when the listener closed), never inside the gateway.
    const httpErrors = load.outcomes.filter((o) => o.status !== 200 && o.status !== 0);
    assert.deepEqual(httpErrors, []);
    const connectErrors = load.outcomes.filter((o) => o.status === 0);
    assert.ok(
      connectErrors.every((o) => o.error === 'ECONNREFUSED' || o.error === 'ECONNRESET'),
      JSON.stringify(connectErrors.slice(0, 5)),
    );
    // Every request the gateway accepted and forwarded came back to its client as a 200.
    const clientOk = load.outcomes.filter((o) => o.status === 200).length;
    assert.equal(
      (await servedByBackend()) - backendBefore,
      clientOk,
      `backend served, client saw 200: ${JSON.stringify(
        load.outcomes.reduce((m: Record<string, number>, o) => {
          const k = String(o.error ?? o.status);
          m[k] = (m[k] ?? 0) + 1;
          return m;
        }, {}),
      )}`,
    );
  });

  test('e) overload past the concurrency limit: fast 503s, and the memory stays bounded', async (t) => {
    // The replica holds every request until the test lets go, so "shed before any backend answer"
    // is a fact of the order of events, not a race against a delay on a busy machine.
    const slow = await bed.fake();
    const dir = await tempDir();
    const file = path.join(dir, 'policy.yaml');
    await writeFile(
      file,
      policyYaml({
        variants: { only: { endpoints: [slow.url] } },
        modelKeys: { concurrency: { maxInFlight: 4, maxQueue: 4, queueTimeoutMs: 50 } },
        defaults: { healthCheck: { intervalMs: 0 } },
      }),
    );
    const p = bed.cli(['gateway', '--policy', file, '--port', '0', '--admin-port', '0']);
    const line = await p.waitForLog('gateway listening', (r) =>
      r.msg.startsWith('gateway listening on http://'),
    );
    const url = `${line.address as string}/v2/models/m/infer`;
    const big = 'x'.repeat(64 * 1024); // the fake replica does not parse it
    /** `n` requests at once; the replica answers only after every other one has been answered. */
    const burst = async (n: number) => {
      let release = () => {};
      slow.mode.hold = new Promise<void>((r) => {
        release = r;
      });
      const answered = new Tally();
      const reachedBefore = slow.received.length;
      const results = Array.from({ length: n }, async () => {
        const res = await request(url, {
          method: 'POST',
          body: big,
          headers: { 'content-type': 'application/json' },
        });
        answered.add();
        return { status: res.status, res };
      });
      // Four are in flight at the replica and held: the other n - 4 must be answered meanwhile.
      await slow.arrived(reachedBefore + 4, 30_000);
      await answered.reached(n - 4, `${n - 4} answers while four are held`, 30_000);
      const early = slow.received.length - reachedBefore;
      release();
      return { results: await Promise.all(results), early };
    };
    const rss = async () => {
      const status = await readFile(`/proc/${p.child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
    };

    const first = await burst(100);
    assert.equal(first.early, 4, 'only the four in flight reached the replica');
    const ok = first.results.filter((r) => r.status === 200);
    const shed = first.results.filter((r) => r.status === 503);
    assert.equal(ok.length, 4, 'four in flight, served');
    assert.equal(shed.length, 96, 'the rest shed while the four were held, before any backend answer');
    for (const r of shed) {
      assert.equal((r.res.json as { code: string }).code, 'GW_ERR_OVERLOADED');
      assert.equal(r.res.headers.get('retry-after'), '1');
    }
    const baseline = await rss();
    for (let round = 0; round < 10; round++) {
      const { results } = await burst(200);
      assert.equal(results.filter((r) => r.status === 200).length, 4, `round ${round}: four served`);
    }
    const grown = (await rss()) - baseline;
    // 2,000 bodies of 64 KiB went in (125 MiB); a gateway that queued them would hold them.
    assert.ok(grown < 48 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB`);
    assert.equal(slow.received.length, 4 + 10 * 4, 'only the requests in flight reached the replica');
    t.diagnostic(
      `overload: 96 of 100 shed with 503 while four were held at the replica; RSS grew ${(grown / 1048576).toFixed(1)} MiB over 2,000 more requests of 64 KiB`,
    );
  });

  test('f) input that onnxruntime refuses is passed on as 400 and never counts against the replica', async () => {
    const ocr = bed.replica('ocr').url;
    const g = await bed.gateway({
      policy: policyYaml({
        variants: { only: { endpoints: [ocr], model: 'text-direction', version: '1' } },
        // Quick to eject and to open: a 5xx per bad request would take the only replica out.
        defaults: {
          healthCheck: { intervalMs: 0 },
          outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 60000 },
        },
      }),
    });
    const send = (shape: number[], data: number[]) =>
      request(`${g.url}/v2/models/m/infer`, {
        method: 'POST',
        body: JSON.stringify({ inputs: [{ name: 'x', shape, datatype: 'FP32', data }] }),
        headers: { 'content-type': 'application/json' },
      });
    for (let i = 0; i < 10; i++) {
      const res = await send([1, 3, 48, 0], []);
      assert.equal(res.status, 400, res.body.toString());
      assert.equal((res.json as { code: string }).code, 'BE_ERR_INFERENCE_REJECTED');
    }
    const up = await upstream(g.adminUrl, ocr);
    assert.deepEqual([up.state, up.breaker], ['available', 'closed']);
    const good = await send([1, 3, 48, 192], new Array(3 * 48 * 192).fill(0.5));
    assert.equal(good.status, 200, good.body.toString());
  });
});
