// Round trips of every datatype onnxruntime-node can feed and fetch, through Identity fixture
// models, in JSON and in the binary tensor extension.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertErrorBody,
  binaryOutputs,
  bytesElements,
  histogram,
  infer,
  inferPath,
  leBytes,
  okInfer,
  output,
  postBinary,
  removeTempDirs,
  type RunningBackend,
  scrape,
  startBackend,
  tempDir,
} from '../helpers/backend.js';
import { identityModel, writeModel } from '../helpers/fixtures.js';

let server: RunningBackend;
let base: string;

interface TypeCase {
  datatype: string;
  /** Six elements, as JSON sends them (undefined: the type has no JSON form). */
  json: unknown[] | undefined;
  /** The same six elements, little-endian. */
  bytes: Buffer;
}

const u8 = (...v: number[]) => leBytes(Uint8Array.from(v));
const CASES: TypeCase[] = [
  { datatype: 'BOOL', json: [true, false, true, false, false, true], bytes: u8(1, 0, 1, 0, 0, 1) },
  { datatype: 'UINT8', json: [0, 255, 7, 128, 1, 254], bytes: u8(0, 255, 7, 128, 1, 254) },
  {
    datatype: 'INT8',
    json: [-128, 127, 0, -1, 1, 64],
    bytes: leBytes(Int8Array.from([-128, 127, 0, -1, 1, 64])),
  },
  {
    datatype: 'UINT16',
    json: [0, 65535, 1, 256, 4096, 7],
    bytes: leBytes(Uint16Array.from([0, 65535, 1, 256, 4096, 7])),
  },
  {
    datatype: 'INT16',
    json: [-32768, 32767, 0, -1, 300, -300],
    bytes: leBytes(Int16Array.from([-32768, 32767, 0, -1, 300, -300])),
  },
  {
    datatype: 'UINT32',
    json: [0, 4294967295, 1, 65536, 123456789, 5],
    bytes: leBytes(Uint32Array.from([0, 4294967295, 1, 65536, 123456789, 5])),
  },
  {
    datatype: 'INT32',
    json: [-2147483648, 2147483647, 0, -1, 42, -42],
    bytes: leBytes(Int32Array.from([-2147483648, 2147483647, 0, -1, 42, -42])),
  },
  {
    datatype: 'UINT64',
    json: [0, 2 ** 53 - 1, 1, 2 ** 40, 3, 4],
    bytes: leBytes(BigUint64Array.from([0n, 2n ** 53n - 1n, 1n, 2n ** 40n, 3n, 4n])),
  },
  {
    datatype: 'INT64',
    json: [-(2 ** 53 - 1), 2 ** 53 - 1, 0, -1, 2 ** 40, -(2 ** 40)],
    bytes: leBytes(BigInt64Array.from([-(2n ** 53n - 1n), 2n ** 53n - 1n, 0n, -1n, 2n ** 40n, -(2n ** 40n)])),
  },
  {
    datatype: 'FP32',
    json: [0.5, -1.25, 3, 0.125, -65504, 0],
    bytes: leBytes(Float32Array.from([0.5, -1.25, 3, 0.125, -65504, 0])),
  },
  {
    datatype: 'FP64',
    json: [1.5, -1e300, 0.1, 2 ** -1074, 123456789.123, 0],
    bytes: leBytes(Float64Array.from([1.5, -1e300, 0.1, 2 ** -1074, 123456789.123, 0])),
  },
  // 1, -2, +inf, 0.5, 65504 (max), 2^-24 (smallest subnormal)
  {
    datatype: 'FP16',
    json: undefined,
    bytes: leBytes(Uint16Array.from([0x3c00, 0xc000, 0x7c00, 0x3800, 0x7bff, 0x0001])),
  },
  {
    datatype: 'BYTES',
    json: ['a', '', 'héllo wörld', '日本語', 'x'.repeat(300), 'tab\t"q"\\'],
    bytes: bytesElements(
      ['a', '', 'héllo wörld', '日本語', 'x'.repeat(300), 'tab\t"q"\\'].map((s) => Buffer.from(s, 'utf8')),
    ),
  },
];

const modelOf = (dt: string) => `id-${dt.toLowerCase()}`;

before(async () => {
  const root = await tempDir('infergate-types-');
  for (const c of CASES) {
    await writeModel(
      root,
      modelOf(c.datatype),
      identityModel(modelOf(c.datatype), [{ suffix: 'X', datatype: c.datatype, dims: [3] }]),
      {
        max_batch_size: 8,
        max_queue_delay_ms: 0,
      },
    );
  }
  // Long delay, batch of 4: four concurrent 1-row requests always make exactly one batch.
  for (const dt of ['BYTES', 'INT64', 'BOOL']) {
    await writeModel(
      root,
      `merge-${dt.toLowerCase()}`,
      identityModel('merge', [{ suffix: 'X', datatype: dt, dims: [3] }]),
      {
        max_batch_size: 4,
        max_queue_delay_ms: 20_000,
      },
    );
  }
  await writeModel(
    root,
    'mixed',
    identityModel('mixed', [
      { suffix: 'BOOL', datatype: 'BOOL', dims: [2] },
      { suffix: 'INT64', datatype: 'INT64', dims: [2] },
      { suffix: 'FP64', datatype: 'FP64', dims: [2] },
      { suffix: 'BYTES', datatype: 'BYTES', dims: [2] },
      { suffix: 'FP16', datatype: 'FP16', dims: [2] },
    ]),
  );
  server = await startBackend({ modelRepository: root });
  base = server.url;
});

after(async () => {
  await server?.close();
  await removeTempDirs();
});

const jsonInput = (c: TypeCase) => ({ name: 'IN_X', shape: [2, 3], datatype: c.datatype, data: c.json });
/** The header of a request whose one input, IN_X, is `bytes` in binary; `extra` joins it. */
const binaryXHeader = (
  datatype: string,
  shape: number[],
  bytes: Uint8Array,
  extra: Record<string, unknown> = {},
) => ({
  inputs: [{ name: 'IN_X', shape, datatype, parameters: { binary_data_size: bytes.length } }],
  ...extra,
});
/** POSTs `bytes` as the one binary input IN_X of `model` (header: binaryXHeader). */
const postX = (
  model: string,
  datatype: string,
  shape: number[],
  bytes: Uint8Array,
  extra: Record<string, unknown> = {},
) => postBinary(base, inferPath(model), binaryXHeader(datatype, shape, bytes, extra), [bytes]);
const binaryHeader = (c: TypeCase, outputs: unknown) =>
  binaryXHeader(c.datatype, [2, 3], c.bytes, outputs === undefined ? {} : { outputs });

describe('datatype round trips', () => {
  test('metadata reports every fixture datatype', async () => {
    for (const c of CASES) {
      const res = await fetch(`${base}/v2/models/${modelOf(c.datatype)}`);
      const doc = (await res.json()) as {
        inputs: { datatype: string; shape: number[] }[];
        outputs: { datatype: string }[];
      };
      assert.deepEqual(doc.inputs[0], { name: 'IN_X', datatype: c.datatype, shape: [-1, 3] });
      assert.equal(doc.outputs[0]!.datatype, c.datatype);
    }
  });

  for (const c of CASES) {
    if (c.json !== undefined) {
      test(`${c.datatype}: JSON in, JSON out`, async () => {
        const doc = okInfer(await infer(base, modelOf(c.datatype), { inputs: [jsonInput(c)] }));
        assert.deepEqual(output(doc, 'OUT_X'), {
          name: 'OUT_X',
          datatype: c.datatype,
          shape: [2, 3],
          data: c.json,
        });
      });

      test(`${c.datatype}: JSON in, binary out`, async () => {
        const res = await infer(base, modelOf(c.datatype), {
          inputs: [jsonInput(c)],
          parameters: { binary_data_output: true },
        });
        assert.deepEqual(binaryOutputs(res).get('OUT_X'), c.bytes);
        assert.equal((res.json as { outputs: { datatype: string }[] }).outputs[0]!.datatype, c.datatype);
      });
    }

    test(`${c.datatype}: binary in, binary out`, async () => {
      const res = await postBinary(
        base,
        inferPath(modelOf(c.datatype)),
        binaryHeader(c, [{ name: 'OUT_X', parameters: { binary_data: true } }]),
        [c.bytes],
      );
      const out = (res.json as { outputs: { shape: number[]; parameters: unknown }[] }).outputs[0]!;
      assert.deepEqual(out.shape, [2, 3]);
      assert.deepEqual(out.parameters, { binary_data_size: c.bytes.length });
      assert.deepEqual(binaryOutputs(res).get('OUT_X'), c.bytes);
    });

    if (c.json !== undefined) {
      test(`${c.datatype}: binary in, JSON out`, async () => {
        const res = await postBinary(base, inferPath(modelOf(c.datatype)), binaryHeader(c, undefined), [
          c.bytes,
        ]);
        assert.deepEqual(output(okInfer(res), 'OUT_X').data, c.json);
      });
    }
  }

  test('INT64 and UINT64 keep their full 64-bit range in binary', async () => {
    const i64 = leBytes(BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, -1n]));
    const u64 = leBytes(BigUint64Array.from([2n ** 64n - 1n, 2n ** 63n, 1n]));
    for (const [dt, bytes] of [
      ['INT64', i64],
      ['UINT64', u64],
    ] as const) {
      const res = await postBinary(
        base,
        inferPath(modelOf(dt)),
        {
          inputs: [{ name: 'IN_X', shape: [1, 3], datatype: dt, parameters: { binary_data_size: 24 } }],
          parameters: { binary_data_output: true },
        },
        [bytes],
      );
      assert.deepEqual(binaryOutputs(res).get('OUT_X'), bytes, dt);
    }
  });

  test('FP16 has no JSON form: JSON input and JSON output are 400 BE_ERR_UNSUPPORTED_DATATYPE', async () => {
    const fp16 = CASES.find((c) => c.datatype === 'FP16')!;
    const jsonIn = assertErrorBody(
      await infer(base, 'id-fp16', {
        inputs: [{ name: 'IN_X', shape: [1, 3], datatype: 'FP16', data: [1, 2, 3] }],
      }),
      400,
      'BE_ERR_UNSUPPORTED_DATATYPE',
    );
    assert.equal(jsonIn.field, 'inputs[0].datatype');
    assert.match(jsonIn.error, /FP16.*binary/);

    const allJson = assertErrorBody(
      await postBinary(base, inferPath('id-fp16'), binaryHeader(fp16, undefined), [fp16.bytes]),
      400,
      'BE_ERR_UNSUPPORTED_DATATYPE',
    );
    assert.equal(allJson.field, 'parameters.binary_data_output');
    assert.match(allJson.error, /OUT_X.*FP16/);

    const named = assertErrorBody(
      await postBinary(base, inferPath('id-fp16'), binaryHeader(fp16, [{ name: 'OUT_X' }]), [fp16.bytes]),
      400,
      'BE_ERR_UNSUPPORTED_DATATYPE',
    );
    assert.equal(named.field, 'outputs[0].parameters.binary_data');
  });

  test('values out of range for the datatype are 400 BE_ERR_INVALID_DATA', async () => {
    const bad: [string, unknown[]][] = [
      ['UINT8', [0, 256, 0, 0, 0, 0]],
      ['INT8', [-129, 0, 0, 0, 0, 0]],
      ['UINT16', [-1, 0, 0, 0, 0, 0]],
      ['UINT32', [2 ** 32, 0, 0, 0, 0, 0]],
      ['INT64', [2 ** 53, 0, 0, 0, 0, 0]],
      ['UINT64', [1.5, 0, 0, 0, 0, 0]],
      ['BOOL', [1, 0, true, false, true, false]],
      ['BYTES', [7, 'a', 'b', 'c', 'd', 'e']],
      ['FP64', ['1.0', 0, 0, 0, 0, 0]],
    ];
    for (const [dt, data] of bad) {
      const err = assertErrorBody(
        await infer(base, modelOf(dt), { inputs: [{ name: 'IN_X', shape: [2, 3], datatype: dt, data }] }),
        400,
        'BE_ERR_INVALID_DATA',
      );
      assert.equal(err.field, 'inputs[0].data', dt);
    }
  });

  test('NaN and the infinities travel as "NaN", "Infinity", "-Infinity" in JSON, as IEEE bits in binary', async () => {
    const special = ['NaN', 'Infinity', '-Infinity', 1.5, -0.5, 'NaN'];
    for (const dt of ['FP32', 'FP64']) {
      const doc = okInfer(
        await infer(base, modelOf(dt), {
          inputs: [{ name: 'IN_X', shape: [2, 3], datatype: dt, data: special }],
        }),
      );
      assert.deepEqual(output(doc, 'OUT_X').data, special, `${dt} JSON`);
      const values = special.map(Number);
      const bytes = leBytes(dt === 'FP32' ? Float32Array.from(values) : Float64Array.from(values));
      const res = await postX(modelOf(dt), dt, [2, 3], bytes, {
        outputs: [{ name: 'OUT_X', parameters: { binary_data: true } }],
      });
      assert.deepEqual(binaryOutputs(res).get('OUT_X'), bytes, `${dt} binary`);
      const fromBinary = await postX(modelOf(dt), dt, [2, 3], bytes);
      assert.deepEqual(output(okInfer(fromBinary), 'OUT_X').data, special, `${dt} binary in, JSON out`);
    }
    for (const bad of ['nan', 'inf', '+Infinity', '1.0', null]) {
      const err = assertErrorBody(
        await infer(base, 'id-fp32', {
          inputs: [{ name: 'IN_X', shape: [1, 3], datatype: 'FP32', data: [bad, 0, 0] }],
        }),
        400,
        'BE_ERR_INVALID_DATA',
      );
      assert.equal(err.field, 'inputs[0].data', String(bad));
    }
  });

  test('a BOOL byte other than 0 or 1 is 400 BE_ERR_INVALID_DATA', async () => {
    const err = assertErrorBody(
      await postX('id-bool', 'BOOL', [1, 3], u8(1, 2, 0)),
      400,
      'BE_ERR_INVALID_DATA',
    );
    assert.match(err.error, /BOOL byte 1/);
  });

  test('BYTES in binary: truncated or miscounted elements are rejected', async () => {
    const send = (bytes: Buffer) => postX('id-bytes', 'BYTES', [1, 3], bytes);
    const three = bytesElements([u8(0x61), u8(0x62), u8(0x63)]);
    assertErrorBody(await send(three.subarray(0, three.length - 1)), 400, 'BE_ERR_INVALID_BINARY');
    assertErrorBody(await send(three.subarray(0, 2)), 400, 'BE_ERR_INVALID_BINARY');
    assertErrorBody(await send(bytesElements([u8(0x61), u8(0x62)])), 400, 'BE_ERR_DATA_LENGTH_MISMATCH');
    assertErrorBody(
      await send(bytesElements([u8(0x61), u8(0x62), u8(0x63), u8(0x64)])),
      400,
      'BE_ERR_DATA_LENGTH_MISMATCH',
    );
    assert.equal((await send(three)).status, 200);
  });

  test('BYTES elements that are not UTF-8 are 400 BE_ERR_INVALID_DATA, never changed', async () => {
    // onnxruntime string tensors hold text: bytes that are not UTF-8 could not come back unchanged.
    const elements = bytesElements([u8(0x41), u8(0xff, 0xfe), u8(0x42)]);
    const err = assertErrorBody(
      await postX('id-bytes', 'BYTES', [1, 3], elements, { parameters: { binary_data_output: true } }),
      400,
      'BE_ERR_INVALID_DATA',
    );
    assert.equal(err.field, 'inputs[0].data');
    assert.match(err.error, /element 1 is not valid UTF-8/);
  });

  test('BYTES elements with a NUL byte are 400 BE_ERR_INVALID_DATA (JSON and binary), never truncated', async () => {
    // onnxruntime-node cuts string tensor elements at the first NUL.
    const json = assertErrorBody(
      await infer(base, 'id-bytes', {
        inputs: [{ name: 'IN_X', shape: [1, 3], datatype: 'BYTES', data: ['ok', 'a\u0000b', 'c'] }],
      }),
      400,
      'BE_ERR_INVALID_DATA',
    );
    assert.equal(json.field, 'inputs[0].data');
    assert.match(json.error, /\[1\].*NUL/);
    const elements = bytesElements([u8(0x00), u8(0x41), u8(0x42)]);
    const binary = assertErrorBody(
      await postX('id-bytes', 'BYTES', [1, 3], elements),
      400,
      'BE_ERR_INVALID_DATA',
    );
    assert.match(binary.error, /\[0\].*NUL/);
    // The same model still answers text without NULs.
    const doc = okInfer(
      await infer(base, 'id-bytes', {
        inputs: [{ name: 'IN_X', shape: [1, 3], datatype: 'BYTES', data: ['a', 'b', 'c'] }],
      }),
    );
    assert.deepEqual(output(doc, 'OUT_X').data, ['a', 'b', 'c']);
  });

  test('mixed JSON and binary inputs in any order, mixed outputs', async () => {
    const i64 = leBytes(BigInt64Array.from([-(2n ** 62n), 5n]));
    const fp16 = leBytes(Uint16Array.from([0x3c00, 0xbc00]));
    const strings = bytesElements([Buffer.from('α'), Buffer.from('β')]);
    const res = await postBinary(
      base,
      inferPath('mixed'),
      {
        inputs: [
          {
            name: 'IN_BYTES',
            shape: [1, 2],
            datatype: 'BYTES',
            parameters: { binary_data_size: strings.length },
          },
          { name: 'IN_FP64', shape: [1, 2], datatype: 'FP64', data: [0.25, -8] },
          { name: 'IN_FP16', shape: [1, 2], datatype: 'FP16', parameters: { binary_data_size: 4 } },
          { name: 'IN_BOOL', shape: [1, 2], datatype: 'BOOL', data: [[false, true]] },
          { name: 'IN_INT64', shape: [1, 2], datatype: 'INT64', parameters: { binary_data_size: 16 } },
        ],
        outputs: [
          { name: 'OUT_INT64', parameters: { binary_data: true } },
          { name: 'OUT_BOOL' },
          { name: 'OUT_FP16', parameters: { binary_data: true } },
          { name: 'OUT_BYTES' },
          { name: 'OUT_FP64', parameters: { binary_data: true } },
        ],
      },
      [strings, fp16, i64],
    );
    const bins = binaryOutputs(res);
    assert.deepEqual([...bins.keys()], ['OUT_INT64', 'OUT_FP16', 'OUT_FP64']);
    assert.deepEqual(bins.get('OUT_INT64'), i64);
    assert.deepEqual(bins.get('OUT_FP16'), fp16);
    assert.deepEqual(bins.get('OUT_FP64'), leBytes(Float64Array.from([0.25, -8])));
    const doc = res.json as { outputs: { name: string; data?: unknown[] }[] };
    assert.deepEqual(
      doc.outputs.map((o) => o.name),
      ['OUT_INT64', 'OUT_BOOL', 'OUT_FP16', 'OUT_BYTES', 'OUT_FP64'],
    );
    assert.deepEqual(doc.outputs[1]!.data, [false, true]);
    assert.deepEqual(doc.outputs[3]!.data, ['α', 'β']);
  });
});

describe('batching non-float datatypes', () => {
  const merges: [string, (i: number) => unknown[]][] = [
    ['BYTES', (i) => [`r${i}-a`, `r${i}-${'é'.repeat(i)}`, '']],
    ['INT64', (i) => [i, i === 0 ? 7 : -i * 1000, 2 ** 50 + i]],
    ['BOOL', (i) => [i % 2 === 0, true, i === 3]],
  ];
  for (const [dt, rowOf] of merges) {
    test(`${dt}: four concurrent requests make one batch and each gets its own row back`, async () => {
      const model = `merge-${dt.toLowerCase()}`;
      const labels = { model, version: '1' };
      const before = histogram((await scrape(base)).samples, 'infergate_backend_batch_size', labels);
      const answers = await Promise.all(
        [0, 1, 2, 3].map((i) =>
          infer(base, model, {
            id: String(i),
            inputs: [{ name: 'IN_X', shape: [1, 3], datatype: dt, data: rowOf(i) }],
          }),
        ),
      );
      answers.forEach((res, i) => {
        const doc = okInfer(res);
        assert.equal(doc.id, String(i));
        assert.deepEqual(output(doc, 'OUT_X').data, rowOf(i));
        assert.deepEqual(output(doc, 'OUT_X').shape, [1, 3]);
      });
      const now = histogram((await scrape(base)).samples, 'infergate_backend_batch_size', labels);
      assert.deepEqual(
        { rows: now.sum - before.sum, batches: now.count - before.count },
        { rows: 4, batches: 1 },
      );
    });
  }
});
