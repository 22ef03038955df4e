import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BatchPart, concatRows, splitRows } from '../../backend/batch-tensors.js';
import { ApiError } from '../../common/errors.js';
import { allocTyped, type Datatype, type TensorData, type TypedArray } from '../../common/oip/datatypes.js';
import type { Tensor } from '../../common/oip/messages.js';

/** A tensor of `rows` rows of shape `row`, its elements made by `value(i)` in row-major order. */
function tensor(
  name: string,
  datatype: Datatype,
  rows: number,
  row: readonly number[],
  value: (i: number) => number | bigint | string,
): Tensor {
  const shape = [rows, ...row];
  const n = shape.reduce((a, b) => a * b, 1);
  let data: TensorData;
  if (datatype === 'BYTES') {
    data = Array.from({ length: n }, (_, i) => String(value(i)));
  } else {
    const arr = allocTyped(datatype, n);
    for (let i = 0; i < n; i++) (arr as unknown as (number | bigint)[])[i] = value(i) as number | bigint;
    data = arr;
  }
  return { name, datatype, shape, data };
}

const part = (rows: number, ...inputs: Tensor[]): BatchPart => ({ inputs, rows });
const values = (data: TensorData): unknown[] => Array.from(data as ArrayLike<unknown>);

/** Every datatype the batcher merges, with element values of its kind (request `r`, element `i`). */
const CASES: { datatype: Datatype; value: (r: number, i: number) => number | bigint | string }[] = [
  { datatype: 'FP32', value: (r, i) => r * 100 + i + 0.5 },
  { datatype: 'FP64', value: (r, i) => -(r * 100 + i) / 3 },
  { datatype: 'INT32', value: (r, i) => r * 1000 - i },
  { datatype: 'INT64', value: (r, i) => BigInt(r) * 2n ** 40n + BigInt(i) },
  { datatype: 'UINT8', value: (r, i) => (r * 16 + i) % 256 },
  { datatype: 'BOOL', value: (r, i) => (r + i) % 2 },
  { datatype: 'FP16', value: (r, i) => 0x3c00 + r * 8 + i },
  { datatype: 'BYTES', value: (r, i) => `r${r}-e${i}-é` },
];

describe('concatRows', () => {
  for (const { datatype, value } of CASES) {
    test(`${datatype}: the rows of every request, in batch order, dim 0 the total`, () => {
      const sizes = [1, 3, 2];
      const batch = sizes.map((rows, r) =>
        part(
          rows,
          tensor('x', datatype, rows, [2, 3], (i) => value(r, i)),
        ),
      );
      const [merged, ...rest] = concatRows(batch, false);
      assert.equal(rest.length, 0);
      assert.equal(merged!.name, 'x');
      assert.equal(merged!.datatype, datatype);
      assert.deepEqual(merged!.shape, [6, 2, 3]);
      const expected = sizes.flatMap((rows, r) => Array.from({ length: rows * 6 }, (_, i) => value(r, i)));
      assert.deepEqual(values(merged!.data), expected);
      if (datatype === 'BYTES') assert.ok(Array.isArray(merged!.data));
      else assert.equal(merged!.data.constructor, batch[0]!.inputs[0]!.data.constructor);
    });
  }

  test('several inputs are merged each on its own, in the order the requests give them', () => {
    const batch = [
      part(
        1,
        tensor('a', 'FP32', 1, [2], (i) => i),
        tensor('b', 'BYTES', 1, [], () => 'one'),
      ),
      part(
        2,
        tensor('a', 'FP32', 2, [2], (i) => 10 + i),
        tensor('b', 'BYTES', 2, [], (i) => `two${i}`),
      ),
    ];
    const merged = concatRows(batch, false);
    assert.deepEqual(
      merged.map((t) => [t.name, t.datatype, t.shape, values(t.data)]),
      [
        ['a', 'FP32', [3, 2], [0, 1, 10, 11, 12, 13]],
        ['b', 'BYTES', [3], ['one', 'two0', 'two1']],
      ],
    );
  });

  test('requests of zero rows add nothing; a batch of zero rows gives empty tensors', () => {
    const some = concatRows(
      [
        part(
          0,
          tensor('x', 'INT32', 0, [4], (i) => i),
        ),
        part(
          1,
          tensor('x', 'INT32', 1, [4], (i) => 7 + i),
        ),
      ],
      false,
    );
    assert.deepEqual(some[0]!.shape, [1, 4]);
    assert.deepEqual(values(some[0]!.data), [7, 8, 9, 10]);
    for (const datatype of ['FP32', 'BYTES'] as const) {
      const none = concatRows(
        [
          part(
            0,
            tensor('x', datatype, 0, [4], () => 0),
          ),
          part(
            0,
            tensor('x', datatype, 0, [4], () => 0),
          ),
        ],
        true,
      );
      assert.deepEqual(none[0]!.shape, [0, 4], datatype);
      assert.equal(none[0]!.data.length, 0, datatype);
    }
  });

  test('the shapes of the requests are not changed (the merged shape is a copy)', () => {
    const a = tensor('x', 'FP32', 1, [3], (i) => i);
    const b = tensor('x', 'FP32', 2, [3], (i) => i);
    const merged = concatRows([part(1, a), part(2, b)], false);
    assert.deepEqual(a.shape, [1, 3]);
    assert.deepEqual(b.shape, [2, 3]);
    assert.notEqual(merged[0]!.shape, a.shape);
  });

  test('small: small merged data may be a view into a shared slab; its values are the same', () => {
    const batch = [
      part(
        1,
        tensor('x', 'FP32', 1, [4], (i) => i),
      ),
      part(
        1,
        tensor('x', 'FP32', 1, [4], (i) => 4 + i),
      ),
    ];
    const own = concatRows(batch, false)[0]!.data as TypedArray;
    const slab = concatRows(batch, true)[0]!.data as TypedArray;
    assert.deepEqual(values(slab), values(own));
    assert.equal(own.buffer.byteLength, own.byteLength, 'without small: a buffer of its own');
    assert.ok(slab.buffer.byteLength > slab.byteLength, 'with small: a view into a larger slab');
  });
});

describe('splitRows', () => {
  for (const { datatype, value } of CASES) {
    test(`${datatype}: each request gets its rows, dim 0 its own row count`, () => {
      const out = tensor('y', datatype, 6, [2], (i) => value(0, i));
      const answers = splitRows([{ rows: 1 }, { rows: 3 }, { rows: 2 }], [out]);
      assert.equal(answers.length, 3);
      const all = values(out.data);
      assert.deepEqual(
        answers.map((a) => [a.length, a[0]!.name, a[0]!.datatype, a[0]!.shape, values(a[0]!.data)]),
        [
          [1, 'y', datatype, [1, 2], all.slice(0, 2)],
          [1, 'y', datatype, [3, 2], all.slice(2, 8)],
          [1, 'y', datatype, [2, 2], all.slice(8, 12)],
        ],
      );
    });
  }

  test('typed arrays are split into views of the batch output, strings into copies', () => {
    const typed = tensor('t', 'FP32', 3, [], (i) => i);
    const strings = tensor('s', 'BYTES', 3, [], (i) => `s${i}`);
    const [first, second] = splitRows([{ rows: 2 }, { rows: 1 }], [typed, strings]);
    assert.equal((first![0]!.data as TypedArray).buffer, (typed.data as TypedArray).buffer);
    assert.equal((second![0]!.data as TypedArray).byteOffset, 2 * 4);
    assert.notEqual(first![1]!.data, strings.data);
    assert.deepEqual(first![1]!.data, ['s0', 's1']);
    assert.deepEqual(second![1]!.data, ['s2']);
    assert.deepEqual(typed.shape, [3], 'the batch output keeps its shape');
  });

  test('requests of zero rows get empty tensors of their own shape', () => {
    const out = tensor('y', 'INT64', 2, [3], (i) => BigInt(i));
    const answers = splitRows([{ rows: 0 }, { rows: 2 }, { rows: 0 }], [out]);
    assert.deepEqual(
      answers.map((a) => [a[0]!.shape, values(a[0]!.data)]),
      [
        [[0, 3], []],
        [
          [2, 3],
          [0n, 1n, 2n, 3n, 4n, 5n],
        ],
        [[0, 3], []],
      ],
    );
  });

  test('an output whose dim 0 is not the batch rows is BE_ERR_INFERENCE_FAILED', () => {
    const out = tensor('y', 'FP32', 4, [2], (i) => i);
    assert.throws(
      () => splitRows([{ rows: 2 }, { rows: 3 }], [out]),
      (e: unknown) =>
        e instanceof ApiError &&
        e.code === 'BE_ERR_INFERENCE_FAILED' &&
        e.message === "output 'y' has 4 rows for a batch of 5; the model is not batch-major",
    );
  });
});

describe('concatRows then splitRows', () => {
  for (const { datatype, value } of CASES) {
    test(`${datatype}: round trip of rank-3 rows gives each request its own tensor back`, () => {
      const sizes = [2, 0, 1, 3];
      const batch = sizes.map((rows, r) =>
        part(
          rows,
          tensor('x', datatype, rows, [2, 2], (i) => value(r, i)),
        ),
      );
      for (const small of [false, true]) {
        const back = splitRows(batch, concatRows(batch, small));
        assert.equal(back.length, batch.length);
        back.forEach((answer, r) => {
          const sent = batch[r]!.inputs[0]!;
          assert.equal(answer.length, 1);
          assert.deepEqual(answer[0]!.shape, sent.shape, `request ${r}`);
          assert.deepEqual(values(answer[0]!.data), values(sent.data), `request ${r}`);
        });
      }
    });
  }
});
