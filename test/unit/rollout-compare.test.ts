// Output comparison of two decoded answers: differences, shapes, datatypes, missing outputs, top-1.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ResponseOutput } from '../../common/oip/messages.js';
import { argmax, compareResponses } from '../../gateway/rollout/compare.js';

const out = (
  name: string,
  shape: number[],
  data: number[],
  datatype: 'FP32' | 'INT64' = 'FP32',
): ResponseOutput => ({
  name,
  datatype,
  shape,
  data: datatype === 'FP32' ? Float32Array.from(data) : BigInt64Array.from(data.map(BigInt)),
  binary: false,
});
const answer = (...outputs: ResponseOutput[]) => ({ model_name: 'm', outputs });

describe('compareResponses', () => {
  test('max absolute and relative differences, top-1 per row', () => {
    const a = answer(out('y', [2, 3], [0.1, 0.7, 0.2, 0.5, 0.25, 0.25]));
    const b = answer(out('y', [2, 3], [0.1, 0.6, 0.3, 0.2, 0.5, 0.3]));
    const c = compareResponses(a, b, new Set(['y']), 1e-6);
    const y = c.outputs[0];
    assert.ok(y !== undefined);
    assert.ok(Math.abs(y.maxAbs - 0.3) < 1e-6, `${y.maxAbs}`);
    assert.ok(Math.abs(y.maxRel - 0.6) < 1e-6, `${y.maxRel}`); // |0.5 - 0.2| / 0.5
    assert.equal(y.rows, 2);
    assert.equal(y.top1Agree, 1, 'row 0 agrees (class 1), row 1 flips (0 -> 1)');
    assert.equal(c.agrees, false);
  });
  test('identical answers agree', () => {
    const a = answer(out('y', [1, 3], [1, 2, 3]), out('k', [1], [7], 'INT64'));
    const c = compareResponses(a, a, new Set(['y']), 0);
    assert.equal(c.agrees, true);
    assert.deepEqual(
      c.outputs.map((o) => [o.name, o.maxAbs, o.maxRel, o.rows, o.top1Agree]),
      [
        ['y', 0, 0, 1, 1],
        ['k', 0, 0, 0, 0],
      ],
    );
  });
  test('shape, datatype and missing outputs are disagreements', () => {
    const c = compareResponses(
      answer(out('y', [1, 3], [1, 2, 3]), out('k', [1], [7], 'INT64'), out('only', [1], [1])),
      answer(out('y', [3, 1], [1, 2, 3]), out('k', [1], [7]), out('extra', [1], [1])),
      new Set(),
      0,
    );
    assert.deepEqual(
      c.outputs.map((o) => [o.name, o.missing, o.shapeMatch, o.datatypeMatch]),
      [
        ['y', undefined, false, true],
        ['k', undefined, true, false],
        ['only', 'shadow', false, false],
        ['extra', 'primary', false, false],
      ],
    );
    assert.equal(c.outputs[0]?.maxAbs, Number.POSITIVE_INFINITY);
    assert.equal(c.agrees, false);
  });
  test('within tolerance agrees', () => {
    const c = compareResponses(
      answer(out('y', [2], [1, 2])),
      answer(out('y', [2], [1.0000001, 2])),
      new Set(),
      1e-5,
    );
    assert.equal(c.agrees, true);
  });
  test('argmax takes the first of equal values', () =>
    assert.equal(argmax(Float32Array.from([1, 3, 3]), 0, 3), 1));
});
