// Routing through a real gateway to real backends: the weighted split, sticky users, header
// routes, version pins, metadata and errors. Backend A serves mlp version 1, backend B version 2,
// so every answer's model_version shows which variant really served it.
import assert from 'node:assert/strict';
import { request as undiciRequest } from 'undici';
import { after, before, describe, test } from 'node:test';
import { mlpReference } from '../../models/reference.js';
import {
  assertClose,
  assertErrorBody,
  binaryOutputs,
  getJson,
  infer,
  okInfer,
  output,
  PROMTOOL,
  promtoolCheck,
  postBinary,
  randomFloats,
  rawHttp,
  removeTempDirs,
  request,
  type RunningBackend,
  sampleRepository,
  sampleValue,
  scrape,
  startBackend,
  leBytes,
} from '../helpers/backend.js';
import { policyYaml, type RunningGateway, startGateway } from '../helpers/gateway.js';
import { mulberry32 } from '../../models/reference.js';

let v1: RunningBackend;
let v2: RunningBackend;
let gw: RunningGateway;
const x = randomFloats(7, 64);
const doc = { inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', data: Array.from(x) }] };
const body = JSON.stringify(doc);

before(async () => {
  const repo = await sampleRepository();
  v1 = await startBackend({
    modelRepository: repo,
    models: [{ name: 'mlp', version: '1' }, { name: 'simple' }],
  });
  v2 = await startBackend({ modelRepository: repo, models: [{ name: 'mlp', version: '2' }] });
  gw = await startGateway({
    policy: policyYaml({
      model: 'mlp',
      variants: {
        stable: { endpoints: [v1.url], version: '1' },
        candidate: { endpoints: [v2.url], version: '2' },
      },
      split: { stable: 90, candidate: 10 },
      sticky: 'x-user-id',
      routes: [{ header: 'x-infergate-variant', value: 'candidate', variant: 'candidate' }],
    }),
    random: mulberry32(42),
  });
});

after(async () => {
  await gw?.close();
  await Promise.all([v1?.close(), v2?.close()]);
  await removeTempDirs();
});

interface Served {
  status: number;
  variant: string | null;
  version: string | undefined;
}

async function send(headers: Record<string, string> = {}, path = '/v2/models/mlp/infer'): Promise<Served> {
  const res = await request(gw.url + path, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });
  return {
    status: res.status,
    variant: res.headers.get('x-infergate-variant'),
    version: (res.json as { model_version?: string } | undefined)?.model_version,
  };
}

/** Runs `n` calls of `fn` with `concurrency` in flight. */
async function many<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

const VARIANT_VERSION: Record<string, string> = { stable: '1', candidate: '2' };

describe('weighted split', () => {
  test('2,000 requests at 90/10 land within ±3 %, each on the backend of its variant', async () => {
    const results = await many(2000, 16, () => send());
    const counts = { stable: 0, candidate: 0 };
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.ok(r.variant === 'stable' || r.variant === 'candidate', `variant header ${r.variant}`);
      assert.equal(r.version, VARIANT_VERSION[r.variant], 'the answer comes from the variant named');
      counts[r.variant] += 1;
    }
    const share = counts.candidate / 2000;
    assert.ok(Math.abs(share - 0.1) <= 0.03, `candidate share ${share} not within 0.10 ± 0.03`);
    // The split is visible per variant in the gateway's metrics.
    const { samples } = await scrape(gw.adminUrl);
    assert.ok(
      (sampleValue(samples, 'infergate_requests_total', {
        model: 'mlp',
        variant: 'candidate',
        code: '200',
      }) ?? 0) >= counts.candidate,
    );
  });
});

describe('sticky users', () => {
  test('a user never changes variant, and users spread over both', async () => {
    const seen = new Map<string, Set<string>>();
    const users = Array.from({ length: 60 }, (_, i) => `user-${i}`);
    await many(users.length * 10, 16, async (i) => {
      const user = users[i % users.length] as string;
      const r = await send({ 'x-user-id': user });
      assert.equal(r.status, 200);
      assert.equal(r.version, VARIANT_VERSION[r.variant ?? '']);
      const set = seen.get(user) ?? new Set<string>();
      set.add(r.variant ?? '');
      seen.set(user, set);
    });
    for (const [user, variants] of seen) assert.equal(variants.size, 1, `${user} saw ${[...variants]}`);
    const onCandidate = [...seen.values()].filter((s) => s.has('candidate')).length;
    assert.ok(onCandidate >= 1 && onCandidate <= 20, `${onCandidate} of 60 users on the 10 % candidate`);
  });
});

describe('explicit routing', () => {
  test('a header route wins over the split and over stickiness', async () => {
    const results = await many(50, 8, (i) =>
      send({ 'x-infergate-variant': 'candidate', 'x-user-id': `u${i}` }),
    );
    for (const r of results) {
      assert.equal(r.variant, 'candidate');
      assert.equal(r.version, '2');
    }
  });

  test('/versions/{v} pins the variant serving that version', async () => {
    for (const [version, variant] of [
      ['1', 'stable'],
      ['2', 'candidate'],
    ] as const) {
      const results = await many(20, 4, () => send({}, `/v2/models/mlp/versions/${version}/infer`));
      for (const r of results) {
        assert.equal(r.status, 200);
        assert.equal(r.variant, variant);
        assert.equal(r.version, version);
      }
    }
  });

  test('a version no variant serves is a 404 GW_ERR_VERSION_NOT_FOUND', async () => {
    const res = await request(`${gw.url}/v2/models/mlp/versions/9/infer`, { method: 'POST', body });
    assertErrorBody(res, 404, 'GW_ERR_VERSION_NOT_FOUND');
  });

  test('an unknown model is a 404 GW_ERR_MODEL_NOT_FOUND, never forwarded', async () => {
    const res = await request(`${gw.url}/v2/models/simple/infer`, { method: 'POST', body });
    assertErrorBody(res, 404, 'GW_ERR_MODEL_NOT_FOUND');
    assertErrorBody(await getJson(gw.url, '/v2/models/nope'), 404, 'GW_ERR_MODEL_NOT_FOUND');
  });
});

describe('the protocol through the gateway', () => {
  test('outputs equal the reference, as direct to the backend', async () => {
    const res = await infer(gw.url, 'mlp', doc, '2');
    const out = okInfer(res);
    assertClose(output(out, 'y').data as number[], mlpReference('2', x, 1), 1e-5, 'mlp v2 via gateway');
    assert.equal(res.headers.get('x-infergate-variant'), 'candidate');
    assert.match(res.headers.get('x-request-id') ?? '', /.+/);
  });

  test('requests that fastify routes (an escaped name, a chunked body, a query) are answered as plain ones', async () => {
    // Plain requests are served before fastify sees them (gateway/model-route.ts); these are not.
    const escaped = await rawHttp(gw.url, 'POST', '/v2/models/ml%70/versions/2/infer', body);
    assert.equal(escaped.status, 200, escaped.text);
    assert.equal(escaped.headers['x-infergate-variant'], 'candidate');
    assert.match(String(escaped.headers['x-request-id']), /.+/);
    const y = (JSON.parse(escaped.text) as { outputs: { name: string; data: number[] }[] }).outputs;
    assertClose(y.find((o) => o.name === 'y')?.data ?? [], mlpReference('2', x, 1), 1e-5, 'escaped');

    const chunked = await rawHttp(gw.url, 'POST', '/v2/models/mlp/versions/1/infer', [
      body.slice(0, 100),
      body.slice(100),
    ]);
    assert.equal(chunked.status, 200, chunked.text);
    assert.equal(chunked.headers['x-infergate-variant'], 'stable');
    const y1 = (JSON.parse(chunked.text) as { outputs: { name: string; data: number[] }[] }).outputs;
    assertClose(y1.find((o) => o.name === 'y')?.data ?? [], mlpReference('1', x, 1), 1e-5, 'chunked');

    const query = await rawHttp(gw.url, 'GET', '/v2/models/mlp/versions/1?verbose=1');
    assert.equal(query.status, 200, query.text);
    assert.equal(query.headers['x-infergate-variant'], 'stable');
    assert.equal((JSON.parse(query.text) as { name: string }).name, 'mlp');
  });

  test('keep-alive connections last --keep-alive-timeout-ms (72 s by default), on both paths', async () => {
    // The plain path is served before fastify; the escaped one by fastify's route.
    for (const path of ['/v2/models/mlp', '/v2/models/ml%70']) {
      const r = await undiciRequest(`${gw.url}${path}`);
      await r.body.dump();
      assert.equal(r.statusCode, 200, path);
      assert.equal(r.headers['keep-alive'], 'timeout=72', path);
    }
  });

  test('the binary tensor extension passes both ways as bytes', async () => {
    const res = await postBinary(
      gw.url,
      '/v2/models/mlp/versions/1/infer',
      {
        inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', parameters: { binary_data_size: 256 } }],
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
      },
      [leBytes(x)],
    );
    assert.equal(res.status, 200, res.body.toString());
    assert.ok(res.headers.get('inference-header-content-length'));
    const y = Buffer.from(binaryOutputs(res).get('y') as Buffer); // aligned copy
    const got = new Float32Array(y.buffer, y.byteOffset, y.byteLength / 4);
    assertClose(got, mlpReference('1', x, 1), 1e-5, 'binary y');
  });

  test('an oversized or odd x-request-id is replaced by a fresh one', async () => {
    for (const bad of ['x'.repeat(129), 'has space', '']) {
      const res = await request(`${gw.url}/v2/models/mlp/infer`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', 'x-request-id': bad },
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f]{12}-[0-9a-z]+$/, JSON.stringify(bad));
    }
  });

  test('x-request-id is kept from the client and passed to the backend', async () => {
    const res = await request(`${gw.url}/v2/models/mlp/infer`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-abc-123' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), 'req-abc-123');
  });

  test("model metadata and readiness come from the chosen variant's backend", async () => {
    const meta = await getJson(gw.url, '/v2/models/mlp/versions/2');
    assert.equal(meta.status, 200);
    assert.deepEqual((meta.json as { versions: string[] }).versions, ['2']);
    assert.equal(meta.headers.get('x-infergate-variant'), 'candidate');
    const ready = await getJson(gw.url, '/v2/models/mlp/versions/1/ready');
    assert.equal(ready.status, 200);
    assert.equal((ready.json as { ready: boolean }).ready, true);
    const pinned = await request(`${gw.url}/v2/models/mlp`, {
      headers: { 'x-infergate-variant': 'candidate' },
    });
    assert.equal((pinned.json as { versions: string[] }).versions[0], '2');
  });

  for (const [what, path] of [
    ['a URL that cannot be decoded', '/v2/models/%E0%A4%A/ready'],
    ['a model name over 256 characters', `/v2/models/${'a'.repeat(300)}/ready`],
  ] as const) {
    test(`${what} is a 400 GW_ERR_BAD_REQUEST with a request id`, async () => {
      const res = await rawHttp(gw.url, 'GET', path);
      assert.equal(res.status, 400);
      assert.equal((JSON.parse(res.text) as { code: string }).code, 'GW_ERR_BAD_REQUEST');
      assert.ok(res.headers['x-request-id']);
    });
  }

  test("the gateway's own health and server metadata", async () => {
    assert.equal((await getJson(gw.url, '/v2/health/live')).status, 200);
    assert.equal((await getJson(gw.url, '/v2/health/ready')).status, 200);
    const meta = await getJson(gw.url, '/v2');
    assert.equal((meta.json as { name: string }).name, 'infergate-gateway');
    assertErrorBody(await getJson(gw.url, '/v2/repository/index'), 404, 'GW_ERR_NOT_FOUND');
  });

  test("a backend's 4xx passes through with its code", async () => {
    const res = await request(`${gw.url}/v2/models/mlp/infer`, {
      method: 'POST',
      body: '{"inputs": [',
      headers: { 'content-type': 'application/json' },
    });
    assertErrorBody(res, 400, 'BE_ERR_MALFORMED_JSON');
    assert.ok(res.headers.get('x-infergate-variant'));
  });
});

describe('metrics', () => {
  test('promtool check metrics passes on the gateway exposition', {
    skip: PROMTOOL === '' ? 'promtool is not installed (Debian package prometheus)' : false,
  }, async () => {
    const { text } = await scrape(gw.adminUrl);
    assert.match(text, /infergate_requests_total\{/);
    assert.match(text, /infergate_circuit_open\{/);
    const { code, output } = await promtoolCheck(text);
    assert.equal(code, 0, output);
  });
});
