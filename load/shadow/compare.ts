/**
 * bench:shadow's in-process part as a function (load/bench-shadow.ts is its CLI; load/bench-all.ts
 * calls it too): decoding both answers and comparing them, µs per compared request, for answers
 * of the sizes the sample models give and larger, each timed for `budgetMs`.
 */
import { encodeInferResponse, decodeInferResponse } from '../../common/oip/response.js';
import type { InferResponse } from '../../common/oip/messages.js';
import { compareResponses } from '../../gateway/rollout/compare.js';
import { mulberry32 } from '../../models/reference.js';

function answer(
  rows: number,
  classes: number,
  binary: boolean,
  seed: number,
): { body: Buffer; header: string | undefined } {
  const next = mulberry32(seed);
  const data = Float32Array.from({ length: rows * classes }, () => next() * 2 - 1);
  const resp: InferResponse = {
    model_name: 'mlp',
    model_version: '1',
    outputs: [{ name: 'y', datatype: 'FP32', shape: [rows, classes], data, binary }],
  };
  const e = encodeInferResponse(resp);
  return {
    body: Buffer.from(e.body),
    header: e.headerLength === undefined ? undefined : String(e.headerLength),
  };
}

const classes = new Set(['y']);

export async function shadowCompare(budgetMs = 300): Promise<{ answer: string; us: number }[]> {
  const out: { answer: string; us: number }[] = [];
  for (const [label, rows, cls, binary] of [
    ['mlp, JSON, 1 x 10', 1, 10, false],
    ['mlp, JSON, 8 x 10', 8, 10, false],
    ['binary, 64 x 10', 64, 10, true],
    ['JSON, 1 x 1000', 1, 1000, false],
    ['binary, 256 x 1000', 256, 1000, true],
  ] as const) {
    const a = answer(rows, cls, binary, 1);
    const b = answer(rows, cls, binary, 2);
    const once = () =>
      compareResponses(
        decodeInferResponse(a.body, a.header),
        decodeInferResponse(b.body, b.header),
        classes,
        1e-6,
      );
    for (let i = 0; i < 200; i++) once();
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < budgetMs) {
      once();
      n++;
    }
    out.push({ answer: label, us: (1000 * (performance.now() - start)) / n });
  }
  return out;
}
