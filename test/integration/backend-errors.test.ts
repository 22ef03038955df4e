// Bad requests against a real backend: every rejection has the right status, a stable code, names
// the offending input or field, is `{error, code[, field]}` JSON without a stack trace, and leaves
// the replica serving.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mlpReference } from '../../models/reference.js';
import {
  assertClose,
  assertErrorBody,
  type HttpResult,
  inferPath,
  leBytes,
  okInfer,
  output,
  postBinary,
  randomFloats,
  rawHttp,
  request,
  removeTempDirs,
  type RunningBackend,
  sampleRepository,
  scrape,
  histogram,
  startBackend,
  tempDir,
} from '../helpers/backend.js';
import { LOOKUP_SIZE, lookupModel, writeModel } from '../helpers/fixtures.js';

const BODY_LIMIT = 1024 * 1024;
let server: RunningBackend;
let small: RunningBackend;
let base: string;

before(async () => {
  const repo = await sampleRepository();
  [server, small] = await Promise.all([
    startBackend({ modelRepository: repo }),
    startBackend({ modelRepository: repo, bodyLimit: BODY_LIMIT }),
  ]);
  base = server.url;
});

after(async () => {
  await Promise.all([server?.close(), small?.close()]);
  await removeTempDirs();
});

const X = randomFloats(1, 64);
const goodMlp = () => ({ inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', data: Array.from(X) }] });
const row16 = Array.from({ length: 16 }, (_, i) => i);
const simpleInput = (name: string, shape: number[], data: unknown = row16) => ({
  name,
  shape,
  datatype: 'INT32',
  data,
});

/** The replica still answers a good request correctly. */
async function stillServes(url = base): Promise<void> {
  const res = await request(url + inferPath('mlp', '2'), { method: 'POST', body: JSON.stringify(goodMlp()) });
  assertClose(output(okInfer(res), 'y').data as number[], mlpReference('2', X, 1), 1e-5, 'after the error');
}

interface Case {
  name: string;
  send: () => Promise<HttpResult>;
  status: number;
  code: string;
  /** Expected `field`, when the error has one. */
  field?: string;
  /** What the message must mention (the input, the field, the value). */
  mentions: RegExp;
  url?: () => string;
}

const post = (model: string, doc: unknown, version?: string) => () =>
  request(base + inferPath(model, version), { method: 'POST', body: JSON.stringify(doc) });
const postText =
  (model: string, body: string | Uint8Array, headers: Record<string, string> = {}) =>
  () =>
    request(base + inferPath(model), { method: 'POST', body, headers });
const mlpWith = (input: Record<string, unknown>) =>
  post('mlp', { inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', data: Array.from(X), ...input }] });

const CASES: Case[] = [
  {
    name: 'unknown model',
    send: post('no-such-model', goodMlp()),
    status: 404,
    code: 'BE_ERR_MODEL_NOT_FOUND',
    field: 'model',
    mentions: /no-such-model/,
  },
  {
    name: 'unknown version',
    send: post('mlp', goodMlp(), '7'),
    status: 404,
    code: 'BE_ERR_VERSION_NOT_FOUND',
    field: 'version',
    mentions: /'7'.*versions: 1, 2/,
  },
  {
    name: 'unknown input name',
    send: post('mlp', { inputs: [{ name: 'z', shape: [1, 64], datatype: 'FP32', data: Array.from(X) }] }),
    status: 400,
    code: 'BE_ERR_UNKNOWN_INPUT',
    field: 'inputs[0].name',
    mentions: /'z'/,
  },
  {
    name: 'missing input',
    send: post('simple', { inputs: [simpleInput('INPUT0', [1, 16])] }),
    status: 400,
    code: 'BE_ERR_MISSING_INPUT',
    field: 'inputs',
    mentions: /INPUT1/,
  },
  {
    name: 'datatype mismatch (FP64 for FP32)',
    send: mlpWith({ datatype: 'FP64' }),
    status: 400,
    code: 'BE_ERR_DATATYPE_MISMATCH',
    field: 'inputs[0].datatype',
    mentions: /'x'.*FP32.*FP64/,
  },
  {
    name: 'rank mismatch',
    send: mlpWith({ shape: [64] }),
    status: 400,
    code: 'BE_ERR_SHAPE_MISMATCH',
    field: 'inputs[0].shape',
    mentions: /'x'.*rank/,
  },
  {
    name: 'fixed dim mismatch ([1,63] for [-1,64])',
    send: mlpWith({ shape: [1, 63], data: Array.from(X.subarray(0, 63)) }),
    status: 400,
    code: 'BE_ERR_SHAPE_MISMATCH',
    field: 'inputs[0].shape[1]',
    mentions: /'x' dim 1 must be 64, not 63/,
  },
  {
    name: 'batch sizes disagree between INPUT0 and INPUT1',
    send: post('simple', {
      inputs: [simpleInput('INPUT0', [1, 16]), simpleInput('INPUT1', [2, 16], [...row16, ...row16])],
    }),
    status: 400,
    code: 'BE_ERR_SHAPE_MISMATCH',
    field: 'inputs[1].shape[0]',
    mentions: /INPUT1.*batch size 2.*1/,
  },
  {
    name: 'data length differs from the element count',
    send: mlpWith({ data: Array.from(X.subarray(0, 63)) }),
    status: 400,
    code: 'BE_ERR_DATA_LENGTH_MISMATCH',
    field: 'inputs[0].data',
    mentions: /63 elements.*64/,
  },
  {
    name: 'too many data elements',
    send: mlpWith({ data: [...Array.from(X), 1] }),
    status: 400,
    code: 'BE_ERR_DATA_LENGTH_MISMATCH',
    field: 'inputs[0].data',
    mentions: /more elements than the 64/,
  },
  {
    name: 'negative dim',
    send: mlpWith({ shape: [-1, 64] }),
    status: 400,
    code: 'BE_ERR_INVALID_SHAPE',
    field: 'inputs[0].shape[0]',
    mentions: /inputs\[0\]\.shape\[0\].*-1/,
  },
  {
    name: 'non-integer dim',
    send: mlpWith({ shape: [1.5, 64] }),
    status: 400,
    code: 'BE_ERR_INVALID_SHAPE',
    field: 'inputs[0].shape[0]',
    mentions: /integer/,
  },
  {
    name: 'shape [16, 2^60+2] overflows 64 bits',
    // Sent as text: 2^60+2 is not a double, and the server must see the digits as sent.
    send: postText(
      'mlp',
      '{"inputs":[{"name":"x","shape":[16,1152921504606846978],"datatype":"FP32","data":[1,2,3]}]}',
    ),
    status: 400,
    code: 'BE_ERR_SHAPE_OVERFLOW',
    field: 'inputs[0].shape',
    mentions: /overflows/,
  },
  {
    name: 'shape whose count wraps to a small number in 64 bits ([2^32, 2^32, 1] elements)',
    send: postText(
      'mlp',
      '{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"FP32","data":[1]}]}',
    ),
    status: 400,
    code: 'BE_ERR_SHAPE_OVERFLOW',
    field: 'inputs[0].shape',
    mentions: /inputs\[0\]\.shape/,
  },
  {
    name: 'JSON nested 50,000 deep',
    send: postText(
      'mlp',
      `{"inputs":[{"name":"x","shape":[1,64],"datatype":"FP32","data":${'['.repeat(50_000)}${']'.repeat(50_000)}}]}`,
    ),
    status: 400,
    code: 'BE_ERR_NESTING_TOO_DEEP',
    mentions: /nested/,
  },
  {
    name: 'data nested deeper than the rank',
    send: mlpWith({ data: [[[...Array.from(X)]]] }),
    status: 400,
    code: 'BE_ERR_INVALID_DATA',
    field: 'inputs[0].data',
    mentions: /rank 2/,
  },
  {
    name: 'malformed JSON',
    send: postText('mlp', '{"inputs": [', { 'content-type': 'application/json' }),
    status: 400,
    code: 'BE_ERR_MALFORMED_JSON',
    mentions: /JSON/,
  },
  {
    name: 'invalid UTF-8',
    send: postText('mlp', new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])),
    status: 400,
    code: 'BE_ERR_MALFORMED_JSON',
    mentions: /UTF-8/,
  },
  {
    name: 'empty body',
    send: () =>
      request(base + inferPath('mlp'), { method: 'POST', headers: { 'content-type': 'application/json' } }),
    status: 400,
    code: 'BE_ERR_MALFORMED_JSON',
    mentions: /JSON/,
  },
  {
    name: 'body is a JSON array, not an object',
    send: post('mlp', [goodMlp()]),
    status: 400,
    code: 'BE_ERR_INVALID_REQUEST',
    mentions: /object/,
  },
  {
    name: 'inputs is not a non-empty array',
    send: post('mlp', { inputs: [] }),
    status: 400,
    code: 'BE_ERR_INVALID_REQUEST',
    field: 'inputs',
    mentions: /inputs/,
  },
  {
    name: 'an input given twice',
    send: post('mlp', { inputs: [goodMlp().inputs[0], goodMlp().inputs[0]] }),
    status: 400,
    code: 'BE_ERR_INVALID_REQUEST',
    field: 'inputs[1].name',
    mentions: /'x'.*twice/,
  },
  {
    name: 'id that is not a string',
    send: post('mlp', { ...goodMlp(), id: 7 }),
    status: 400,
    code: 'BE_ERR_INVALID_REQUEST',
    field: 'id',
    mentions: /id/,
  },
  {
    name: 'unknown datatype',
    send: mlpWith({ datatype: 'FP8' }),
    status: 400,
    code: 'BE_ERR_UNSUPPORTED_DATATYPE',
    field: 'inputs[0].datatype',
    mentions: /FP8/,
  },
  {
    name: 'data element of the wrong JSON type',
    send: mlpWith({ data: ['a', ...Array.from(X.subarray(1))] }),
    status: 400,
    code: 'BE_ERR_INVALID_DATA',
    field: 'inputs[0].data',
    mentions: /'a'.*number/,
  },
  {
    name: 'INT32 element out of range',
    send: post('simple', {
      inputs: [simpleInput('INPUT0', [1, 16], [2 ** 31, ...row16.slice(1)]), simpleInput('INPUT1', [1, 16])],
    }),
    status: 400,
    code: 'BE_ERR_INVALID_DATA',
    field: 'inputs[0].data',
    mentions: /2147483648.*INT32/,
  },
  {
    name: 'unknown output name',
    send: post('mlp', { ...goodMlp(), outputs: [{ name: 'y' }, { name: 'logits' }] }),
    status: 400,
    code: 'BE_ERR_UNKNOWN_OUTPUT',
    field: 'outputs[1].name',
    mentions: /'logits'/,
  },
  {
    name: 'binary_data that is not a boolean',
    send: post('mlp', { ...goodMlp(), outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] }),
    status: 400,
    code: 'BE_ERR_INVALID_REQUEST',
    field: 'outputs[0].parameters.binary_data',
    mentions: /binary_data/,
  },
  {
    name: 'batch larger than max_batch_size (65 > 64)',
    send: mlpWith({ shape: [65, 64], data: new Array(65 * 64).fill(0.5) }),
    status: 400,
    code: 'BE_ERR_BATCH_TOO_LARGE',
    field: 'inputs[0].shape[0]',
    mentions: /65.*64/,
  },
  {
    name: 'binary_data_size that disagrees with the shape',
    send: () =>
      postBinary(
        base,
        inferPath('mlp'),
        { inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', parameters: { binary_data_size: 252 } }] },
        [Buffer.alloc(252)],
      ),
    status: 400,
    code: 'BE_ERR_DATA_LENGTH_MISMATCH',
    field: 'inputs[0].parameters.binary_data_size',
    mentions: /252.*256/,
  },
  {
    name: 'binary bytes left over after the inputs',
    send: () =>
      postBinary(
        base,
        inferPath('mlp'),
        { inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', parameters: { binary_data_size: 256 } }] },
        [leBytes(X), Buffer.alloc(8)],
      ),
    status: 400,
    code: 'BE_ERR_INVALID_BINARY',
    field: 'inputs',
    mentions: /256.*264/,
  },
  {
    name: 'binary_data_size without Inference-Header-Content-Length',
    send: post('mlp', {
      inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', parameters: { binary_data_size: 256 } }],
    }),
    status: 400,
    code: 'BE_ERR_INVALID_BINARY',
    field: 'inputs[0].parameters.binary_data_size',
    mentions: /Inference-Header-Content-Length/,
  },
  {
    name: 'Inference-Header-Content-Length that is not a number',
    send: postText('mlp', JSON.stringify(goodMlp()), { 'inference-header-content-length': 'twelve' }),
    status: 400,
    code: 'BE_ERR_INVALID_BINARY',
    field: 'Inference-Header-Content-Length',
    mentions: /twelve/,
  },
  {
    name: 'Inference-Header-Content-Length larger than the body',
    send: postText('mlp', JSON.stringify(goodMlp()), { 'inference-header-content-length': '999999' }),
    status: 400,
    code: 'BE_ERR_INVALID_BINARY',
    field: 'Inference-Header-Content-Length',
    mentions: /999999/,
  },
  {
    name: 'a body over the limit (1 MiB backend)',
    send: () =>
      request(small.url + inferPath('mlp'), {
        method: 'POST',
        body: JSON.stringify({
          inputs: [
            { name: 'x', shape: [64, 64], datatype: 'FP32', data: new Array(64 * 64 * 60).fill(0.123456) },
          ],
        }),
        headers: { 'content-type': 'application/json' },
      }),
    status: 413,
    code: 'BE_ERR_BODY_TOO_LARGE',
    mentions: /1048576/,
    url: () => small.url,
  },
  {
    name: 'a binary body over the limit (1 MiB backend)',
    send: () =>
      postBinary(
        small.url,
        inferPath('mlp'),
        {
          inputs: [
            {
              name: 'x',
              shape: [4097, 64],
              datatype: 'FP32',
              parameters: { binary_data_size: 4097 * 64 * 4 },
            },
          ],
        },
        [Buffer.alloc(4097 * 64 * 4)],
      ),
    status: 413,
    code: 'BE_ERR_BODY_TOO_LARGE',
    mentions: /limit/,
    url: () => small.url,
  },
  // Shapes that match the model's metadata ([-1,3,-1,-1]) but that its layers cannot take: the
  // request's fault, the same on every replica, so a 400 (a 5xx would count against the replica
  // at the gateway), and onnxruntime's message without its source paths.
  {
    name: 'text-direction with a zero-width image: onnxruntime refuses it, 400',
    send: post('text-direction', {
      inputs: [{ name: 'x', shape: [1, 3, 48, 0], datatype: 'FP32', data: [] }],
    }),
    status: 400,
    code: 'BE_ERR_INFERENCE_REJECTED',
    mentions: /model 'text-direction' version 1 cannot run on this input: .*Conv/,
  },
  {
    name: 'text-direction with no rows: onnxruntime refuses it, 400',
    send: post('text-direction', {
      inputs: [{ name: 'x', shape: [0, 3, 48, 192], datatype: 'FP32', data: [] }],
    }),
    status: 400,
    code: 'BE_ERR_INFERENCE_REJECTED',
    mentions: /cannot run on this input: .*reshape/i,
  },
];

describe('regressions', () => {
  const simpleRows = (a: unknown, b: unknown = [row16]) => ({
    inputs: [simpleInput('INPUT0', [1, 16], a), simpleInput('INPUT1', [1, 16], b)],
  });

  test('an output named twice in outputs is a 400 naming outputs[1].name, not a duplicated output', async () => {
    for (const outputs of [
      [{ name: 'OUTPUT0' }, { name: 'OUTPUT0' }],
      [{ name: 'OUTPUT0' }, { name: 'OUTPUT0', parameters: { binary_data: true } }],
    ]) {
      const err = assertErrorBody(
        await post('simple', { ...simpleRows(row16), outputs })(),
        400,
        'BE_ERR_INVALID_REQUEST',
      );
      assert.equal(err.field, 'outputs[1].name');
      assert.match(err.error, /OUTPUT0/);
    }
    // Each output once, in the asked order, still works.
    const doc = okInfer(
      await post('simple', { ...simpleRows(row16), outputs: [{ name: 'OUTPUT1' }, { name: 'OUTPUT0' }] })(),
    );
    assert.deepEqual(
      doc.outputs.map((o) => o.name),
      ['OUTPUT1', 'OUTPUT0'],
    );
    await stillServes();
  });

  test('ragged nested data is a 400 naming the input; flat and nested data keep working', async () => {
    // 16 elements in all, as [1,16] needs, but the second input's rows are ragged.
    const a = row16;
    for (const ragged of [
      [[...a.slice(0, 15)], [a[15]]],
      [a.slice(0, 8), a.slice(8)],
    ]) {
      const err = assertErrorBody(
        await post('simple', simpleRows([a], ragged))(),
        400,
        'BE_ERR_DATA_LENGTH_MISMATCH',
      );
      assert.equal(err.field, 'inputs[1].data');
      assert.match(err.error, /'INPUT1'/);
    }
    const mlpRagged = [Array.from(X.subarray(0, 60)), Array.from(X.subarray(60))];
    const err = assertErrorBody(
      await post('mlp', { inputs: [{ name: 'x', shape: [2, 32], datatype: 'FP32', data: mlpRagged }] })(),
      400,
      'BE_ERR_DATA_LENGTH_MISMATCH',
    );
    assert.match(err.error, /input 'x'/);
    assert.equal(err.field, 'inputs[0].data');

    const sums = row16.map((v) => 2 * v);
    for (const [label, doc] of [
      ['flat', simpleRows(row16, row16)],
      ['nested', simpleRows([row16], [row16])],
    ] as const) {
      const res = okInfer(await post('simple', doc)());
      assert.deepEqual(output(res, 'OUTPUT0').data, sums, label);
    }
    await stillServes();
  });
});

describe('bad requests', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const err = assertErrorBody(await c.send(), c.status, c.code);
      assert.equal(err.field, c.field, `field of '${err.error}'`);
      assert.match(err.error, c.mentions);
      await stillServes(c.url?.() ?? base);
    });
  }

  test('the same bad requests, all at once, do not disturb good ones', async () => {
    const cases = CASES.filter((c) => c.url === undefined);
    const results = await Promise.all([...cases.map((c) => c.send()), ...cases.map(() => stillServes())]);
    results.slice(0, cases.length).forEach((res, i) => {
      assertErrorBody(res as HttpResult, cases[i]!.status, cases[i]!.code);
    });
  });

  test('parameters.binary_data_output that is not a boolean is a 400, like outputs[].parameters.binary_data', async () => {
    const err = assertErrorBody(
      await post('mlp', { ...goodMlp(), parameters: { binary_data_output: 'true' } })(),
      400,
      'BE_ERR_INVALID_REQUEST',
    );
    assert.equal(err.field, 'parameters.binary_data_output');
  });

  test('unknown routes and methods are JSON 404s', async () => {
    assertErrorBody(await request(`${base}/v2/models/mlp/infer`), 404, 'BE_ERR_NOT_FOUND');
    assertErrorBody(await request(`${base}/v3`, { method: 'POST', body: '{}' }), 404, 'BE_ERR_NOT_FOUND');
  });

  test('a path with .. segments sent literally names no model', async () => {
    const res = await rawHttp(base, 'POST', '/v2/models/%2E%2E%2Fmlp/infer', JSON.stringify(goodMlp()));
    assert.equal(res.status, 404);
    const doc = JSON.parse(res.text) as { code: string };
    assert.equal(doc.code, 'BE_ERR_MODEL_NOT_FOUND');
  });

  for (const [what, method, path] of [
    ['a URL that cannot be decoded', 'GET', '/v2/models/%zz'],
    ['an infer URL that cannot be decoded', 'POST', '/v2/models/%zz/infer'],
    ['a model name over 256 characters', 'GET', `/v2/models/${'a'.repeat(300)}/ready`],
  ] as const) {
    test(`${what} is the replica's own 400 BE_ERR_BAD_URL, with the request id`, async () => {
      const res = await rawHttp(
        base,
        method,
        path,
        method === 'POST' ? JSON.stringify(goodMlp()) : undefined,
      );
      assert.equal(res.status, 400, res.text);
      const doc = JSON.parse(res.text) as { code: string; error: string };
      assert.deepEqual(Object.keys(doc).sort(), ['code', 'error']);
      assert.equal(doc.code, 'BE_ERR_BAD_URL');
      assert.ok(doc.error.length < 300, 'the echoed URL is bounded');
      assert.ok(res.headers['x-request-id'], 'the answer carries x-request-id');
      await stillServes();
    });
  }

  test('a very long model name is cut in the message', async () => {
    const name = 'm'.repeat(200);
    const err = assertErrorBody(await post(name, goodMlp())(), 404, 'BE_ERR_MODEL_NOT_FOUND');
    assert.ok(err.error.length < 200, 'the echoed name is bounded');
  });
});

describe('a request that onnxruntime refuses for its data, in a merged batch', () => {
  let lookups: RunningBackend;
  before(async () => {
    const root = await tempDir('infergate-lookup-');
    // A long delay, so that requests sent together are merged into one batch.
    const config = { max_batch_size: 8, max_queue_delay_ms: 300 };
    await writeModel(root, 'lookup', lookupModel(), config);
    await writeModel(root, 'lookup-inline', lookupModel(), { ...config, execution: 'inline' });
    lookups = await startBackend({ modelRepository: root });
  });
  after(() => lookups?.close());

  const lookup = (model: string, index: number) =>
    request(lookups.url + inferPath(model), {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'index', shape: [1, 1], datatype: 'INT64', data: [index] }] }),
    });

  for (const model of ['lookup', 'lookup-inline']) {
    test(`${model}: only the request at fault fails (400); the others in its batch are answered`, async () => {
      const indices = [1, 99, 4, -1];
      const results = await Promise.all(indices.map((i) => lookup(model, i)));
      const { samples } = await scrape(lookups.url);
      // The four ran as one merged batch (then each alone, after the merged run was refused).
      assert.deepEqual(histogram(samples, 'infergate_backend_batch_size', { model, version: '1' }), {
        sum: 4,
        count: 1,
      });
      const err = assertErrorBody(results[1]!, 400, 'BE_ERR_INFERENCE_REJECTED');
      assert.match(err.error, new RegExp(`model '${model}' version 1 cannot run on this input: .*99`));
      for (const k of [0, 2, 3]) {
        const doc = okInfer(results[k]!);
        const i = indices[k]!;
        assert.deepEqual(output(doc, 'value').data, [1.5 * (i < 0 ? LOOKUP_SIZE + i : i)]);
      }
    });
  }
});
