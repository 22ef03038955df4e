// `infergate batch --pack K`: which lines may share a request, the request they make (rows
// concatenated on the first dimension, as binary tensors), and the answer split back into lines.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { requestBody } from '../../cli/batch/input.js';
import { packBody, packInfo, splitOutputs } from '../../cli/batch/pack.js';

const line = (x: number[], rows = 1, extra: Record<string, unknown> = {}) =>
  requestBody(
    JSON.stringify({
      ...extra,
      inputs: [{ name: 'x', shape: [rows, x.length / rows], datatype: 'FP32', data: x }],
    }),
    'oip',
    undefined,
  );

describe('batch packs', () => {
  test('lines of the same names, datatypes and trailing dimensions share a key', () => {
    const a = packInfo(line([1, 2]));
    const b = packInfo(line([3, 4, 5, 6], 2));
    const c = packInfo(line([1, 2, 3]));
    assert.ok(a && b && c);
    assert.equal(a.rows, 1);
    assert.equal(b.rows, 2);
    assert.equal(a.key, b.key);
    assert.notEqual(a.key, c.key);
  });

  test('what cannot share a request goes alone', () => {
    assert.equal(packInfo(line([1, 2], 1, { parameters: { x: 1 } })), undefined, 'request parameters');
    assert.equal(packInfo(line([1, 2], 1, { outputs: [{ name: 'y' }] })), undefined, 'chosen outputs');
    const wrongCount = requestBody(
      '{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2]}]}',
      'oip',
      undefined,
    );
    assert.equal(packInfo(wrongCount), undefined, 'data that does not fill its shape');
    const bytes = requestBody(
      '{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","data":["a"]}]}',
      'oip',
      undefined,
    );
    assert.equal(packInfo(bytes), undefined, 'BYTES');
  });

  test('a pack is one request of all the rows, in line order', () => {
    const pack = [line([1, 2]), line([3, 4, 5, 6], 2)].map((req) => ({ req, info: packInfo(req)! }));
    const w = packBody(pack);
    assert.ok(Buffer.isBuffer(w.data) && w.headerLength !== undefined);
    const header = JSON.parse(w.data.subarray(0, w.headerLength).toString('utf8'));
    assert.deepEqual(header, {
      inputs: [{ name: 'x', shape: [3, 2], datatype: 'FP32', parameters: { binary_data_size: 24 } }],
    });
    const bytes = w.data.subarray(w.headerLength);
    const floats = Array.from({ length: 6 }, (_, i) => bytes.readFloatLE(i * 4));
    assert.deepEqual(floats, [1, 2, 3, 4, 5, 6]);
  });

  test("the answer's outputs split back by each line's rows; not batch-major: undefined", () => {
    const outputs = [
      { name: 'y', shape: [3, 2], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] },
      { name: 'z', shape: [3], datatype: 'INT32', data: [7, 8, 9] },
    ];
    assert.deepEqual(splitOutputs(outputs, [1, 2]), [
      [
        { name: 'y', shape: [1, 2], datatype: 'FP32', data: [1, 2] },
        { name: 'z', shape: [1], datatype: 'INT32', data: [7] },
      ],
      [
        { name: 'y', shape: [2, 2], datatype: 'FP32', data: [3, 4, 5, 6] },
        { name: 'z', shape: [2], datatype: 'INT32', data: [8, 9] },
      ],
    ]);
    assert.equal(splitOutputs([{ name: 'y', shape: [1, 6], data: [1, 2, 3, 4, 5, 6] }], [1, 2]), undefined);
    assert.equal(splitOutputs('nope', [1]), undefined);
  });
});
