import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tensorBytes } from '../../common/oip/binary-data.js';
import { CodecError, type CodecReason } from '../../common/oip/codec-error.js';
import {
  type DecodeOptions,
  decodeInferRequest,
  decodeRawRequest,
  rawInput,
} from '../../common/oip/decode-request.js';
import type { Datatype, TensorData } from '../../common/oip/datatypes.js';
import { jsonDepthExceeds, parseJson } from '../../common/oip/json-scan.js';
import { jsonData } from '../../common/oip/json-values.js';
import type { DecodedRequest, InferResponse } from '../../common/oip/messages.js';
import { decodeInferResponse, encodeInferResponse } from '../../common/oip/response.js';
import { checkShape } from '../../common/oip/shape.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const utf8 = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const jsonBody = (doc: unknown): Uint8Array => utf8(JSON.stringify(doc));

function decode(body: Uint8Array, opts?: DecodeOptions): DecodedRequest {
  const out = decodeInferRequest(body, opts);
  assert.ok(!('raw' in out), 'expected a decoded request, got a raw one');
  return out;
}

function decodeDoc(doc: unknown): DecodedRequest {
  return decode(jsonBody(doc));
}

/** A request whose only input is `input`. */
const one = (input: Record<string, unknown>): { inputs: unknown[] } => ({ inputs: [input] });

/** JSON header + binary tail, with the header length the HTTP header would carry. */
function binaryRequest(
  header: unknown,
  ...blobs: Uint8Array[]
): { body: Uint8Array; headerLength: string; json: Buffer } {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  return { body: Buffer.concat([json, ...blobs]), headerLength: String(json.length), json };
}

function f32le(...values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => {
    b.writeFloatLE(v, i * 4);
  });
  return b;
}

function i64le(...values: bigint[]): Uint8Array {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => {
    b.writeBigInt64LE(v, i * 8);
  });
  return b;
}

function f64le(...values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => {
    b.writeDoubleLE(v, i * 8);
  });
  return b;
}

/** BYTES binary form: each element a 4-byte little-endian length, then its bytes. */
function bytesElements(...elements: (string | Uint8Array)[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of elements) {
    const data = typeof e === 'string' ? Buffer.from(e, 'utf8') : e;
    const len = Buffer.alloc(4);
    len.writeUInt32LE(data.length, 0);
    parts.push(len, data);
  }
  return Buffer.concat(parts);
}

function assertCodecError(fn: () => unknown, reason: CodecReason, field: string | undefined): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CodecError, `expected a CodecError, got ${String(e)}`);
    assert.equal(e.reason, reason, `reason (message: ${e.message})`);
    assert.equal(e.field, field, `field (message: ${e.message})`);
    assert.equal(e.name, 'CodecError');
    assert.ok(e.message.length > 0);
    return true;
  });
}

function values(data: TensorData): unknown[] {
  return Array.isArray(data) ? data : Array.from(data as ArrayLike<unknown>);
}

// ---------------------------------------------------------------------------------------------
// JSON requests

describe('decodeInferRequest: JSON datatypes', () => {
  type Ctor = abstract new (...args: never[]) => unknown;
  const cases: { datatype: Datatype; data: unknown[]; ctor: Ctor | typeof Array; expected: unknown[] }[] = [
    { datatype: 'BOOL', data: [true, false, true], ctor: Uint8Array, expected: [1, 0, 1] },
    { datatype: 'UINT8', data: [0, 7, 255], ctor: Uint8Array, expected: [0, 7, 255] },
    { datatype: 'UINT16', data: [0, 300, 65535], ctor: Uint16Array, expected: [0, 300, 65535] },
    { datatype: 'UINT32', data: [0, 70000, 4294967295], ctor: Uint32Array, expected: [0, 70000, 4294967295] },
    {
      datatype: 'UINT64',
      data: [0, 4294967296, Number.MAX_SAFE_INTEGER],
      ctor: BigUint64Array,
      expected: [0n, 4294967296n, 9007199254740991n],
    },
    { datatype: 'INT8', data: [-128, 0, 127], ctor: Int8Array, expected: [-128, 0, 127] },
    { datatype: 'INT16', data: [-32768, 1, 32767], ctor: Int16Array, expected: [-32768, 1, 32767] },
    {
      datatype: 'INT32',
      data: [-2147483648, -1, 2147483647],
      ctor: Int32Array,
      expected: [-2147483648, -1, 2147483647],
    },
    {
      datatype: 'INT64',
      data: [Number.MIN_SAFE_INTEGER, -5, Number.MAX_SAFE_INTEGER],
      ctor: BigInt64Array,
      expected: [-9007199254740991n, -5n, 9007199254740991n],
    },
    {
      datatype: 'FP32',
      // 3.4028235e38 is past FP32's largest value but rounds to it, so it is in range.
      data: [1.5, -0.25, 1e-3, 3.4028235e38, -3.4028235e38, 'Infinity', '-Infinity'],
      ctor: Float32Array,
      expected: [
        1.5,
        -0.25,
        Math.fround(1e-3),
        3.4028234663852886e38,
        -3.4028234663852886e38,
        Infinity,
        -Infinity,
      ],
    },
    {
      datatype: 'FP64',
      data: [0.1, -1e300, 5e-324, 'Infinity'],
      ctor: Float64Array,
      expected: [0.1, -1e300, 5e-324, Infinity],
    },
    { datatype: 'BYTES', data: ['abc', '', 'héllo ✓'], ctor: Array, expected: ['abc', '', 'héllo ✓'] },
  ];

  for (const c of cases) {
    test(`${c.datatype}: flat data gives ${c.ctor.name} with the right values`, () => {
      const n = c.data.length;
      const req = decodeDoc(one({ name: 'x', datatype: c.datatype, shape: [n], data: c.data }));
      assert.equal(req.inputs.length, 1);
      const input = req.inputs[0]!;
      assert.equal(input.name, 'x');
      assert.equal(input.datatype, c.datatype);
      assert.deepEqual(input.shape, [n]);
      assert.ok(input.data instanceof c.ctor, `data is ${input.data.constructor.name}`);
      assert.equal(input.data.length, n);
      assert.deepEqual(values(input.data), c.expected);
    });
  }

  test('nested data is flattened row-major', () => {
    const req = decodeDoc(
      one({
        name: 'x',
        datatype: 'INT32',
        shape: [2, 3],
        data: [
          [1, 2, 3],
          [4, 5, 6],
        ],
      }),
    );
    assert.ok(req.inputs[0]!.data instanceof Int32Array);
    assert.deepEqual(values(req.inputs[0]!.data), [1, 2, 3, 4, 5, 6]);
  });

  test('nested data of rank 3 and flat data of the same shape decode equal', () => {
    const nested = decodeDoc(
      one({
        name: 'x',
        datatype: 'FP32',
        shape: [2, 2, 2],
        data: [
          [
            [1, 2],
            [3, 4],
          ],
          [
            [5, 6],
            [7, 8],
          ],
        ],
      }),
    );
    const flat = decodeDoc(
      one({ name: 'x', datatype: 'FP32', shape: [2, 2, 2], data: [1, 2, 3, 4, 5, 6, 7, 8] }),
    );
    assert.deepEqual(values(nested.inputs[0]!.data), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(values(nested.inputs[0]!.data), values(flat.inputs[0]!.data));
  });

  test('nested BYTES and BOOL data', () => {
    const req = decodeDoc({
      inputs: [
        {
          name: 's',
          datatype: 'BYTES',
          shape: [2, 2],
          data: [
            ['a', 'b'],
            ['c', 'd'],
          ],
        },
        {
          name: 'b',
          datatype: 'BOOL',
          shape: [2, 1],
          data: [[false], [true]],
        },
      ],
    });
    assert.deepEqual(req.inputs[0]!.data, ['a', 'b', 'c', 'd']);
    assert.deepEqual(values(req.inputs[1]!.data), [0, 1]);
  });

  test('rank-0 scalar input: bare value and one-element array', () => {
    const bare = decodeDoc(one({ name: 'x', datatype: 'FP64', shape: [], data: 2.5 }));
    assert.deepEqual(bare.inputs[0]!.shape, []);
    assert.ok(bare.inputs[0]!.data instanceof Float64Array);
    assert.deepEqual(values(bare.inputs[0]!.data), [2.5]);
    const wrapped = decodeDoc(one({ name: 'x', datatype: 'INT64', shape: [], data: [-7] }));
    assert.deepEqual(values(wrapped.inputs[0]!.data), [-7n]);
    const str = decodeDoc(one({ name: 'x', datatype: 'BYTES', shape: [], data: 'only' }));
    assert.deepEqual(str.inputs[0]!.data, ['only']);
  });

  test('zero-element tensors decode to empty data', () => {
    const req = decodeDoc({
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [0], data: [] },
        { name: 'b', datatype: 'INT32', shape: [2, 0], data: [[], []] },
        { name: 'c', datatype: 'BYTES', shape: [0, 3], data: [] },
      ],
    });
    assert.deepEqual(
      req.inputs.map((i) => i.data.length),
      [0, 0, 0],
    );
    assert.ok(req.inputs[0]!.data instanceof Float32Array);
  });

  test('several inputs keep their order, names and shapes', () => {
    const req = decodeDoc({
      inputs: [
        { name: 'b', datatype: 'INT8', shape: [1], data: [1] },
        { name: 'a', datatype: 'UINT8', shape: [2], data: [2, 3] },
      ],
    });
    assert.deepEqual(
      req.inputs.map((i) => [i.name, i.datatype, i.shape]),
      [
        ['b', 'INT8', [1]],
        ['a', 'UINT8', [2]],
      ],
    );
  });
});

describe('decodeInferRequest: id, parameters and outputs', () => {
  const input = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };

  test('id and parameters are echoed; input parameters kept', () => {
    const req = decodeDoc({
      id: 'req-42',
      parameters: { priority: 3, tag: 'a' },
      inputs: [{ ...input, parameters: { content_type: 'np' } }],
    });
    assert.equal(req.id, 'req-42');
    assert.deepEqual(req.parameters, { priority: 3, tag: 'a' });
    assert.deepEqual(req.inputs[0]!.parameters, { content_type: 'np' });
  });

  test('absent id, parameters and outputs are undefined; binaryOutput false', () => {
    const req = decodeDoc({ inputs: [input] });
    assert.equal(req.id, undefined);
    assert.equal(req.parameters, undefined);
    assert.equal(req.inputs[0]!.parameters, undefined);
    assert.equal(req.outputs, undefined);
    assert.equal(req.binaryOutput, false);
  });

  test('outputs with and without binary_data flags', () => {
    const req = decodeDoc({
      inputs: [input],
      outputs: [
        { name: 'a' },
        { name: 'b', parameters: { binary_data: true } },
        { name: 'c', parameters: { binary_data: false } },
        { name: 'd', parameters: { other: 1 } },
      ],
    });
    assert.equal(req.binaryOutput, false);
    assert.deepEqual(req.outputs, [
      { name: 'a', binary: false },
      { name: 'b', binary: true },
      { name: 'c', binary: false },
      { name: 'd', binary: false },
    ]);
  });

  test('request-level binary_data_output is the default, an explicit flag wins', () => {
    const req = decodeDoc({
      parameters: { binary_data_output: true },
      inputs: [input],
      outputs: [{ name: 'a' }, { name: 'b', parameters: { binary_data: false } }],
    });
    assert.equal(req.binaryOutput, true);
    assert.deepEqual(req.outputs, [
      { name: 'a', binary: true },
      { name: 'b', binary: false },
    ]);
  });

  test('binary_data_output without outputs', () => {
    const req = decodeDoc({ parameters: { binary_data_output: true }, inputs: [input] });
    assert.equal(req.binaryOutput, true);
    assert.equal(req.outputs, undefined);
  });

  test('an empty outputs array names no output: all of them, as without the field (Triton, KServe)', () => {
    const req = decodeDoc({ inputs: [input], outputs: [] });
    assert.equal(req.outputs, undefined);
  });
});

// ---------------------------------------------------------------------------------------------
// JSON rejections

interface RejectCase {
  name: string;
  body: Uint8Array;
  opts?: DecodeOptions;
  reason: CodecReason;
  field: string | undefined;
}

function runRejections(cases: RejectCase[]): void {
  for (const c of cases) {
    test(c.name, () => {
      assertCodecError(() => decodeInferRequest(c.body, c.opts), c.reason, c.field);
    });
  }
}

const fp32 = (extra: Record<string, unknown> = {}) => ({
  name: 'x',
  datatype: 'FP32',
  shape: [2],
  data: [1, 2],
  ...extra,
});

describe('decodeInferRequest: malformed bodies', () => {
  runRejections([
    { name: 'truncated JSON', body: utf8('{"inputs": ['), reason: 'MALFORMED_JSON', field: undefined },
    { name: 'empty body', body: new Uint8Array(0), reason: 'MALFORMED_JSON', field: undefined },
    { name: 'trailing garbage', body: utf8('{"inputs": []} x'), reason: 'MALFORMED_JSON', field: undefined },
    { name: 'single quotes', body: utf8("{'inputs': []}"), reason: 'MALFORMED_JSON', field: undefined },
    {
      name: 'invalid UTF-8 byte 0xFF inside a string',
      body: Uint8Array.from([...utf8('{"id":"'), 0xff, ...utf8('","inputs":[]}')]),
      reason: 'MALFORMED_JSON',
      field: undefined,
    },
    {
      name: 'overlong UTF-8 encoding (0xC0 0xAF)',
      body: Uint8Array.from([...utf8('{"id":"'), 0xc0, 0xaf, ...utf8('","inputs":[]}')]),
      reason: 'MALFORMED_JSON',
      field: undefined,
    },
    {
      name: 'UTF-8 encoded lone surrogate (0xED 0xA0 0x80)',
      body: Uint8Array.from([...utf8('{"id":"'), 0xed, 0xa0, 0x80, ...utf8('","inputs":[]}')]),
      reason: 'MALFORMED_JSON',
      field: undefined,
    },
    {
      name: 'truncated multi-byte sequence at the end',
      body: Uint8Array.from([...utf8('{"id":"a"} '), 0xe2, 0x82]),
      reason: 'MALFORMED_JSON',
      field: undefined,
    },
    { name: 'body is an array', body: utf8('[]'), reason: 'INVALID_REQUEST', field: undefined },
    { name: 'body is null', body: utf8('null'), reason: 'INVALID_REQUEST', field: undefined },
    { name: 'body is a string', body: utf8('"inputs"'), reason: 'INVALID_REQUEST', field: undefined },
    { name: 'body is a number', body: utf8('42'), reason: 'INVALID_REQUEST', field: undefined },
  ]);

  test('a valid UTF-8 body with multi-byte characters is accepted', () => {
    const req = decode(
      utf8('{"id":"日本 ✓ 😀","inputs":[{"name":"é","datatype":"BYTES","shape":[1],"data":["ü"]}]}'),
    );
    assert.equal(req.id, '日本 ✓ 😀');
    assert.equal(req.inputs[0]!.name, 'é');
    assert.deepEqual(req.inputs[0]!.data, ['ü']);
  });
});

describe('decodeInferRequest: nesting depth', () => {
  for (const [label, text] of [
    ['unclosed [ x 100,000', '['.repeat(100_000)],
    ['balanced [ ] x 100,000', '['.repeat(100_000) + ']'.repeat(100_000)],
    ['{"a": x 100,000', '{"a":'.repeat(100_000)],
    [
      'deep array inside a valid request',
      `{"inputs":[{"name":"x","data":${'['.repeat(100_000)}1${']'.repeat(100_000)}}]}`,
    ],
  ] as const) {
    test(`${label} is NESTING_TOO_DEEP, fast, and never a RangeError`, () => {
      const body = utf8(text);
      const started = performance.now();
      assertCodecError(() => decodeInferRequest(body), 'NESTING_TOO_DEEP', undefined);
      const ms = performance.now() - started;
      assert.ok(ms < 500, `took ${ms.toFixed(1)} ms`);
    });
  }

  test('depth 64 is allowed and depth 65 is not (default limit)', () => {
    // object (1) + parameters object (2) + k arrays => depth 2 + k
    const withDepth = (depth: number) =>
      utf8(
        `{"parameters":{"p":${'['.repeat(depth - 2)}${']'.repeat(depth - 2)}},"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1]}]}`,
      );
    const ok = decode(withDepth(64));
    assert.equal(ok.inputs[0]!.name, 'x');
    assertCodecError(() => decodeInferRequest(withDepth(65)), 'NESTING_TOO_DEEP', undefined);
  });

  test('maxJsonDepth option lowers the limit', () => {
    const body = jsonBody(one({ name: 'x', datatype: 'INT8', shape: [2, 1], data: [[1], [2]] }));
    // {inputs:[{data:[[ ]]}]} => depth 5
    assert.equal(decode(body, { maxJsonDepth: 5 }).inputs.length, 1);
    assertCodecError(() => decodeInferRequest(body, { maxJsonDepth: 4 }), 'NESTING_TOO_DEEP', undefined);
  });

  test('parseJson applies the depth check before UTF-8 and JSON validity', () => {
    assertCodecError(() => parseJson(utf8('[[[1]]]'), 2), 'NESTING_TOO_DEEP', undefined);
    assert.deepEqual(parseJson(utf8('[[[1]]]'), 3), [[[1]]]);
  });
});

describe('jsonDepthExceeds', () => {
  const cases: { name: string; text: string; limit: number; expected: boolean }[] = [
    { name: 'empty input', text: '', limit: 0, expected: false },
    { name: 'scalar at limit 0', text: '42', limit: 0, expected: false },
    { name: 'one array at limit 0', text: '[]', limit: 0, expected: true },
    { name: 'depth equal to the limit', text: '[[[]]]', limit: 3, expected: false },
    { name: 'depth one past the limit', text: '[[[]]]', limit: 2, expected: true },
    { name: 'objects count as levels', text: '{"a":{"b":{}}}', limit: 2, expected: true },
    { name: 'objects at the limit', text: '{"a":{"b":{}}}', limit: 3, expected: false },
    { name: 'siblings do not add up', text: '[[],[],[],[],[]]', limit: 2, expected: false },
    { name: 'brackets inside a string do not count', text: '["[[[[[[{{{{"]', limit: 1, expected: false },
    { name: 'closers inside a string do not count', text: '[["]]]]"],[[1]]]', limit: 2, expected: true },
    { name: 'escaped quote does not end the string', text: '["\\"[[[[[["]', limit: 1, expected: false },
    {
      name: 'escaped backslash before the quote does end the string',
      text: '["\\\\", [[1]]]',
      limit: 2,
      expected: true,
    },
    { name: 'keys with brackets do not count', text: '{"[[[[": 1, "{{{{": [2]}', limit: 2, expected: false },
    { name: 'multi-byte UTF-8 in strings', text: '["é[😀[", ["✓"]]', limit: 2, expected: false },
    { name: 'depth measured by the deepest point', text: '[1,[2,[3]],4]', limit: 2, expected: true },
  ];
  for (const c of cases) {
    test(`${c.name}: ${JSON.stringify(c.text)} limit ${c.limit} -> ${c.expected}`, () => {
      assert.equal(jsonDepthExceeds(utf8(c.text), c.limit), c.expected);
    });
  }

  test('stops early on a huge unclosed body', () => {
    const body = utf8('['.repeat(5_000_000));
    const started = performance.now();
    assert.equal(jsonDepthExceeds(body, 64), true);
    assert.ok(performance.now() - started < 200);
  });
});

describe('decodeInferRequest: request structure rejections', () => {
  runRejections([
    { name: 'inputs missing', body: jsonBody({}), reason: 'INVALID_REQUEST', field: 'inputs' },
    { name: 'inputs empty', body: jsonBody({ inputs: [] }), reason: 'INVALID_REQUEST', field: 'inputs' },
    {
      name: 'inputs an object',
      body: jsonBody({ inputs: fp32() }),
      reason: 'INVALID_REQUEST',
      field: 'inputs',
    },
    { name: 'inputs null', body: jsonBody({ inputs: null }), reason: 'INVALID_REQUEST', field: 'inputs' },
    {
      name: 'input is a number',
      body: jsonBody({ inputs: [5] }),
      reason: 'INVALID_REQUEST',
      field: 'inputs[0]',
    },
    {
      name: 'input is null',
      body: jsonBody({ inputs: [null] }),
      reason: 'INVALID_REQUEST',
      field: 'inputs[0]',
    },
    {
      name: 'second input is an array',
      body: jsonBody({ inputs: [fp32(), [fp32({ name: 'y' })]] }),
      reason: 'INVALID_REQUEST',
      field: 'inputs[1]',
    },
    {
      name: 'input name missing',
      body: jsonBody({ inputs: [{ datatype: 'FP32', shape: [1], data: [1] }] }),
      reason: 'INVALID_REQUEST',
      field: 'inputs[0].name',
    },
    {
      name: 'input name empty',
      body: jsonBody(one(fp32({ name: '' }))),
      reason: 'INVALID_REQUEST',
      field: 'inputs[0].name',
    },
    {
      name: 'input name a number',
      body: jsonBody(one(fp32({ name: 3 }))),
      reason: 'INVALID_REQUEST',
      field: 'inputs[0].name',
    },
    {
      name: 'duplicate input names',
      body: jsonBody({ inputs: [fp32({ name: 'a' }), fp32({ name: 'b' }), fp32({ name: 'a' })] }),
      reason: 'INVALID_REQUEST',
      field: 'inputs[2].name',
    },
    {
      name: 'id is a number',
      body: jsonBody({ id: 7, inputs: [fp32()] }),
      reason: 'INVALID_REQUEST',
      field: 'id',
    },
    {
      name: 'parameters is an array',
      body: jsonBody({ parameters: [], inputs: [fp32()] }),
      reason: 'INVALID_REQUEST',
      field: 'parameters',
    },
    {
      name: 'input parameters is a string',
      body: jsonBody(one(fp32({ parameters: 'x' }))),
      reason: 'INVALID_REQUEST',
      field: 'inputs[0].parameters',
    },
    {
      name: 'outputs is an object',
      body: jsonBody({ inputs: [fp32()], outputs: { name: 'y' } }),
      reason: 'INVALID_REQUEST',
      field: 'outputs',
    },
    {
      name: 'output without name',
      body: jsonBody({ inputs: [fp32()], outputs: [{ name: 'y' }, {}] }),
      reason: 'INVALID_REQUEST',
      field: 'outputs[1]',
    },
    {
      name: 'output parameters not an object',
      body: jsonBody({ inputs: [fp32()], outputs: [{ name: 'y', parameters: 1 }] }),
      reason: 'INVALID_REQUEST',
      field: 'outputs[0].parameters',
    },
    {
      name: 'output binary_data not a boolean',
      body: jsonBody({ inputs: [fp32()], outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] }),
      reason: 'INVALID_REQUEST',
      field: 'outputs[0].parameters.binary_data',
    },
    {
      name: 'unknown datatype',
      body: jsonBody(one(fp32({ datatype: 'FLOAT32' }))),
      reason: 'UNSUPPORTED_DATATYPE',
      field: 'inputs[0].datatype',
    },
    {
      name: 'lower-case datatype',
      body: jsonBody(one(fp32({ datatype: 'fp32' }))),
      reason: 'UNSUPPORTED_DATATYPE',
      field: 'inputs[0].datatype',
    },
    {
      name: 'datatype missing',
      body: jsonBody({ inputs: [{ name: 'x', shape: [1], data: [1] }] }),
      reason: 'UNSUPPORTED_DATATYPE',
      field: 'inputs[0].datatype',
    },
    {
      name: 'datatype naming an Object.prototype member (toString)',
      body: jsonBody(one(fp32({ datatype: 'toString' }))),
      reason: 'UNSUPPORTED_DATATYPE',
      field: 'inputs[0].datatype',
    },
    {
      name: 'datatype __proto__',
      body: utf8('{"inputs":[{"name":"x","datatype":"__proto__","shape":[1],"data":[1]}]}'),
      reason: 'UNSUPPORTED_DATATYPE',
      field: 'inputs[0].datatype',
    },
    {
      name: 'FP16 in JSON (no JSON form)',
      body: jsonBody(one(fp32({ datatype: 'FP16' }))),
      reason: 'UNSUPPORTED_DATATYPE',
      field: 'inputs[0].datatype',
    },
    {
      name: 'BF16 in JSON (no JSON form)',
      body: jsonBody(one(fp32({ datatype: 'BF16' }))),
      reason: 'UNSUPPORTED_DATATYPE',
      field: 'inputs[0].datatype',
    },
    {
      name: 'data missing',
      body: jsonBody({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }] }),
      reason: 'INVALID_REQUEST',
      field: 'inputs[0].data',
    },
    {
      name: 'both data and binary_data_size',
      body: jsonBody(one(fp32({ parameters: { binary_data_size: 8 } }))),
      reason: 'INVALID_REQUEST',
      field: 'inputs[0].data',
    },
    {
      name: 'binary_data_size without Inference-Header-Content-Length',
      body: jsonBody({
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }],
      }),
      reason: 'INVALID_BINARY',
      field: 'inputs[0].parameters.binary_data_size',
    },
  ]);
});

describe('decodeInferRequest: shape rejections', () => {
  const withShape = (shape: unknown, datatype = 'FP32', data: unknown = []) =>
    jsonBody(one({ name: 'x', datatype, shape, data }));
  runRejections([
    { name: 'negative dim', body: withShape([2, -1]), reason: 'INVALID_SHAPE', field: 'inputs[0].shape[1]' },
    { name: 'non-integer dim', body: withShape([1.5]), reason: 'INVALID_SHAPE', field: 'inputs[0].shape[0]' },
    { name: 'string dim', body: withShape([1, '2']), reason: 'INVALID_SHAPE', field: 'inputs[0].shape[1]' },
    { name: 'null dim', body: withShape([null]), reason: 'INVALID_SHAPE', field: 'inputs[0].shape[0]' },
    { name: 'nested dim', body: withShape([[2]]), reason: 'INVALID_SHAPE', field: 'inputs[0].shape[0]' },
    { name: 'shape a number', body: withShape(2), reason: 'INVALID_SHAPE', field: 'inputs[0].shape' },
    {
      name: 'shape missing',
      body: jsonBody(one({ name: 'x', datatype: 'FP32', data: [] })),
      reason: 'INVALID_SHAPE',
      field: 'inputs[0].shape',
    },
    {
      name: 'rank 33',
      body: withShape(new Array(33).fill(1)),
      reason: 'INVALID_SHAPE',
      field: 'inputs[0].shape',
    },
    {
      name: 'shape [16, 2^60+2] overflows 64 bits',
      body: utf8('{"inputs":[{"name":"x","datatype":"FP32","shape":[16,1152921504606846978],"data":[1]}]}'),
      reason: 'SHAPE_OVERFLOW',
      field: 'inputs[0].shape',
    },
    {
      name: 'shape [1e300, 1e300]: SHAPE_OVERFLOW',
      body: withShape([1e300, 1e300]),
      reason: 'SHAPE_OVERFLOW',
      field: 'inputs[0].shape',
    },
    {
      name: 'count wrapping to a small number in uint64: [2^32, 2^32+1]',
      body: withShape([4294967296, 4294967297], 'UINT8', [1]),
      reason: 'SHAPE_OVERFLOW',
      field: 'inputs[0].shape',
    },
    {
      name: 'count wrapping to 0 in uint64: [2^32, 2^32]',
      body: withShape([4294967296, 4294967296], 'UINT8', []),
      reason: 'SHAPE_OVERFLOW',
      field: 'inputs[0].shape',
    },
    {
      name: 'element count fits but byte count overflows: FP64 [2^61]',
      body: withShape([2 ** 61], 'FP64'),
      reason: 'SHAPE_OVERFLOW',
      field: 'inputs[0].shape',
    },
    {
      name: 'huge single dim 1e300',
      body: withShape([1e300], 'INT8'),
      reason: 'SHAPE_OVERFLOW',
      field: 'inputs[0].shape',
    },
    {
      name: 'second input bad dim names the second input',
      body: jsonBody({ inputs: [fp32(), { name: 'y', datatype: 'INT8', shape: [1, -3], data: [] }] }),
      reason: 'INVALID_SHAPE',
      field: 'inputs[1].shape[1]',
    },
  ]);

  for (const [datatype, data] of [
    ['FP32', []],
    ['FP64', [1]],
    ['BYTES', ['a']],
    ['UINT8', [1, 2, 3]],
  ] as const) {
    test(`${datatype} shape [1e12] with tiny data is DATA_LENGTH_MISMATCH before any allocation`, () => {
      const body = jsonBody(one({ name: 'x', datatype, shape: [1e12], data }));
      const before = process.memoryUsage().arrayBuffers;
      const started = performance.now();
      // Allocating 1e12 elements would throw a RangeError (or take seconds), not a CodecError.
      assertCodecError(() => decodeInferRequest(body), 'DATA_LENGTH_MISMATCH', 'inputs[0].data');
      assert.ok(performance.now() - started < 200);
      assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024);
    });
  }

  for (const [kind, data, shape] of [
    ['flat', [1], [1, 4e6]],
    ['nested', [[1], [2]], [2, 2e6]],
  ] as const) {
    test(`a body padded past the claimed size, ${kind} data short of a 32 MB FP64 shape, allocates only what was sent`, () => {
      // The body is large enough that no byte-count bound can refuse the shape first.
      const doc = JSON.stringify(one({ name: 'x', datatype: 'FP64', shape, data }));
      const body = utf8(`${doc.slice(0, -1)}${' '.repeat(4e6)}}`);
      const before = process.memoryUsage().arrayBuffers;
      assertCodecError(() => decodeInferRequest(body), 'DATA_LENGTH_MISMATCH', 'inputs[0].data');
      const grown = process.memoryUsage().arrayBuffers - before;
      assert.ok(grown < 8 * 1024 * 1024, `array buffers grew by ${grown} bytes`);
    });
  }

  test('shape [1e8] FP64 with 1 element is rejected without allocating 800 MB', () => {
    const body = jsonBody(one({ name: 'x', datatype: 'FP64', shape: [1e8], data: [1] }));
    const before = process.memoryUsage().arrayBuffers;
    assertCodecError(() => decodeInferRequest(body), 'DATA_LENGTH_MISMATCH', 'inputs[0].data');
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024);
  });
});

test('a SHAPE_OVERFLOW message gives a huge count in scientific notation, not 600 digits', () => {
  assert.throws(
    () =>
      decodeInferRequest(jsonBody(one({ name: 'x', datatype: 'FP32', shape: [1e300, 1e300], data: [1] }))),
    (e: Error) => {
      assert.match(e.message, /has about 1\.00e\+600 elements of FP32/);
      assert.ok(e.message.length < 200, e.message);
      return true;
    },
  );
});

describe('checkShape', () => {
  const accepted: { shape: unknown[]; datatype: Datatype; count: number }[] = [
    { shape: [], datatype: 'FP32', count: 1 },
    { shape: [0], datatype: 'FP32', count: 0 },
    { shape: [3, 0, 5], datatype: 'INT64', count: 0 },
    { shape: [0, 2 ** 62], datatype: 'FP64', count: 0 },
    { shape: [2, 3, 4], datatype: 'INT32', count: 24 },
    { shape: new Array(32).fill(1), datatype: 'UINT8', count: 1 },
    { shape: [2 ** 53 - 1], datatype: 'UINT8', count: Number.MAX_SAFE_INTEGER },
    { shape: [2 ** 53 - 1], datatype: 'BYTES', count: Number.MAX_SAFE_INTEGER },
    { shape: [2 ** 26, 2 ** 26], datatype: 'FP64', count: 2 ** 52 },
    { shape: [-0], datatype: 'FP32', count: 0 },
  ];
  for (const c of accepted) {
    test(`${c.datatype} [${c.shape.join(',')}] has ${c.count} elements`, () => {
      assert.equal(checkShape(c.shape, c.datatype, 's'), c.count);
    });
  }

  const rejected: { shape: unknown; datatype: Datatype; reason: CodecReason; field: string }[] = [
    { shape: 'abc', datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's' },
    { shape: null, datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's' },
    { shape: { 0: 1, length: 1 }, datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's' },
    { shape: new Array(33).fill(1), datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's' },
    { shape: [1, Number.NaN], datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's[1]' },
    { shape: [Number.POSITIVE_INFINITY], datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's[0]' },
    { shape: [1, 2, -1], datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's[2]' },
    { shape: [2n], datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's[0]' },
    { shape: [true], datatype: 'FP32', reason: 'INVALID_SHAPE', field: 's[0]' },
    { shape: [2 ** 53], datatype: 'UINT8', reason: 'SHAPE_OVERFLOW', field: 's' },
    { shape: [2 ** 53], datatype: 'BYTES', reason: 'SHAPE_OVERFLOW', field: 's' },
    { shape: [2 ** 60], datatype: 'INT64', reason: 'SHAPE_OVERFLOW', field: 's' },
    { shape: [2 ** 61], datatype: 'INT32', reason: 'SHAPE_OVERFLOW', field: 's' },
    { shape: [2 ** 62], datatype: 'FP16', reason: 'SHAPE_OVERFLOW', field: 's' },
    { shape: [2 ** 63], datatype: 'BOOL', reason: 'SHAPE_OVERFLOW', field: 's' },
    { shape: [16, 2 ** 60 + 2], datatype: 'UINT8', reason: 'SHAPE_OVERFLOW', field: 's' },
    { shape: [2 ** 32, 2 ** 32], datatype: 'UINT8', reason: 'SHAPE_OVERFLOW', field: 's' },
    { shape: new Array(32).fill(4), datatype: 'UINT8', reason: 'SHAPE_OVERFLOW', field: 's' },
  ];
  for (const c of rejected) {
    test(`${c.datatype} ${String(c.shape)} -> ${c.reason} at ${c.field}`, () => {
      assertCodecError(() => checkShape(c.shape, c.datatype, 's'), c.reason, c.field);
    });
  }

  test('the first bad dim is the one named', () => {
    assertCodecError(
      () => checkShape([1, -1, 'x'], 'FP32', 'inputs[3].shape'),
      'INVALID_SHAPE',
      'inputs[3].shape[1]',
    );
  });

  test('an invalid dim after an overflowing product is still INVALID_SHAPE', () => {
    assertCodecError(() => checkShape([2 ** 62, 2 ** 62, -1], 'FP32', 's'), 'INVALID_SHAPE', 's[2]');
  });
});

describe('decodeInferRequest: data rejections', () => {
  const withData = (datatype: string, shape: number[], data: unknown) =>
    jsonBody(one({ name: 'x', datatype, shape, data }));

  runRejections([
    {
      name: 'data too short',
      body: withData('FP32', [2, 2], [1, 2, 3]),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'data too long',
      body: withData('FP32', [2, 2], [1, 2, 3, 4, 5]),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'nested data with an extra row',
      body: withData(
        'INT32',
        [2, 2],
        [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
      ),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'nested data with a short row',
      body: withData('INT32', [2, 2], [[1, 2], [3]]),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'empty data for [1]',
      body: withData('FP32', [1], []),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'data for a zero-size tensor',
      body: withData('FP32', [0], [1]),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'data nested deeper than rank 1',
      body: withData(
        'FP32',
        [4],
        [
          [1, 2],
          [3, 4],
        ],
      ),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'FP32 1e39: beyond FP32 range, not silently an infinity',
      body: withData('FP32', [2], [1, 1e39]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'FP32 -1e39',
      body: withData('FP32', [1], [-1e39]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'FP64 1e400 (a JSON literal that parses as an infinity)',
      body: utf8('{"inputs":[{"name":"x","datatype":"FP64","shape":[1],"data":[1e400]}]}'),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'data nested deeper than rank 2',
      body: withData('FP32', [1, 2], [[[1, 2]]]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'rank 0 with nested array',
      body: withData('FP32', [], [[1]]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'rank 0 with two values',
      body: withData('FP32', [], [1, 2]),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'non-array data for more than one element',
      body: withData('FP32', [2], 1),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'object as data',
      body: withData('FP32', [2], { 0: 1, 1: 2 }),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'string in FP32',
      body: withData('FP32', [2], [1, '2']),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'null in FP64',
      body: withData('FP64', [1], [null]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'boolean in FP32',
      body: withData('FP32', [1], [true]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'object in FP32',
      body: withData('FP32', [1], [{}]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'float in INT32',
      body: withData('INT32', [2], [1, 1.5]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'boolean in INT32',
      body: withData('INT32', [1], [true]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'string in INT64',
      body: withData('INT64', [1], ['5']),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'number in BOOL',
      body: withData('BOOL', [2], [1, 0]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'string in BOOL',
      body: withData('BOOL', [1], ['true']),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'number in BYTES',
      body: withData('BYTES', [2], ['a', 5]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'null in BYTES',
      body: withData('BYTES', [1], [null]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'UINT8 256',
      body: withData('UINT8', [1], [256]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    { name: 'UINT8 -1', body: withData('UINT8', [1], [-1]), reason: 'INVALID_DATA', field: 'inputs[0].data' },
    {
      name: 'UINT16 65536',
      body: withData('UINT16', [1], [65536]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'UINT32 -1',
      body: withData('UINT32', [1], [-1]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'UINT32 2^32',
      body: withData('UINT32', [1], [2 ** 32]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'UINT64 -1',
      body: withData('UINT64', [1], [-1]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'UINT64 2^53 (not exact)',
      body: withData('UINT64', [1], [2 ** 53]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    { name: 'INT8 128', body: withData('INT8', [1], [128]), reason: 'INVALID_DATA', field: 'inputs[0].data' },
    {
      name: 'INT8 -129',
      body: withData('INT8', [1], [-129]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'INT16 32768',
      body: withData('INT16', [1], [32768]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'INT32 2^31',
      body: withData('INT32', [1], [2 ** 31]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'INT32 -2^31-1',
      body: withData('INT32', [1], [-(2 ** 31) - 1]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'INT64 2^53 (not exact)',
      body: withData('INT64', [1], [2 ** 53]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'INT64 -2^53',
      body: withData('INT64', [1], [-(2 ** 53)]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'INT64 1e30',
      body: withData('INT64', [1], [1e30]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'INT64 float 0.5',
      body: withData('INT64', [1], [0.5]),
      reason: 'INVALID_DATA',
      field: 'inputs[0].data',
    },
    {
      name: 'bad element in the second input names the second input',
      body: jsonBody({ inputs: [fp32(), { name: 'y', datatype: 'UINT8', shape: [1], data: [300] }] }),
      reason: 'INVALID_DATA',
      field: 'inputs[1].data',
    },
  ]);

  test('an integer written as 3.0 in JSON is an integer', () => {
    const req = decode(utf8('{"inputs":[{"name":"x","datatype":"INT32","shape":[2],"data":[3.0,-2e0]}]}'));
    assert.deepEqual(values(req.inputs[0]!.data), [3, -2]);
  });

  test('the bad element is mentioned in the message', () => {
    assert.throws(
      () => decodeInferRequest(withData('UINT8', [3], [1, 2, 256])),
      (e: unknown) => e instanceof CodecError && e.message.includes('256') && e.message.includes('[2]'),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Binary tensor data extension

describe('decodeInferRequest: binary extension', () => {
  const fpInput = (name: string, n: number) => ({
    name,
    datatype: 'FP32',
    shape: [n],
    parameters: { binary_data_size: n * 4 },
  });

  runRejections([
    {
      name: 'non-numeric header length',
      body: utf8('{}'),
      opts: { headerLength: 'abc' },
      reason: 'INVALID_BINARY',
      field: 'Inference-Header-Content-Length',
    },
    ...['-1', '1.5', '', ' 2', '2 ', '1e1', '0x2', '+2', '1234567890123456'].map(
      (h): RejectCase => ({
        name: `header length ${JSON.stringify(h)}`,
        body: utf8('{"inputs":[]}'),
        opts: { headerLength: h },
        reason: 'INVALID_BINARY',
        field: 'Inference-Header-Content-Length',
      }),
    ),
    {
      name: 'header length larger than the body',
      body: utf8('{"inputs":[]}'),
      opts: { headerLength: '14' },
      reason: 'INVALID_BINARY',
      field: 'Inference-Header-Content-Length',
    },
    {
      name: 'header length cutting the JSON short',
      body: utf8('{"inputs":[]}'),
      opts: { headerLength: '5' },
      reason: 'MALFORMED_JSON',
      field: undefined,
    },
  ]);

  test('Inference-Header-Content-Length 0 gives the raw body', () => {
    const body = f32le(1, 2, 3);
    const out = decodeInferRequest(body, { headerLength: '0' });
    assert.ok('raw' in out);
    assert.deepEqual(Array.from(out.raw), Array.from(body));
    assert.equal(out.raw.length, 12);
  });

  test('header length 0 on a JSON-looking body is still raw', () => {
    const body = jsonBody(one(fp32()));
    const out = decodeInferRequest(body, { headerLength: '0' });
    assert.ok('raw' in out);
    assert.equal(out.raw.length, body.length);
  });

  test('header length 0 with a rawInput: the body decoded as that input, dim 0 from the byte count', () => {
    const input = rawInput('x', 'FP32', [-1, 2]);
    assert.deepEqual(input, { name: 'x', datatype: 'FP32', rowShape: [2], rowBytes: 8 });
    const body = f32le(1, 2, 3, 4, 5, 6);
    const req = decode(body, { headerLength: '0', rawInput: input });
    assert.deepEqual(
      { ...req, inputs: req.inputs.map((t) => ({ ...t, data: values(t.data) })) },
      {
        id: undefined,
        parameters: undefined,
        inputs: [
          {
            name: 'x',
            datatype: 'FP32',
            shape: [3, 2],
            data: [1, 2, 3, 4, 5, 6],
            parameters: { binary_data_size: 24 },
          },
        ],
        outputs: undefined,
        binaryOutput: false,
      },
    );
    assert.ok(req.inputs[0]!.data instanceof Float32Array);
    // The same request as the binary extension would carry it.
    const { body: ext, headerLength } = binaryRequest(
      one({ name: 'x', datatype: 'FP32', shape: [3, 2], parameters: { binary_data_size: 24 } }),
      body,
    );
    assert.deepEqual(decodeRawRequest(body, input!), decode(ext, { headerLength }));
  });

  test('a raw body of no bytes is zero rows; one not a whole number of rows is refused', () => {
    const input = rawInput('x', 'INT64', [-1, 3])!;
    assert.deepEqual(decodeRawRequest(new Uint8Array(0), input).inputs[0]!.shape, [0, 3]);
    assert.deepEqual(values(decodeRawRequest(i64le(1n, -2n, 3n), input).inputs[0]!.data), [1n, -2n, 3n]);
    assertCodecError(() => decodeRawRequest(i64le(1n, 2n), input), 'DATA_LENGTH_MISMATCH', 'body');
    // A row with a zero dim: no body is a whole number of such rows.
    assertCodecError(
      () => decodeRawRequest(new Uint8Array(0), rawInput('z', 'FP32', [-1, 0])!),
      'DATA_LENGTH_MISMATCH',
      'body',
    );
  });

  test('raw BOOL bytes other than 0 and 1 are refused as in the binary extension', () => {
    const input = rawInput('b', 'BOOL', [-1])!;
    assert.deepEqual(values(decodeRawRequest(Uint8Array.of(1, 0, 1), input).inputs[0]!.data), [1, 0, 1]);
    assertCodecError(() => decodeRawRequest(Uint8Array.of(0, 2), input), 'INVALID_DATA', 'inputs[0]');
  });

  test('rawInput: none for BYTES, an unknown datatype, no dims, or a dynamic dim after the first', () => {
    assert.equal(rawInput('x', 'BYTES', [-1]), undefined);
    assert.equal(rawInput('x', undefined, [-1]), undefined);
    assert.equal(rawInput('x', 'FP32', []), undefined);
    assert.equal(rawInput('x', 'FP32', [-1, -1]), undefined);
    assert.deepEqual(rawInput('x', 'UINT16', [4, 2, 3]), {
      name: 'x',
      datatype: 'UINT16',
      rowShape: [2, 3],
      rowBytes: 12,
    });
    assert.ok(Object.isFrozen(rawInput('x', 'FP32', [-1])));
  });

  test('header length equal to the body: a plain JSON request', () => {
    const body = jsonBody(one(fp32()));
    const req = decode(body, { headerLength: String(body.length) });
    assert.deepEqual(values(req.inputs[0]!.data), [1, 2]);
  });

  test('leading zeros in the header length are accepted', () => {
    const { json, body } = binaryRequest(one(fpInput('x', 1)), f32le(7));
    const req = decode(body, { headerLength: `000${json.length}` });
    assert.deepEqual(values(req.inputs[0]!.data), [7]);
  });

  test('binary inputs are read in input order', () => {
    const header = {
      inputs: [
        fpInput('a', 2),
        { name: 'b', datatype: 'INT64', shape: [3], parameters: { binary_data_size: 24 } },
        { name: 'c', datatype: 'FP64', shape: [1, 1], parameters: { binary_data_size: 8 } },
      ],
    };
    const { body, headerLength } = binaryRequest(
      header,
      f32le(1.5, -2),
      i64le(-1n, 2n ** 40n, 3n),
      f64le(0.1),
    );
    const req = decode(body, { headerLength });
    assert.deepEqual(
      req.inputs.map((i) => i.name),
      ['a', 'b', 'c'],
    );
    assert.ok(req.inputs[0]!.data instanceof Float32Array);
    assert.deepEqual(values(req.inputs[0]!.data), [1.5, -2]);
    assert.ok(req.inputs[1]!.data instanceof BigInt64Array);
    assert.deepEqual(values(req.inputs[1]!.data), [-1n, 2n ** 40n, 3n]);
    assert.deepEqual(values(req.inputs[2]!.data), [0.1]);
    assert.deepEqual(req.inputs[0]!.parameters, { binary_data_size: 8 });
  });

  test('JSON and binary inputs can be mixed', () => {
    const header = { inputs: [fpInput('a', 1), fp32({ name: 'j' }), fpInput('b', 2)] };
    const { body, headerLength } = binaryRequest(header, f32le(9), f32le(3, 4));
    const req = decode(body, { headerLength });
    assert.deepEqual(
      req.inputs.map((i) => values(i.data)),
      [[9], [1, 2], [3, 4]],
    );
  });

  test('every fixed-size datatype round-trips through binary form', () => {
    const cases: {
      datatype: Datatype;
      ctor: { new (n: number): TensorData & { buffer: ArrayBufferLike } };
      vals: unknown[];
    }[] = [
      { datatype: 'BOOL', ctor: Uint8Array, vals: [1, 0, 1] },
      { datatype: 'UINT8', ctor: Uint8Array, vals: [0, 128, 255] },
      { datatype: 'UINT16', ctor: Uint16Array, vals: [1, 65535, 258] },
      { datatype: 'UINT32', ctor: Uint32Array, vals: [1, 4294967295, 65536] },
      { datatype: 'UINT64', ctor: BigUint64Array, vals: [0n, 2n ** 64n - 1n, 2n ** 53n + 1n] },
      { datatype: 'INT8', ctor: Int8Array, vals: [-128, 127, 0] },
      { datatype: 'INT16', ctor: Int16Array, vals: [-32768, 32767, -2] },
      { datatype: 'INT32', ctor: Int32Array, vals: [-(2 ** 31), 2 ** 31 - 1, 5] },
      { datatype: 'INT64', ctor: BigInt64Array, vals: [-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n] },
      { datatype: 'FP16', ctor: Uint16Array, vals: [0x3c00, 0xc000, 0x7bff] },
      { datatype: 'BF16', ctor: Uint16Array, vals: [0x3f80, 0xc000, 0x0001] },
      { datatype: 'FP32', ctor: Float32Array, vals: [1.5, Number.NaN, Number.NEGATIVE_INFINITY] },
      { datatype: 'FP64', ctor: Float64Array, vals: [Math.PI, -0, Number.MAX_VALUE] },
    ];
    for (const c of cases) {
      const src = new c.ctor(3) as unknown as { [i: number]: unknown; buffer: ArrayBuffer };
      c.vals.forEach((v, i) => {
        src[i] = v;
      });
      const bytes = new Uint8Array(src.buffer);
      const header = {
        inputs: [
          { name: 'x', datatype: c.datatype, shape: [3], parameters: { binary_data_size: bytes.length } },
        ],
      };
      const { body, headerLength } = binaryRequest(header, bytes);
      const data = decode(body, { headerLength }).inputs[0]!.data;
      assert.ok(data instanceof c.ctor, `${c.datatype}: ${data.constructor.name}`);
      assert.deepEqual(values(data), c.vals, c.datatype);
    }
  });

  test('FP16 via binary is accepted and keeps its raw bits', () => {
    const bits = Buffer.alloc(4);
    bits.writeUInt16LE(0x3c00, 0); // 1.0
    bits.writeUInt16LE(0xc000, 2); // -2.0
    const { body, headerLength } = binaryRequest(
      one({ name: 'h', datatype: 'FP16', shape: [2], parameters: { binary_data_size: 4 } }),
      bits,
    );
    const input = decode(body, { headerLength }).inputs[0]!;
    assert.equal(input.datatype, 'FP16');
    assert.ok(input.data instanceof Uint16Array);
    assert.deepEqual(values(input.data), [0x3c00, 0xc000]);
  });

  for (const pad of [1, 2, 3, 5, 7]) {
    test(`unaligned tail: JSON header ${pad} byte(s) past a multiple of 8 decodes FP32/INT64/FP64 right`, () => {
      const header = {
        inputs: [
          fpInput('a', 3),
          { name: 'b', datatype: 'INT64', shape: [2], parameters: { binary_data_size: 16 } },
          { name: 'c', datatype: 'FP64', shape: [1], parameters: { binary_data_size: 8 } },
        ],
      };
      let json = Buffer.from(JSON.stringify(header));
      json = Buffer.concat([json, Buffer.alloc((pad - (json.length % 8) + 8) % 8, 0x20)]);
      assert.equal(json.length % 8, pad);
      const tail = Buffer.concat([
        f32le(0.5, -1.25, 3e38),
        i64le(-(2n ** 62n), 12345678901234n),
        f64le(-Math.E),
      ]);
      // Put the whole body at an odd offset of a larger buffer as well.
      const backing = new Uint8Array(json.length + tail.length + 3);
      backing.set(json, 3);
      backing.set(tail, 3 + json.length);
      const body = backing.subarray(3);
      const req = decode(body, { headerLength: String(json.length) });
      assert.deepEqual(values(req.inputs[0]!.data), [0.5, -1.25, Math.fround(3e38)]);
      assert.deepEqual(values(req.inputs[1]!.data), [-(2n ** 62n), 12345678901234n]);
      assert.deepEqual(values(req.inputs[2]!.data), [-Math.E]);
    });
  }

  test('decoded binary data is a copy, not a view of the body', () => {
    const { body, headerLength, json } = binaryRequest(one(fpInput('x', 2)), f32le(1, 2));
    const data = decode(body, { headerLength }).inputs[0]!.data;
    body.fill(0, json.length);
    assert.deepEqual(values(data), [1, 2]);
  });

  test('BYTES in binary form: 4-byte LE length prefix per element', () => {
    const tail = bytesElements('ab', '', 'héllo', 'x'.repeat(300));
    const { body, headerLength } = binaryRequest(
      one({ name: 's', datatype: 'BYTES', shape: [2, 2], parameters: { binary_data_size: tail.length } }),
      tail,
    );
    const input = decode(body, { headerLength }).inputs[0]!;
    assert.deepEqual(input.data, ['ab', '', 'héllo', 'x'.repeat(300)]);
  });

  test('BYTES binary followed by another binary input', () => {
    const s = bytesElements('q');
    const { body, headerLength } = binaryRequest(
      {
        inputs: [
          { name: 's', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: s.length } },
          fpInput('f', 1),
        ],
      },
      s,
      f32le(4),
    );
    const req = decode(body, { headerLength });
    assert.deepEqual(req.inputs[0]!.data, ['q']);
    assert.deepEqual(values(req.inputs[1]!.data), [4]);
  });

  test('zero-size binary input with binary_data_size 0', () => {
    const { body, headerLength } = binaryRequest(
      {
        inputs: [
          { name: 'e', datatype: 'FP32', shape: [0, 4], parameters: { binary_data_size: 0 } },
          fpInput('f', 1),
        ],
      },
      f32le(8),
    );
    const req = decode(body, { headerLength });
    assert.equal(req.inputs[0]!.data.length, 0);
    assert.deepEqual(values(req.inputs[1]!.data), [8]);
  });

  interface BinCase {
    name: string;
    header: unknown;
    blobs: Uint8Array[];
    reason: CodecReason;
    field: string;
  }
  const binCases: BinCase[] = [
    {
      name: 'binary tail longer than the sizes add up to',
      header: one(fpInput('x', 1)),
      blobs: [f32le(1, 2)],
      reason: 'INVALID_BINARY',
      field: 'inputs',
    },
    {
      name: 'binary tail with no binary input',
      header: one(fp32()),
      blobs: [Uint8Array.of(1)],
      reason: 'INVALID_BINARY',
      field: 'inputs',
    },
    {
      name: 'binary tail shorter than binary_data_size',
      header: one(fpInput('x', 2)),
      blobs: [f32le(1)],
      reason: 'INVALID_BINARY',
      field: 'inputs[0].parameters.binary_data_size',
    },
    {
      name: 'second input runs past the tail',
      header: { inputs: [fpInput('a', 1), fpInput('b', 2)] },
      blobs: [f32le(1, 2)],
      reason: 'INVALID_BINARY',
      field: 'inputs[1].parameters.binary_data_size',
    },
    {
      name: 'binary_data_size disagrees with shape (FP32 [3], 8 bytes)',
      header: one({ name: 'x', datatype: 'FP32', shape: [3], parameters: { binary_data_size: 8 } }),
      blobs: [f32le(1, 2)],
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].parameters.binary_data_size',
    },
    {
      name: 'binary_data_size disagrees with a huge shape (FP32 [1e12])',
      header: one({ name: 'x', datatype: 'FP32', shape: [1e12], parameters: { binary_data_size: 4 } }),
      blobs: [f32le(1)],
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].parameters.binary_data_size',
    },
    {
      name: 'binary_data_size negative',
      header: one({ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: -4 } }),
      blobs: [f32le(1)],
      reason: 'INVALID_BINARY',
      field: 'inputs[0].parameters.binary_data_size',
    },
    {
      name: 'binary_data_size fractional',
      header: one({ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: 4.5 } }),
      blobs: [f32le(1)],
      reason: 'INVALID_BINARY',
      field: 'inputs[0].parameters.binary_data_size',
    },
    {
      name: 'binary_data_size a string',
      header: one({ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: '4' } }),
      blobs: [f32le(1)],
      reason: 'INVALID_BINARY',
      field: 'inputs[0].parameters.binary_data_size',
    },
    {
      name: 'BOOL byte 2',
      header: one({ name: 'b', datatype: 'BOOL', shape: [3], parameters: { binary_data_size: 3 } }),
      blobs: [Uint8Array.of(1, 0, 2)],
      reason: 'INVALID_DATA',
      field: 'inputs[0]',
    },
    {
      name: 'BOOL byte 255',
      header: one({ name: 'b', datatype: 'BOOL', shape: [1], parameters: { binary_data_size: 1 } }),
      blobs: [Uint8Array.of(255)],
      reason: 'INVALID_DATA',
      field: 'inputs[0]',
    },
    {
      name: 'BYTES truncated length prefix',
      header: one({ name: 's', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: 8 } }),
      blobs: [Buffer.concat([bytesElements('abc'), Uint8Array.of(1)])],
      reason: 'INVALID_BINARY',
      field: 'inputs[0]',
    },
    {
      name: 'BYTES prefix of 2 bytes only',
      header: one({ name: 's', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 2 } }),
      blobs: [Uint8Array.of(3, 0)],
      reason: 'INVALID_BINARY',
      field: 'inputs[0]',
    },
    {
      name: 'BYTES element running past the end',
      header: one({ name: 's', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 7 } }),
      blobs: [Uint8Array.of(10, 0, 0, 0, 0x61, 0x62, 0x63)],
      reason: 'INVALID_BINARY',
      field: 'inputs[0]',
    },
    {
      name: 'BYTES length 0xFFFFFFFF',
      header: one({ name: 's', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 5 } }),
      blobs: [Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x61)],
      reason: 'INVALID_BINARY',
      field: 'inputs[0]',
    },
    {
      name: 'BYTES fewer elements than the shape',
      header: one({ name: 's', datatype: 'BYTES', shape: [3], parameters: { binary_data_size: 10 } }),
      blobs: [bytesElements('a', 'b')],
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'BYTES more elements than the shape',
      header: one({ name: 's', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 10 } }),
      blobs: [bytesElements('a', 'b')],
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'BYTES data for a zero-element shape',
      header: one({ name: 's', datatype: 'BYTES', shape: [0], parameters: { binary_data_size: 5 } }),
      blobs: [bytesElements('a')],
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[0].data',
    },
    {
      name: 'binary data and data on the same input',
      header: one({ ...fpInput('x', 1), data: [1] }),
      blobs: [f32le(1)],
      reason: 'INVALID_REQUEST',
      field: 'inputs[0].data',
    },
  ];
  for (const c of binCases) {
    test(c.name, () => {
      const { body, headerLength } = binaryRequest(c.header, ...c.blobs);
      assertCodecError(() => decodeInferRequest(body, { headerLength }), c.reason, c.field);
    });
  }

  test('BOOL binary bytes 0 and 1 are accepted', () => {
    const { body, headerLength } = binaryRequest(
      one({ name: 'b', datatype: 'BOOL', shape: [4], parameters: { binary_data_size: 4 } }),
      Uint8Array.of(0, 1, 1, 0),
    );
    assert.deepEqual(values(decode(body, { headerLength }).inputs[0]!.data), [0, 1, 1, 0]);
  });
});

// ---------------------------------------------------------------------------------------------
// Responses

/** encodeInferResponse with the body as bytes (a pure-JSON body may be handed back as a string). */
function encodeBytes(resp: InferResponse): { body: Buffer; headerLength: number | undefined } {
  const enc = encodeInferResponse(resp);
  if (typeof enc.body === 'string') {
    assert.equal(enc.headerLength, undefined, 'a string body must be pure JSON');
    return { body: Buffer.from(enc.body, 'utf8'), headerLength: undefined };
  }
  return { body: enc.body, headerLength: enc.headerLength };
}

describe('encodeInferResponse / decodeInferResponse', () => {
  function roundTrip(resp: InferResponse): {
    decoded: InferResponse;
    doc: Record<string, unknown>;
    headerLength: number | undefined;
  } {
    const enc = encodeBytes(resp);
    const jsonPart = enc.headerLength === undefined ? enc.body : enc.body.subarray(0, enc.headerLength);
    const doc = JSON.parse(jsonPart.toString('utf8')) as Record<string, unknown>;
    const decoded = decodeInferResponse(
      enc.body,
      enc.headerLength === undefined ? undefined : String(enc.headerLength),
    );
    return { decoded, doc, headerLength: enc.headerLength };
  }

  test('JSON outputs: BOOL as true/false, INT64 as numbers, no header length', () => {
    const { decoded, doc, headerLength } = roundTrip({
      model_name: 'm',
      model_version: '3',
      id: 'abc',
      outputs: [
        { name: 'b', datatype: 'BOOL', shape: [3], data: Uint8Array.of(1, 0, 1), binary: false },
        { name: 'i', datatype: 'INT64', shape: [2], data: BigInt64Array.of(-5n, 2n ** 40n), binary: false },
        { name: 'f', datatype: 'FP32', shape: [1, 2], data: Float32Array.of(0.5, -2), binary: false },
        { name: 's', datatype: 'BYTES', shape: [2], data: ['x', 'ÿ'], binary: false },
      ],
    });
    assert.equal(headerLength, undefined);
    assert.equal(doc.model_name, 'm');
    assert.equal(doc.model_version, '3');
    assert.equal(doc.id, 'abc');
    assert.deepEqual(doc.outputs, [
      { name: 'b', datatype: 'BOOL', shape: [3], data: [true, false, true] },
      { name: 'i', datatype: 'INT64', shape: [2], data: [-5, 2 ** 40] },
      { name: 'f', datatype: 'FP32', shape: [1, 2], data: [0.5, -2] },
      { name: 's', datatype: 'BYTES', shape: [2], data: ['x', 'ÿ'] },
    ]);
    assert.equal(decoded.model_name, 'm');
    assert.equal(decoded.model_version, '3');
    assert.equal(decoded.id, 'abc');
    assert.deepEqual(
      decoded.outputs.map((o) => [o.name, o.datatype, o.shape, o.binary, values(o.data)]),
      [
        ['b', 'BOOL', [3], false, [1, 0, 1]],
        ['i', 'INT64', [2], false, [-5n, 2n ** 40n]],
        ['f', 'FP32', [1, 2], false, [0.5, -2]],
        ['s', 'BYTES', [2], false, ['x', 'ÿ']],
      ],
    );
    assert.ok(decoded.outputs[1]!.data instanceof BigInt64Array);
  });

  test('absent model_version, id and parameters are left out of the JSON', () => {
    const { doc } = roundTrip({
      model_name: 'm',
      outputs: [{ name: 'y', datatype: 'INT8', shape: [1], data: Int8Array.of(-1), binary: false }],
    });
    assert.deepEqual(Object.keys(doc), ['model_name', 'outputs']);
  });

  test('parameters are written to the JSON', () => {
    const { doc } = roundTrip({
      model_name: 'm',
      parameters: { sequence_end: true },
      outputs: [{ name: 'y', datatype: 'INT8', shape: [1], data: Int8Array.of(-1), binary: false }],
    });
    assert.deepEqual(doc.parameters, { sequence_end: true });
  });

  test('response parameters survive decodeInferResponse', {}, () => {
    const { decoded } = roundTrip({
      model_name: 'm',
      parameters: { sequence_end: true },
      outputs: [{ name: 'y', datatype: 'INT8', shape: [1], data: Int8Array.of(-1), binary: false }],
    });
    assert.deepEqual(decoded.parameters, { sequence_end: true });
  });

  test('binary outputs: header length, binary_data_size and the raw bytes after the JSON', () => {
    const enc = encodeBytes({
      model_name: 'm',
      outputs: [
        { name: 'a', datatype: 'FP32', shape: [2], data: Float32Array.of(1.5, -3), binary: true },
        { name: 'b', datatype: 'INT64', shape: [1], data: BigInt64Array.of(2n ** 62n), binary: true },
      ],
    });
    assert.ok(enc.headerLength !== undefined);
    const json = JSON.parse(enc.body.subarray(0, enc.headerLength).toString('utf8')) as {
      outputs: unknown[];
    };
    assert.deepEqual(json.outputs, [
      { name: 'a', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } },
      { name: 'b', datatype: 'INT64', shape: [1], parameters: { binary_data_size: 8 } },
    ]);
    assert.equal(enc.body.length, enc.headerLength + 16);
    assert.deepEqual(
      Array.from(enc.body.subarray(enc.headerLength)),
      Array.from(Buffer.concat([f32le(1.5, -3), i64le(2n ** 62n)])),
    );
    const dec = decodeInferResponse(enc.body, String(enc.headerLength));
    assert.deepEqual(
      dec.outputs.map((o) => [o.name, o.binary, values(o.data)]),
      [
        ['a', true, [1.5, -3]],
        ['b', true, [2n ** 62n]],
      ],
    );
  });

  test('mixed JSON and binary outputs keep their order', () => {
    const { decoded, doc, headerLength } = roundTrip({
      model_name: 'm',
      outputs: [
        { name: 'bin1', datatype: 'UINT16', shape: [2], data: Uint16Array.of(1, 65535), binary: true },
        { name: 'js', datatype: 'INT32', shape: [2], data: Int32Array.of(-7, 8), binary: false },
        { name: 'bin2', datatype: 'FP64', shape: [1], data: Float64Array.of(Math.PI), binary: true },
      ],
    });
    assert.ok(headerLength !== undefined);
    const outs = doc.outputs as Record<string, unknown>[];
    assert.deepEqual(outs[1], { name: 'js', datatype: 'INT32', shape: [2], data: [-7, 8] });
    assert.equal(outs[0]!.data, undefined);
    assert.deepEqual(
      decoded.outputs.map((o) => [o.name, o.binary, values(o.data)]),
      [
        ['bin1', true, [1, 65535]],
        ['js', false, [-7, 8]],
        ['bin2', true, [Math.PI]],
      ],
    );
  });

  test('BYTES binary output: length-prefixed elements', () => {
    const enc = encodeBytes({
      model_name: 'm',
      outputs: [{ name: 's', datatype: 'BYTES', shape: [3], data: ['ab', '', 'ü'], binary: true }],
    });
    assert.ok(enc.headerLength !== undefined);
    const tail = enc.body.subarray(enc.headerLength);
    assert.deepEqual(Array.from(tail), Array.from(bytesElements('ab', '', 'ü')));
    const json = JSON.parse(enc.body.subarray(0, enc.headerLength).toString()) as {
      outputs: { parameters: { binary_data_size: number } }[];
    };
    assert.equal(json.outputs[0]!.parameters.binary_data_size, 4 + 2 + 4 + 0 + 4 + 2);
    const dec = decodeInferResponse(enc.body, String(enc.headerLength));
    assert.deepEqual(dec.outputs[0]!.data, ['ab', '', 'ü']);
    assert.equal(dec.outputs[0]!.binary, true);
  });

  test('BOOL and FP16 binary outputs', () => {
    const { decoded } = roundTrip({
      model_name: 'm',
      outputs: [
        { name: 'b', datatype: 'BOOL', shape: [3], data: Uint8Array.of(0, 1, 1), binary: true },
        { name: 'h', datatype: 'FP16', shape: [1], data: Uint16Array.of(0x3c00), binary: true },
      ],
    });
    assert.deepEqual(values(decoded.outputs[0]!.data), [0, 1, 1]);
    assert.deepEqual(values(decoded.outputs[1]!.data), [0x3c00]);
    assert.equal(decoded.outputs[1]!.datatype, 'FP16');
  });

  test('tensorBytes of a sub-view only takes the view bytes', () => {
    const whole = Float32Array.of(1, 2, 3, 4);
    const view = whole.subarray(1, 3);
    assert.deepEqual(Array.from(tensorBytes(view)), Array.from(f32le(2, 3)));
    const enc = encodeBytes({
      model_name: 'm',
      outputs: [{ name: 'v', datatype: 'FP32', shape: [2], data: view, binary: true }],
    });
    assert.deepEqual(
      values(decodeInferResponse(enc.body, String(enc.headerLength)).outputs[0]!.data),
      [2, 3],
    );
  });

  test('decodeInferResponse rejects bodies that are not inference responses', () => {
    assertCodecError(() => decodeInferResponse(jsonBody({ outputs: [] })), 'INVALID_REQUEST', undefined);
    assertCodecError(() => decodeInferResponse(jsonBody({ model_name: 'm' })), 'INVALID_REQUEST', undefined);
    assertCodecError(() => decodeInferResponse(jsonBody([])), 'INVALID_REQUEST', undefined);
    assertCodecError(() => decodeInferResponse(utf8('{')), 'MALFORMED_JSON', undefined);
    assertCodecError(
      () => decodeInferResponse(jsonBody({ model_name: 'm', outputs: [] }), '99'),
      'INVALID_BINARY',
      'Inference-Header-Content-Length',
    );
  });

  test('decodeInferResponse: binary output without header length is rejected', () => {
    const enc = encodeBytes({
      model_name: 'm',
      outputs: [{ name: 'a', datatype: 'FP32', shape: [1], data: Float32Array.of(1), binary: true }],
    });
    assert.throws(() => decodeInferResponse(enc.body), CodecError);
  });

  test('decodeInferResponse rejects binary bytes that no output claims', {}, () => {
    const enc = encodeBytes({
      model_name: 'm',
      outputs: [{ name: 'a', datatype: 'FP32', shape: [1], data: Float32Array.of(1), binary: true }],
    });
    const body = Buffer.concat([enc.body, f32le(99)]);
    assertCodecError(() => decodeInferResponse(body, String(enc.headerLength)), 'INVALID_BINARY', 'outputs');
  });

  test('non-finite FP32 outputs survive a JSON round trip', {}, () => {
    const enc = encodeBytes({
      model_name: 'm',
      outputs: [
        {
          name: 'y',
          datatype: 'FP32',
          shape: [3],
          data: Float32Array.of(Number.NaN, Number.POSITIVE_INFINITY, 1),
          binary: false,
        },
      ],
    });
    const dec = decodeInferResponse(enc.body);
    assert.deepEqual(values(dec.outputs[0]!.data), [Number.NaN, Number.POSITIVE_INFINITY, 1]);
  });
});

// ---------------------------------------------------------------------------------------------
// Regressions

describe('regression: an output named twice in outputs is a 400, not a duplicated output', () => {
  const input = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };
  runRejections([
    {
      name: 'the second mention is named: outputs[1].name',
      body: jsonBody({ inputs: [input], outputs: [{ name: 'y' }, { name: 'y' }] }),
      reason: 'INVALID_REQUEST',
      field: 'outputs[1].name',
    },
    {
      name: 'a different binary_data flag does not make it another output',
      body: jsonBody({
        inputs: [input],
        outputs: [{ name: 'a' }, { name: 'y' }, { name: 'y', parameters: { binary_data: true } }],
      }),
      reason: 'INVALID_REQUEST',
      field: 'outputs[2].name',
    },
  ]);

  test('the message names the output and both places', () => {
    assert.throws(
      () => decodeDoc({ inputs: [input], outputs: [{ name: 'y' }, { name: 'z' }, { name: 'y' }] }),
      (e: unknown) =>
        e instanceof CodecError && /'y'/.test(e.message) && /outputs\[0\] and outputs\[2\]/.test(e.message),
    );
  });

  test('distinct outputs are still fine', () => {
    const req = decodeDoc({ inputs: [input], outputs: [{ name: 'y' }, { name: 'Y' }] });
    assert.deepEqual(
      req.outputs?.map((o) => o.name),
      ['y', 'Y'],
    );
  });
});

describe('regression: ragged nested data is a 400 naming the input', () => {
  const withData = (datatype: string, shape: number[], data: unknown, name = 'x') =>
    jsonBody({
      inputs: [
        { name: 'ok', datatype: 'INT32', shape: [1], data: [0] },
        { name, datatype, shape, data },
      ],
    });

  runRejections([
    {
      name: '[[1,2,3],[4]] for [2,2] (4 elements in all, but ragged)',
      body: withData('INT32', [2, 2], [[1, 2, 3], [4]]),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[1].data',
    },
    {
      name: '[[1],[2,3,4]] for [2,2]',
      body: withData('FP32', [2, 2], [[1], [2, 3, 4]]),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[1].data',
    },
    {
      name: 'ragged at depth 2: [[[1,2,3],[4]],[[5,6],[7,8]]] for [2,2,2]',
      body: withData(
        'INT32',
        [2, 2, 2],
        [
          [[1, 2, 3], [4]],
          [
            [5, 6],
            [7, 8],
          ],
        ],
      ),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[1].data',
    },
    {
      name: 'one row too many at depth 1: [[[1,2],[3,4],[5,6]],[[7,8]]] for [2,2,2]',
      body: withData(
        'INT32',
        [2, 2, 2],
        [
          [
            [1, 2],
            [3, 4],
            [5, 6],
          ],
          [[7, 8]],
        ],
      ),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[1].data',
    },
    {
      name: 'a row that is a value: [[1,2],3] for [2,2]',
      body: withData('INT32', [2, 2], [[1, 2], 3]),
      reason: 'INVALID_DATA',
      field: 'inputs[1].data',
    },
    {
      name: 'values then an array: [1,2,[3],4] for [2,2]',
      body: withData('INT32', [2, 2], [1, 2, [3], 4]),
      reason: 'INVALID_DATA',
      field: 'inputs[1].data',
    },
    {
      name: 'BYTES ragged: [["a","b","c"],["d"]] for [2,2]',
      body: withData('BYTES', [2, 2], [['a', 'b', 'c'], ['d']]),
      reason: 'DATA_LENGTH_MISMATCH',
      field: 'inputs[1].data',
    },
  ]);

  test('the message names the input and the row at fault', () => {
    assert.throws(
      () => decodeInferRequest(withData('INT32', [2, 2], [[1, 2, 3], [4]], 'INPUT7')),
      (e: unknown) =>
        e instanceof CodecError && e.message.includes("'INPUT7'") && e.message.includes('inputs[1].data[0]'),
    );
  });

  test('flat data, fully nested data and data nested over the leading dims all decode the same', () => {
    const want = [1, 2, 3, 4, 5, 6, 7, 8];
    for (const data of [
      want,
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
      [
        [
          [1, 2],
          [3, 4],
        ],
        [
          [5, 6],
          [7, 8],
        ],
      ],
    ]) {
      const req = decode(withData('INT32', [2, 2, 2], data));
      assert.deepEqual(values(req.inputs[1]!.data), want, JSON.stringify(data));
    }
  });

  test('zero-size dims nest: [[],[]] for [2,0], [] for [0,3]', () => {
    assert.equal(decode(withData('FP32', [2, 0], [[], []])).inputs[1]!.data.length, 0);
    assert.equal(decode(withData('FP32', [0, 3], [])).inputs[1]!.data.length, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// The hand-written response encoder writes what JSON.stringify wrote before it

describe('encodeInferResponse writes the same bytes as JSON.stringify of the answer document', () => {
  /** The encoder as it was: build the document, JSON.stringify it. */
  function reference(resp: InferResponse): { body: Buffer; headerLength: number | undefined } {
    const blobs: Uint8Array[] = [];
    const outputs = resp.outputs.map((o) => {
      const head = { name: o.name, datatype: o.datatype, shape: o.shape };
      if (o.binary) {
        const bytes = tensorBytes(o.data);
        blobs.push(bytes);
        return { ...head, parameters: { binary_data_size: bytes.length } };
      }
      const data =
        o.datatype === 'BOOL' ? Array.from(o.data as Uint8Array, (b) => b !== 0) : jsonData(o.data);
      return { ...head, data };
    });
    const doc: Record<string, unknown> = { model_name: resp.model_name };
    if (resp.model_version !== undefined) doc.model_version = resp.model_version;
    if (resp.id !== undefined) doc.id = resp.id;
    if (resp.parameters !== undefined) doc.parameters = resp.parameters;
    doc.outputs = outputs;
    const json = Buffer.from(JSON.stringify(doc), 'utf8');
    return blobs.length === 0
      ? { body: json, headerLength: undefined }
      : { body: Buffer.concat([json, ...blobs]), headerLength: json.length };
  }

  const out = (datatype: Datatype, data: TensorData, shape = [data.length], binary = false) => ({
    name: `out-${datatype}`,
    datatype,
    shape,
    data,
    binary,
  });
  const cases: [string, InferResponse][] = [
    [
      'every JSON datatype',
      {
        model_name: 'm',
        model_version: '3',
        id: 'req-1',
        outputs: [
          out('BOOL', Uint8Array.from([0, 1, 1])),
          out('UINT8', Uint8Array.from([0, 255])),
          out('UINT16', Uint16Array.from([0, 65535])),
          out('UINT32', Uint32Array.from([0, 4294967295])),
          out('UINT64', BigUint64Array.from([0n, 2n ** 53n, 2n ** 64n - 1n])),
          out('INT8', Int8Array.from([-128, 127])),
          out('INT16', Int16Array.from([-32768, 32767])),
          out('INT32', Int32Array.from([-2147483648, 0, 2147483647])),
          out('INT64', BigInt64Array.from([-(2n ** 63n), -1n, 2n ** 53n + 1n, 2n ** 63n - 1n])),
          out('FP32', Float32Array.from([0.1, -0, 1e-45, 3.4e38, Number.NaN, Infinity, -Infinity, 1 / 3])),
          out('FP64', Float64Array.from([0.1, -0, 5e-324, 1e21, 1e-7, 123456789.125, Number.NaN, -Infinity])),
          out('BYTES', [
            'plain',
            'quote " and \\ backslash',
            'tab\tnewline\n',
            'é ü 漢字 😀',
            '\u0001\u001f',
            '',
          ]),
        ],
      },
    ],
    [
      'names, ids and parameters that need escaping',
      {
        model_name: 'we"ird\\name',
        model_version: '1',
        id: '</script>\u2028"',
        parameters: { a: 1, nested: { b: [true, null, 'x"y'] }, skipped: undefined },
        outputs: [{ ...out('INT32', Int32Array.from([1, 2])), name: 'o"ut\n' }],
      },
    ],
    ['no version, id or parameters; no outputs', { model_name: 'm', outputs: [] }],
    [
      'empty and multi-dim tensors',
      {
        model_name: 'm',
        outputs: [
          out('FP32', new Float32Array(0), [0, 16]),
          out('BYTES', [], [0]),
          out('INT32', Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]),
          out('FP64', Float64Array.from([7]), []),
        ],
      },
    ],
    [
      'binary and JSON outputs mixed',
      {
        model_name: 'm',
        model_version: '2',
        outputs: [
          out('FP32', Float32Array.from([1.5, 2.5]), [1, 2], true),
          out('INT64', BigInt64Array.from([5n]), [1], false),
          out('BYTES', ['ab', 'c'], [2], true),
          out('BOOL', Uint8Array.from([1, 0]), [2], true),
          out('FP16', Uint16Array.from([0x3c00]), [1], true),
        ],
      },
    ],
    [
      'a sub-view of a larger buffer',
      {
        model_name: 'm',
        outputs: [
          out('FP32', new Float32Array([9, 1, 2, 9]).subarray(1, 3)),
          out('INT32', new Int32Array([9, 1, 2, 9]).subarray(1, 3), [2], true),
        ],
      },
    ],
  ];
  for (const [label, resp] of cases) {
    test(label, () => {
      const want = reference(resp);
      const got = encodeInferResponse(resp);
      assert.equal(got.headerLength, want.headerLength);
      const body = typeof got.body === 'string' ? Buffer.from(got.body, 'utf8') : got.body;
      assert.equal(body.toString('latin1'), want.body.toString('latin1'));
      if (want.headerLength === undefined) assert.equal(typeof got.body, 'string', 'pure JSON is a string');
    });
  }

  test('random FP32, FP64 and INT32 data', () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let k = 0; k < 50; k++) {
      const f64 = Float64Array.from({ length: 64 }, () => (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40 - 20));
      const resp: InferResponse = {
        model_name: 'm',
        outputs: [
          out('FP64', f64),
          out('FP32', Float32Array.from(f64)),
          out(
            'INT32',
            Int32Array.from(f64, (v) => Math.trunc(v) | 0),
          ),
        ],
      };
      assert.equal(encodeInferResponse(resp).body, reference(resp).body.toString('utf8'));
    }
  });
});
