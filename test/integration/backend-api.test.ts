// The backend replica over real HTTP with real onnxruntime sessions: health, metadata, readiness,
// inference correctness against the TypeScript references, and the binary tensor extension.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ModelMetadata } from '../../backend/model.js';
import { SAMPLE_MODELS } from '../../models/build.js';
import { type MlpVersion, mlpLargeReference, mlpReference, simpleReference } from '../../models/reference.js';
import {
  assertClose,
  assertErrorBody,
  binaryOutputs,
  getJson,
  infer,
  inferPath,
  leBytes,
  okInfer,
  output,
  postBinary,
  randomFloats,
  request,
  removeTempDirs,
  type RunningBackend,
  sampleRepository,
  startBackend,
} from '../helpers/backend.js';

const TOL = 1e-5;
let server: RunningBackend;
let base: string;

before(async () => {
  server = await startBackend({ modelRepository: await sampleRepository() });
  base = server.url;
});

after(async () => {
  await server?.close();
  await removeTempDirs();
});

function mlpDoc(x: Float32Array, rows: number, extra: Record<string, unknown> = {}) {
  return {
    ...extra,
    inputs: [{ name: 'x', shape: [rows, x.length / rows], datatype: 'FP32', data: Array.from(x) }],
  };
}

function int32s(seed: number, n: number): Int32Array {
  return Int32Array.from(randomFloats(seed, n), (f) => Math.round(f * 1_000_000));
}

describe('health and metadata', () => {
  test('live and ready answer 200 with JSON', async () => {
    const live = await getJson(base, '/v2/health/live');
    assert.equal(live.status, 200);
    assert.deepEqual(live.json, { live: true });
    const ready = await getJson(base, '/v2/health/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json, { ready: true });
    const generated = /^[0-9a-f]{12}-[0-9a-z]+$/; // a process prefix and a counter
    assert.match(
      ready.headers.get('x-request-id') ?? '',
      generated,
      'a new request id when the client sent none',
    );
    assert.notEqual(ready.headers.get('x-request-id'), live.headers.get('x-request-id'));
    const missing = await getJson(base, '/v2/models/nope');
    assert.match(missing.headers.get('x-request-id') ?? '', generated, 'errors carry x-request-id too');
  });

  test('x-request-id from the client is echoed', async () => {
    const res = await request(`${base}/v2/health/live`, { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(res.headers.get('x-request-id'), 'abc-123');
  });

  test('an oversized or odd x-request-id is replaced, not echoed into logs and headers', async () => {
    for (const bad of ['x'.repeat(129), 'has space']) {
      const res = await request(`${base}/v2/health/live`, { headers: { 'x-request-id': bad } });
      assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f]{12}-[0-9a-z]+$/, JSON.stringify(bad));
    }
  });

  test('server metadata lists the extensions', async () => {
    const res = await getJson(base, '/v2');
    assert.equal(res.status, 200);
    const doc = res.json as { name: string; version: string; extensions: string[] };
    assert.equal(doc.name, 'infergate');
    assert.match(doc.version, /^\d+\.\d+\.\d+/);
    for (const ext of ['binary_tensor_data', 'model_repository']) {
      assert.ok(doc.extensions.includes(ext), `extensions include ${ext}`);
    }
  });

  const expected: Record<
    string,
    { versions: string[]; inputs: [string, string, number[]][]; outputs: [string, string, number[]][] }
  > = {
    simple: {
      versions: ['1'],
      inputs: [
        ['INPUT0', 'INT32', [-1, 16]],
        ['INPUT1', 'INT32', [-1, 16]],
      ],
      outputs: [
        ['OUTPUT0', 'INT32', [-1, 16]],
        ['OUTPUT1', 'INT32', [-1, 16]],
      ],
    },
    mlp: { versions: ['1', '2'], inputs: [['x', 'FP32', [-1, 64]]], outputs: [['y', 'FP32', [-1, 10]]] },
    'mlp-large': { versions: ['1'], inputs: [['x', 'FP32', [-1, 512]]], outputs: [['y', 'FP32', [-1, 10]]] },
    'text-direction': {
      versions: ['1'],
      inputs: [['x', 'FP32', [-1, 3, -1, -1]]],
      outputs: [['softmax_0.tmp_0', 'FP32', [-1, 2]]],
    },
  };

  test('the expectations cover every sample model', () => {
    assert.deepEqual(Object.keys(expected).sort(), SAMPLE_MODELS.map((m) => m.name).sort());
  });

  for (const [name, want] of Object.entries(expected)) {
    test(`model metadata: ${name}`, async () => {
      const paths = [`/v2/models/${name}`, ...want.versions.map((v) => `/v2/models/${name}/versions/${v}`)];
      for (const p of paths) {
        const res = await getJson(base, p);
        assert.equal(res.status, 200, p);
        const doc = res.json as ModelMetadata;
        assert.equal(doc.name, name);
        assert.deepEqual(doc.versions, want.versions);
        assert.equal(doc.platform, 'onnx_onnxv1');
        assert.deepEqual(
          doc.inputs.map((i) => [i.name, i.datatype, i.shape]),
          want.inputs,
        );
        assert.deepEqual(
          doc.outputs.map((i) => [i.name, i.datatype, i.shape]),
          want.outputs,
        );
        assert.equal(doc.parameters.execution_provider, 'cpu');
        assert.equal(doc.parameters.max_batch_size, 64);
      }
    });
  }

  test('model ready with and without a version', async () => {
    for (const m of SAMPLE_MODELS) {
      const res = await getJson(base, `/v2/models/${m.name}/ready`);
      assert.equal(res.status, 200, m.name);
      assert.equal((res.json as { ready: boolean }).ready, true);
      for (const v of m.versions) {
        const rv = await getJson(base, `/v2/models/${m.name}/versions/${v}/ready`);
        assert.equal(rv.status, 200, `${m.name} v${v}`);
        assert.deepEqual(rv.json, { name: m.name, version: v, ready: true });
      }
    }
    // No version: the highest one.
    assert.equal(((await getJson(base, '/v2/models/mlp/ready')).json as { version: string }).version, '2');
  });

  test('ready and metadata of unknown models and versions are 404', async () => {
    assertErrorBody(await getJson(base, '/v2/models/nope/ready'), 404, 'BE_ERR_MODEL_NOT_FOUND');
    assertErrorBody(await getJson(base, '/v2/models/nope'), 404, 'BE_ERR_MODEL_NOT_FOUND');
    const v = assertErrorBody(
      await getJson(base, '/v2/models/mlp/versions/3/ready'),
      404,
      'BE_ERR_VERSION_NOT_FOUND',
    );
    assert.match(v.error, /'3'/);
    assertErrorBody(await getJson(base, '/v2/models/mlp/versions/3'), 404, 'BE_ERR_VERSION_NOT_FOUND');
    assertErrorBody(await getJson(base, '/v2/no/such/route'), 404, 'BE_ERR_NOT_FOUND');
  });
});

describe('inference correctness', () => {
  test('simple: exact sum and difference, with int32 wrap-around', async () => {
    const a = int32s(1, 32);
    const b = int32s(2, 32);
    a[0] = 2147483647;
    b[0] = 1;
    a[1] = -2147483648;
    b[1] = 1;
    const doc = okInfer(
      await infer(base, 'simple', {
        inputs: [
          { name: 'INPUT0', shape: [2, 16], datatype: 'INT32', data: Array.from(a) },
          { name: 'INPUT1', shape: [2, 16], datatype: 'INT32', data: Array.from(b) },
        ],
      }),
    );
    const ref = simpleReference(a, b);
    assert.equal(doc.model_name, 'simple');
    assert.equal(doc.model_version, '1');
    assert.deepEqual(output(doc, 'OUTPUT0'), {
      name: 'OUTPUT0',
      datatype: 'INT32',
      shape: [2, 16],
      data: Array.from(ref.sum),
    });
    assert.deepEqual(output(doc, 'OUTPUT1'), {
      name: 'OUTPUT1',
      datatype: 'INT32',
      shape: [2, 16],
      data: Array.from(ref.diff),
    });
    assert.equal(ref.sum[0], -2147483648, 'the case really wraps');
  });

  for (const version of ['1', '2'] as MlpVersion[]) {
    test(`mlp v${version} matches the reference`, async () => {
      const x = randomFloats(10 + Number(version), 3 * 64);
      const doc = okInfer(await infer(base, 'mlp', mlpDoc(x, 3), version));
      assert.equal(doc.model_version, version);
      const y = output(doc, 'y');
      assert.deepEqual(y.shape, [3, 10]);
      assert.equal(y.datatype, 'FP32');
      assertClose(y.data as number[], mlpReference(version, x, 3), TOL, `mlp v${version}`);
    });
  }

  test('mlp v1 and v2 differ, and no version means the highest (2)', async () => {
    const x = randomFloats(20, 64);
    const [v1, v2, latest] = await Promise.all([
      infer(base, 'mlp', mlpDoc(x, 1), '1'),
      infer(base, 'mlp', mlpDoc(x, 1), '2'),
      infer(base, 'mlp', mlpDoc(x, 1)),
    ]);
    const y1 = output(okInfer(v1), 'y').data as number[];
    const y2 = output(okInfer(v2), 'y').data as number[];
    const doc = okInfer(latest);
    assert.equal(doc.model_version, '2');
    assert.deepEqual(output(doc, 'y').data, y2);
    assert.ok(
      y1.some((v, i) => Math.abs(v - y2[i]!) > 1e-3),
      'the two versions answer differently',
    );
  });

  test('mlp-large matches the reference (batch of 4)', async () => {
    const x = randomFloats(30, 4 * 512);
    const doc = okInfer(await infer(base, 'mlp-large', mlpDoc(x, 4)));
    const y = output(doc, 'y');
    assert.deepEqual(y.shape, [4, 10]);
    assertClose(y.data as number[], mlpLargeReference(x, 4), TOL, 'mlp-large');
  });

  test('text-direction answers probabilities that sum to 1', async () => {
    const rows = 2;
    const x = randomFloats(40, rows * 3 * 48 * 192);
    const doc = okInfer(
      await infer(base, 'text-direction', {
        inputs: [{ name: 'x', shape: [rows, 3, 48, 192], datatype: 'FP32', data: Array.from(x) }],
      }),
    );
    const p = output(doc, 'softmax_0.tmp_0');
    assert.deepEqual(p.shape, [rows, 2]);
    const data = p.data as number[];
    for (let r = 0; r < rows; r++) {
      const a = data[2 * r]!;
      const b = data[2 * r + 1]!;
      assert.ok(a >= 0 && a <= 1 && b >= 0 && b <= 1, `row ${r} in [0,1]`);
      assert.ok(Math.abs(a + b - 1) < 1e-5, `row ${r} sums to 1 (${a + b})`);
    }
  });

  test('id is echoed; no id means no id', async () => {
    const x = randomFloats(50, 64);
    const doc = okInfer(await infer(base, 'mlp', mlpDoc(x, 1, { id: 'req-42 ü' })));
    assert.equal(doc.id, 'req-42 ü');
    const none = okInfer(await infer(base, 'mlp', mlpDoc(x, 1)));
    assert.equal('id' in none, false);
  });

  test('outputs filter: only the named outputs, in the asked order', async () => {
    const a = int32s(3, 16);
    const b = int32s(4, 16);
    const inputs = [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from(a) },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from(b) },
    ];
    const ref = simpleReference(a, b);
    const reversed = okInfer(
      await infer(base, 'simple', { inputs, outputs: [{ name: 'OUTPUT1' }, { name: 'OUTPUT0' }] }),
    );
    assert.deepEqual(
      reversed.outputs.map((o) => o.name),
      ['OUTPUT1', 'OUTPUT0'],
    );
    assert.deepEqual(reversed.outputs[0]!.data, Array.from(ref.diff));
    const one = okInfer(await infer(base, 'simple', { inputs, outputs: [{ name: 'OUTPUT1' }] }));
    assert.deepEqual(
      one.outputs.map((o) => o.name),
      ['OUTPUT1'],
    );
  });

  test('nested data is accepted and equals flat data', async () => {
    const x = randomFloats(60, 2 * 64);
    const nested = [Array.from(x.subarray(0, 64)), Array.from(x.subarray(64))];
    const doc = okInfer(
      await infer(
        base,
        'mlp',
        { inputs: [{ name: 'x', shape: [2, 64], datatype: 'FP32', data: nested }] },
        '1',
      ),
    );
    assertClose(output(doc, 'y').data as number[], mlpReference('1', x, 2), TOL, 'nested');
  });

  test('every request content type works for a JSON body', async () => {
    const x = randomFloats(70, 64);
    const body = JSON.stringify(mlpDoc(x, 1));
    const want = mlpReference('2', x, 1);
    const variants: (string | undefined)[] = [
      'application/json',
      'application/json; charset=utf-8',
      'application/octet-stream',
      'text/plain',
      undefined,
    ];
    for (const ct of variants) {
      const res = await request(base + inferPath('mlp'), {
        method: 'POST',
        // A Uint8Array body makes fetch send no content-type at all.
        body: ct === undefined ? new TextEncoder().encode(body) : body,
        headers: ct === undefined ? {} : { 'content-type': ct },
      });
      const doc = okInfer(res);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `answer type for ${ct}`);
      assertClose(output(doc, 'y').data as number[], want, TOL, `content-type ${ct}`);
    }
  });
});

describe('binary tensor extension', () => {
  test('binary inputs, JSON outputs', async () => {
    const a = int32s(5, 32);
    const b = int32s(6, 32);
    const res = await postBinary(
      base,
      inferPath('simple'),
      {
        inputs: [
          { name: 'INPUT0', shape: [2, 16], datatype: 'INT32', parameters: { binary_data_size: 128 } },
          { name: 'INPUT1', shape: [2, 16], datatype: 'INT32', parameters: { binary_data_size: 128 } },
        ],
      },
      [leBytes(a), leBytes(b)],
    );
    const doc = okInfer(res);
    assert.equal(
      res.headers.get('inference-header-content-length'),
      null,
      'a JSON answer has no header length',
    );
    const ref = simpleReference(a, b);
    assert.deepEqual(output(doc, 'OUTPUT0').data, Array.from(ref.sum));
    assert.deepEqual(output(doc, 'OUTPUT1').data, Array.from(ref.diff));
  });

  test('binary outputs per output (outputs[].parameters.binary_data)', async () => {
    const a = int32s(7, 16);
    const b = int32s(8, 16);
    const res = await infer(base, 'simple', {
      inputs: [
        { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from(a) },
        { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from(b) },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }, { name: 'OUTPUT1' }],
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    const headerLength = Number(res.headers.get('inference-header-content-length'));
    const doc = JSON.parse(res.body.subarray(0, headerLength).toString('utf8')) as {
      outputs: { name: string; data?: number[]; parameters?: { binary_data_size: number } }[];
    };
    assert.deepEqual(doc.outputs[0]!.parameters, { binary_data_size: 64 });
    const ref = simpleReference(a, b);
    assert.deepEqual(doc.outputs[1]!.data, Array.from(ref.diff), 'OUTPUT1 stays JSON');
    const bins = binaryOutputs(res);
    assert.deepEqual([...bins.keys()], ['OUTPUT0']);
    assert.deepEqual(bins.get('OUTPUT0'), leBytes(ref.sum));
  });

  test('binary outputs for all (parameters.binary_data_output), with a per-output override', async () => {
    const x = randomFloats(80, 2 * 64);
    const res = await infer(base, 'mlp', mlpDoc(x, 2, { parameters: { binary_data_output: true } }), '1');
    const bins = binaryOutputs(res);
    const y = bins.get('y');
    assert.ok(y);
    assert.equal(y.length, 2 * 10 * 4);
    const got = new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.byteLength));
    assertClose(got, mlpReference('1', x, 2), TOL, 'binary y');

    const a = int32s(9, 16);
    const b = int32s(10, 16);
    const mixed = await infer(base, 'simple', {
      parameters: { binary_data_output: true },
      inputs: [
        { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from(a) },
        { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from(b) },
      ],
      outputs: [{ name: 'OUTPUT1', parameters: { binary_data: false } }, { name: 'OUTPUT0' }],
    });
    const ref = simpleReference(a, b);
    const mb = binaryOutputs(mixed);
    assert.deepEqual([...mb.keys()], ['OUTPUT0'], 'OUTPUT0 takes the binary default');
    assert.deepEqual(mb.get('OUTPUT0'), leBytes(ref.sum));
    const doc = mixed.json as { outputs: { name: string; data?: number[] }[] };
    assert.deepEqual(
      doc.outputs.map((o) => o.name),
      ['OUTPUT1', 'OUTPUT0'],
    );
    assert.deepEqual(doc.outputs[0]!.data, Array.from(ref.diff));
  });

  test('binary in, binary out on mlp-large', async () => {
    const x = randomFloats(90, 3 * 512);
    const res = await postBinary(
      base,
      inferPath('mlp-large'),
      {
        id: 'bin',
        inputs: [
          { name: 'x', shape: [3, 512], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } },
        ],
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
      },
      [leBytes(x)],
    );
    const y = binaryOutputs(res).get('y')!;
    assert.equal((res.json as { id: string }).id, 'bin');
    assertClose(
      new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.byteLength)),
      mlpLargeReference(x, 3),
      TOL,
    );
  });

  test('raw body with Inference-Header-Content-Length: 0 on mlp (one input)', async () => {
    const x = randomFloats(100, 3 * 64);
    const res = await request(base + inferPath('mlp', '1'), {
      method: 'POST',
      body: leBytes(x),
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '0' },
    });
    const doc = okInfer(res);
    const y = output(doc, 'y');
    assert.deepEqual(y.shape, [3, 10], 'dim 0 deduced from the byte count');
    assertClose(y.data as number[], mlpReference('1', x, 3), TOL, 'raw');
  });

  test('raw body on simple (two inputs) is 400 BE_ERR_INVALID_BINARY', async () => {
    const res = await request(base + inferPath('simple'), {
      method: 'POST',
      body: leBytes(int32s(11, 16)),
      headers: { 'inference-header-content-length': '0' },
    });
    const err = assertErrorBody(res, 400, 'BE_ERR_INVALID_BINARY');
    assert.equal(err.field, 'Inference-Header-Content-Length');
    assert.match(err.error, /simple/);
  });

  test('raw body that is not a whole number of rows is 400', async () => {
    const res = await request(base + inferPath('mlp'), {
      method: 'POST',
      body: Buffer.alloc(64 * 4 + 4),
      headers: { 'inference-header-content-length': '0' },
    });
    assertErrorBody(res, 400, 'BE_ERR_DATA_LENGTH_MISMATCH');
  });
});
