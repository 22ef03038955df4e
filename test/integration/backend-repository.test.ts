// The model repository extension (index, load, unload) and device fallback, on real servers.
import assert from 'node:assert/strict';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../common/logging.js';
import { MODEL_FILE } from '../../models/build.js';
import { mlpLargeReference, mlpReference } from '../../models/reference.js';
import {
  assertClose,
  assertErrorBody,
  derivedRepository,
  getJson,
  infer,
  okInfer,
  output,
  postJson,
  randomFloats,
  rawHttp,
  removeTempDirs,
  request,
  type RunningBackend,
  sampleRepository,
  sampleValue,
  scrape,
  startBackend,
  tempDir,
  waitFor,
  xDoc,
  repositoryIndex,
} from '../helpers/backend.js';

const TOL = 1e-5;
let sample: string;
let root: string;
let server: RunningBackend;
let base: string;

before(async () => {
  sample = await sampleRepository();
  root = await derivedRepository(sample, {
    mlp: { from: 'mlp', versions: ['1', '2'], config: { max_batch_size: 64, max_queue_delay_ms: 1 } },
    'mlp-large': {
      from: 'mlp-large',
      versions: ['1'],
      config: { max_batch_size: 64, max_queue_delay_ms: 1 },
    },
    // Requests wait here for company that never comes, so they are reliably in flight.
    'mlp-slow': { from: 'mlp', versions: ['1'], config: { max_batch_size: 64, max_queue_delay_ms: 500 } },
  });
  // Models that cannot load: bytes that are not ONNX, and a config with an unknown key.
  await mkdir(path.join(root, 'broken', '1'), { recursive: true });
  await writeFile(path.join(root, 'broken', '1', MODEL_FILE), 'this is not an onnx model');
  await cp(path.join(sample, 'mlp', '1'), path.join(root, 'badconfig', '1'), { recursive: true });
  await writeFile(path.join(root, 'badconfig', 'config.yaml'), 'max_batch_size: 8\nmax_batch: 3\n');
  server = await startBackend({ modelRepository: root });
  base = server.url;
});

after(async () => {
  await server?.close();
  await removeTempDirs();
});

async function serves(model: 'mlp' | 'mlp-large', version?: '1' | '2'): Promise<void> {
  const dims = model === 'mlp' ? 64 : 512;
  const x = randomFloats(dims + Number(version ?? 0), dims);
  const doc = okInfer(await infer(base, model, xDoc(x), version));
  const want = model === 'mlp' ? mlpReference(version ?? '2', x, 1) : mlpLargeReference(x, 1);
  assertClose(output(doc, 'y').data as number[], want, TOL, `${model} v${version}`);
}

describe('repository index', () => {
  test('lists every model version with its state; a model that failed says why', async () => {
    const all = await repositoryIndex(base);
    assert.deepEqual(
      all.map((e) => e.name),
      [...all.map((e) => e.name)].sort(),
      'sorted by name',
    );
    const ready = all.filter((e) => e.state === 'READY').map((e) => `${e.name}/${e.version}`);
    assert.deepEqual(ready, ['mlp/1', 'mlp/2', 'mlp-large/1', 'mlp-slow/1']);
    for (const e of all.filter((x) => x.state === 'READY')) assert.equal(e.reason, '');

    const broken = all.find((e) => e.name === 'broken');
    assert.ok(broken);
    assert.equal(broken.state, 'UNAVAILABLE');
    assert.match(broken.reason, /failed to load/);
    const badconfig = all.find((e) => e.name === 'badconfig');
    assert.ok(badconfig);
    assert.equal(badconfig.state, 'UNAVAILABLE');
    assert.match(badconfig.reason, /max_batch: unknown setting/);
  });

  test('{"ready": true} lists only ready versions; {} and {"ready": false} list all', async () => {
    const ready = await repositoryIndex(base, { ready: true });
    assert.ok(ready.length > 0);
    assert.ok(ready.every((e) => e.state === 'READY'));
    assert.ok(!ready.some((e) => e.name === 'broken'));
    assert.deepEqual(await repositoryIndex(base, { ready: false }), await repositoryIndex(base));
    assert.deepEqual(await repositoryIndex(base, {}), await repositoryIndex(base));
  });

  test('a bad index body is a 400', async () => {
    assertErrorBody(
      await postJson(base, '/v2/repository/index', { ready: 'yes' }),
      400,
      'BE_ERR_INVALID_REQUEST',
    );
    assertErrorBody(await postJson(base, '/v2/repository/index', [true]), 400, 'BE_ERR_INVALID_REQUEST');
    assertErrorBody(
      await request(`${base}/v2/repository/index`, { method: 'POST', body: '{"ready":' }),
      400,
      'BE_ERR_MALFORMED_JSON',
    );
  });

  test('a model that failed to load is 503 on infer and 500 on load, and the others serve', async () => {
    const err = assertErrorBody(
      await infer(base, 'broken', xDoc(randomFloats(1, 64))),
      503,
      'BE_ERR_MODEL_NOT_READY',
    );
    assert.match(err.error, /broken/);
    assert.equal((await infer(base, 'broken', xDoc(randomFloats(1, 64)))).headers.get('retry-after'), '1');
    const load = assertErrorBody(
      await request(`${base}/v2/repository/models/badconfig/load`, { method: 'POST' }),
      500,
      'BE_ERR_MODEL_LOAD_FAILED',
    );
    assert.match(load.error, /max_batch/);
    await serves('mlp');
  });
});

describe('load and unload', () => {
  test('unload: infer is 503 BE_ERR_MODEL_NOT_READY, the index says unloaded; load: it serves again', async () => {
    const unload = await request(`${base}/v2/repository/models/mlp/unload`, { method: 'POST' });
    assert.equal(unload.status, 200);
    assert.deepEqual(unload.json, {});

    for (const version of [undefined, '1', '2']) {
      const res = await infer(base, 'mlp', xDoc(randomFloats(2, 64)), version);
      assertErrorBody(res, 503, 'BE_ERR_MODEL_NOT_READY');
      assert.equal(res.headers.get('retry-after'), '1');
    }
    assert.equal((await getJson(base, '/v2/models/mlp/ready')).status, 503);
    assert.equal((await getJson(base, '/v2/models/mlp/versions/1/ready')).status, 503);
    assert.equal((await getJson(base, '/v2/models/mlp')).status, 503);
    const entries = (await repositoryIndex(base)).filter((e) => e.name === 'mlp');
    assert.deepEqual(entries, [
      { name: 'mlp', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
      { name: 'mlp', version: '2', state: 'UNAVAILABLE', reason: 'unloaded' },
    ]);
    assert.ok(!(await repositoryIndex(base, { ready: true })).some((e) => e.name === 'mlp'));
    const { samples } = await scrape(base);
    assert.equal(
      sampleValue(samples, 'infergate_backend_model_info', {
        model: 'mlp',
        version: '1',
        state: 'UNAVAILABLE',
      }),
      1,
    );
    await serves('mlp-large'); // the other models are untouched

    const load = await request(`${base}/v2/repository/models/mlp/load`, { method: 'POST' });
    assert.equal(load.status, 200);
    await serves('mlp', '1');
    await serves('mlp', '2');
    await serves('mlp');
    assert.deepEqual(
      (await repositoryIndex(base)).filter((e) => e.name === 'mlp').map((e) => e.state),
      ['READY', 'READY'],
    );
  });

  test('unloading an unloaded model and loading a loaded one both succeed', async () => {
    assert.equal(
      (await request(`${base}/v2/repository/models/mlp-large/unload`, { method: 'POST' })).status,
      200,
    );
    assert.equal(
      (await request(`${base}/v2/repository/models/mlp-large/unload`, { method: 'POST' })).status,
      200,
    );
    assert.equal(
      (await request(`${base}/v2/repository/models/mlp-large/load`, { method: 'POST' })).status,
      200,
    );
    assert.equal(
      (await request(`${base}/v2/repository/models/mlp-large/load`, { method: 'POST' })).status,
      200,
    );
    await serves('mlp-large');
  });

  test('load and unload of an unknown model are 404', async () => {
    const load = assertErrorBody(
      await request(`${base}/v2/repository/models/nope/load`, { method: 'POST' }),
      404,
      'BE_ERR_MODEL_NOT_FOUND',
    );
    assert.match(load.error, /nope/);
    assertErrorBody(
      await request(`${base}/v2/repository/models/nope/unload`, { method: 'POST' }),
      404,
      'BE_ERR_MODEL_NOT_FOUND',
    );
  });

  test('a model added to the directory after start is listed as not loaded, then loads', async () => {
    await cp(path.join(sample, 'mlp', '1'), path.join(root, 'late', '1'), { recursive: true });
    assert.deepEqual(
      (await repositoryIndex(base)).find((e) => e.name === 'late'),
      { name: 'late', version: '', state: 'UNAVAILABLE', reason: 'not loaded' },
    );
    assertErrorBody(await infer(base, 'late', xDoc(randomFloats(3, 64))), 404, 'BE_ERR_MODEL_NOT_FOUND');
    assert.equal((await request(`${base}/v2/repository/models/late/load`, { method: 'POST' })).status, 200);
    const x = randomFloats(4, 64);
    const doc = okInfer(await infer(base, 'late', xDoc(x)));
    assertClose(output(doc, 'y').data as number[], mlpReference('1', x, 1), TOL);
    // No config.yaml: the defaults (no batching).
    const meta = (await getJson(base, '/v2/models/late')).json as { parameters: { max_batch_size: number } };
    assert.equal(meta.parameters.max_batch_size, 0);
  });

  test('a version added to a loaded model on disk is listed as not loaded, then the load API loads it', async () => {
    await cp(path.join(sample, 'mlp', '1'), path.join(root, 'later', '1'), { recursive: true });
    assert.equal((await request(`${base}/v2/repository/models/later/load`, { method: 'POST' })).status, 200);
    await cp(path.join(sample, 'mlp', '2'), path.join(root, 'later', '2'), { recursive: true });
    const listed = (await repositoryIndex(base)).filter((e) => e.name === 'later');
    assert.deepEqual(listed, [
      { name: 'later', version: '1', state: 'READY', reason: '' },
      { name: 'later', version: '2', state: 'UNAVAILABLE', reason: 'not loaded' },
    ]);
    assert.ok(
      !(await repositoryIndex(base, { ready: true })).some((e) => e.name === 'later' && e.version === '2'),
    );
    assert.equal((await request(`${base}/v2/repository/models/later/load`, { method: 'POST' })).status, 200);
    const x = randomFloats(5, 64);
    const doc = okInfer(await infer(base, 'later', xDoc(x), '2'));
    assertClose(output(doc, 'y').data as number[], mlpReference('2', x, 1), TOL);
  });

  test('path traversal names are rejected and load nothing', async () => {
    // A loadable model right beside the repository: '../<it>' must not reach it.
    const outside = await tempDir('infergate-outside-');
    await cp(path.join(sample, 'mlp', '1'), path.join(outside, '1'), { recursive: true });
    const traversal = `..%2F${path.basename(outside)}`;
    const before = await repositoryIndex(base);
    const attempts = [
      `/v2/repository/models/${traversal}/load`,
      '/v2/repository/models/..%2F..%2F..%2Fetc/load',
      '/v2/repository/models/%2E%2E/load',
      '/v2/repository/models/..%5C..%5Cetc/load',
      '/v2/repository/models/.hidden/load',
      '/v2/repository/models/mlp%2F1/load',
      '/v2/repository/models/mlp%00/load',
      `/v2/repository/models/%2F${encodeURIComponent(outside.slice(1))}/load`,
      '/v2/repository/models/..%2Fmlp/unload',
    ];
    for (const p of attempts) {
      const res = await rawHttp(base, 'POST', p);
      assert.ok(res.status === 404 || res.status === 400, `${p}: ${res.status} ${res.text}`);
      const doc = JSON.parse(res.text) as { code: string };
      assert.ok(
        ['BE_ERR_MODEL_NOT_FOUND', 'BE_ERR_NOT_FOUND', 'BE_ERR_INVALID_REQUEST'].includes(doc.code),
        p,
      );
    }
    assert.deepEqual(await repositoryIndex(base), before, 'the index is unchanged');
    assertErrorBody(
      await infer(base, `../${path.basename(outside)}`, xDoc(randomFloats(5, 64))),
      404,
      'BE_ERR_MODEL_NOT_FOUND',
    );
  });

  test('unload waits for in-flight requests, which all answer 200', async () => {
    const jobs = Array.from({ length: 4 }, (_, i) => randomFloats(100 + i, 64));
    const inflight = jobs.map((x) => infer(base, 'mlp-slow', xDoc(x)));
    await waitFor('the requests to be queued', async () => {
      const { samples } = await scrape(base);
      return sampleValue(samples, 'infergate_backend_queue_depth', { model: 'mlp-slow', version: '1' }) === 4
        ? true
        : undefined;
    });
    const unload = request(`${base}/v2/repository/models/mlp-slow/unload`, { method: 'POST' });
    const answers = await Promise.all(inflight);
    answers.forEach((res, i) => {
      assertClose(
        output(okInfer(res), 'y').data as number[],
        mlpReference('1', jobs[i]!, 1),
        TOL,
        `request ${i}`,
      );
    });
    assert.equal((await unload).status, 200);
    assertErrorBody(await infer(base, 'mlp-slow', xDoc(jobs[0]!)), 503, 'BE_ERR_MODEL_NOT_READY');
  });

  test('reloading a model while it serves never fails a request', async () => {
    const xs = Array.from({ length: 40 }, (_, i) => randomFloats(200 + i, 64));
    const work = xs.map((x) => infer(base, 'mlp', xDoc(x), '1'));
    const reloads = [1, 2, 3].map(() => request(`${base}/v2/repository/models/mlp/load`, { method: 'POST' }));
    const answers = await Promise.all(work);
    answers.forEach((res, i) => {
      assertClose(
        output(okInfer(res), 'y').data as number[],
        mlpReference('1', xs[i]!, 1),
        TOL,
        `request ${i}`,
      );
    });
    for (const r of await Promise.all(reloads)) assert.equal(r.status, 200);
    await serves('mlp', '1');
  });

  test('concurrent unload and load of one model end in a consistent state', async () => {
    const ops = ['unload', 'load', 'unload', 'load'].map((op) =>
      request(`${base}/v2/repository/models/mlp/${op}`, { method: 'POST' }),
    );
    for (const r of await Promise.all(ops)) assert.equal(r.status, 200);
    // Serialized in order: the last one (load) wins.
    await serves('mlp', '2');
  });
});

describe('devices', () => {
  for (const device of ['cuda', 'webgpu'] as const) {
    test(`--device ${device} serves on that provider where it loads, else on cpu with the reason logged`, async () => {
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
          done();
        },
      });
      const logger = createLogger({ name: 'device-test', level: 'info', destination });
      const repo = await derivedRepository(sample, {
        mlp: { from: 'mlp', versions: ['1'], config: { max_batch_size: 8 } },
      });
      const dev = await startBackend({ modelRepository: repo, device, logger });
      try {
        const meta = (await getJson(dev.url, '/v2/models/mlp')).json as {
          parameters: { execution_provider: string };
        };
        const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
        const provider = meta.parameters.execution_provider;
        if (provider === device) {
          // A machine where the provider really loads (a GPU host): nothing to fall back from.
          assert.ok(!records.some((r) => String(r.msg).includes('serving on cpu')));
        } else {
          assert.equal(provider, 'cpu');
          const fallback = records.find((r) => String(r.msg).includes('could not load; serving on cpu'));
          assert.ok(fallback, `a fallback line was logged: ${lines.join('\n')}`);
          assert.equal(fallback.level, 40, 'logged as a warning');
          assert.equal(fallback.device, device);
          assert.equal(fallback.model, 'mlp');
          assert.equal(typeof fallback.reason, 'string');
          assert.ok((fallback.reason as string).length > 0, 'the reason is given');
        }
        // Either way the model serves the reference's answers, and the metric names the provider.
        const x = randomFloats(300, 64);
        const doc = okInfer(await infer(dev.url, 'mlp', xDoc(x)));
        assertClose(
          output(doc, 'y').data as number[],
          mlpReference('1', x, 1),
          provider === 'cpu' ? TOL : 1e-3,
        );
        const { samples } = await scrape(dev.url);
        assert.equal(
          sampleValue(samples, 'infergate_backend_model_info', { model: 'mlp', version: '1', provider }),
          1,
        );
      } finally {
        await dev.close();
      }
    });
  }
});
