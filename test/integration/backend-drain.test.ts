// Draining a replica in-process (Backend.shutdown): accepted requests finish, requests that arrive
// while draining get 503 BE_ERR_SHUTTING_DOWN, the listener closes. The SIGTERM path of the real
// command is in backend-process.test.ts.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mlpReference } from '../../models/reference.js';
import {
  assertClose,
  derivedRepository,
  heldRequest,
  infer,
  inferPath,
  okInfer,
  output,
  parseMetrics,
  partialRequest,
  randomFloats,
  removeTempDirs,
  sampleRepository,
  sampleValue,
  scrape,
  startBackend,
  waitFor,
  xDoc,
} from '../helpers/backend.js';

let repo: string;

before(async () => {
  const sample = await sampleRepository();
  repo = await derivedRepository(sample, {
    // Requests wait for company that never comes: reliably in flight when the drain starts.
    mlp: { from: 'mlp', versions: ['1'], config: { max_batch_size: 64, max_queue_delay_ms: 800 } },
  });
});

after(async () => {
  await removeTempDirs();
});

test('shutdown: in-flight requests finish, late ones get 503 BE_ERR_SHUTTING_DOWN, then the listener closes', async () => {
  const server = await startBackend({ modelRepository: repo });
  try {
    const jobs = Array.from({ length: 3 }, (_, i) => randomFloats(40 + i, 64));
    let settled = 0;
    const inflight = jobs.map((x) =>
      infer(server.url, 'mlp', xDoc(x)).finally(() => {
        settled++;
      }),
    );
    await waitFor('the requests to be queued', async () => {
      const { samples } = await scrape(server.url);
      return sampleValue(samples, 'infergate_backend_queue_depth', { model: 'mlp', version: '1' }) === 3
        ? true
        : undefined;
    });
    // A request the server has accepted (head parsed) but whose body comes only after the drain
    // began, and a readiness probe whose head is completed only then.
    const late = await heldRequest(server.url, 'POST', inferPath('mlp'), JSON.stringify(xDoc(jobs[0]!)));
    const probe = await partialRequest(server.url, 'GET', '/v2/health/ready');

    const drained = server.backend.shutdown();
    assert.equal(server.backend.draining, true, 'draining at once');
    assert.equal(settled, 0, 'the queued requests are still in flight');

    const ready = await probe.finish();
    assert.equal(ready.status, 503, 'readiness is false while draining');
    assert.deepEqual(JSON.parse(ready.body), { ready: false });
    assert.equal(ready.headers.connection, 'close');

    const res = await late.send();
    assert.equal(res.status, 503);
    assert.deepEqual(Object.keys(JSON.parse(res.body)).sort(), ['code', 'error']);
    assert.equal((JSON.parse(res.body) as { code: string }).code, 'BE_ERR_SHUTTING_DOWN');
    assert.equal(res.headers['retry-after'], '1');
    assert.equal(res.headers.connection, 'close', 'clients are told to reconnect elsewhere');

    await waitFor('the listener to close', async () =>
      server.backend.app.server.listening ? undefined : true,
    );
    await assert.rejects(fetch(`${server.url}/v2/health/live`), 'new connections are refused');

    const answers = await Promise.all(inflight);
    answers.forEach((r, i) => {
      assertClose(
        output(okInfer(r), 'y').data as number[],
        mlpReference('1', jobs[i]!, 1),
        1e-5,
        `request ${i}`,
      );
      assert.equal(r.headers.get('connection'), 'close');
    });
    await drained;
  } finally {
    await server.close();
  }
});

test('shutdown of an idle replica resolves with the listener closed', async () => {
  const server = await startBackend({ modelRepository: repo });
  okInfer(await infer(server.url, 'mlp', xDoc(randomFloats(50, 64))));
  await server.backend.shutdown();
  assert.equal(server.backend.app.server.listening, false);
  await assert.rejects(fetch(`${server.url}/v2/health/live`));
});

test('503 BE_ERR_SHUTTING_DOWN answers are counted in requests_total', async () => {
  const server = await startBackend({ modelRepository: repo });
  try {
    const held = infer(server.url, 'mlp', xDoc(randomFloats(60, 64)));
    await waitFor('the request to be queued', async () => {
      const { samples } = await scrape(server.url);
      return sampleValue(samples, 'infergate_backend_queue_depth', { model: 'mlp', version: '1' }) === 1
        ? true
        : undefined;
    });
    const late = await heldRequest(
      server.url,
      'POST',
      inferPath('mlp'),
      JSON.stringify(xDoc(randomFloats(61, 64))),
    );
    const drained = server.backend.shutdown();
    assert.equal((await late.send()).status, 503);
    okInfer(await held);
    await drained;
    // The listener is closed: read the registry directly.
    const text = await server.backend.metrics.registry.metrics();
    const samples = parseMetrics(text);
    assert.equal(
      sampleValue(samples, 'infergate_backend_requests_total', { model: 'mlp', version: '1', code: '503' }),
      1,
      'counted under the model it named',
    );
  } finally {
    await server.close();
  }
});
