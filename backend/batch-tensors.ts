/**
 * Batch tensors: the rows of several requests concatenated into one tensor per input (dim 0 is
 * the rows), and a batch's outputs split back into each request's rows. Pure functions.
 */
import { ApiError } from '../common/errors.js';
import { allocTyped, allocTypedSmall, type TensorData, type TypedArray } from '../common/oip/datatypes.js';
import type { Tensor } from '../common/oip/messages.js';
import { BE_ERRORS } from './errors.js';

/** One request of a batch: its inputs (in one order for every request) and its rows (dim 0). */
export interface BatchPart {
  readonly inputs: readonly Tensor[];
  readonly rows: number;
}

/**
 * One tensor per input holding every request's rows in batch order. The requests agree on every
 * dim but the first (the batcher's key). `small`: the merged data stays on this thread, so small
 * arrays may share a slab (`allocTypedSmall`).
 */
export function concatRows(batch: readonly BatchPart[], small: boolean): Tensor[] {
  let rows = 0;
  for (const r of batch) rows += r.rows;
  const first = batch[0]!.inputs;
  const merged: Tensor[] = [];
  for (let i = 0; i < first.length; i++) {
    const t = first[i]!;
    const shape = t.shape.slice();
    shape[0] = rows;
    let data: TensorData;
    if (t.datatype === 'BYTES') {
      const out: string[] = [];
      for (const r of batch) for (const e of r.inputs[i]!.data as string[]) out.push(e);
      data = out;
    } else {
      let total = 0;
      for (const r of batch) total += r.inputs[i]!.data.length;
      // On the event loop the merged data stays on this thread: small ones share a slab.
      const out = small ? allocTypedSmall(t.datatype, total) : allocTyped(t.datatype, total);
      let offset = 0;
      for (const r of batch) {
        const part = r.inputs[i]!.data as TypedArray;
        (out as Uint8Array).set(part as Uint8Array, offset);
        offset += part.length;
      }
      data = out;
    }
    merged.push({ name: t.name, datatype: t.datatype, shape, data });
  }
  return merged;
}

/**
 * Each request's rows of a batch's outputs, in batch order: views of the typed arrays, copies of
 * string arrays. Throws BE_ERR_INFERENCE_FAILED when an output's dim 0 is not the batch's rows.
 */
export function splitRows(
  batch: readonly { readonly rows: number }[],
  outputs: readonly Tensor[],
): Tensor[][] {
  let rows = 0;
  for (const r of batch) rows += r.rows;
  for (const o of outputs) {
    if (o.shape[0] !== rows) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_INFERENCE_FAILED,
        `output '${o.name}' has ${o.shape[0]} rows for a batch of ${rows}; the model is not batch-major`,
      );
    }
  }
  const rowSizes: number[] = [];
  for (const o of outputs) {
    let size = 1;
    for (let d = 1; d < o.shape.length; d++) size *= o.shape[d]!;
    rowSizes.push(size);
  }
  const answers: Tensor[][] = [];
  let offset = 0;
  for (const r of batch) {
    const mine: Tensor[] = [];
    for (let k = 0; k < outputs.length; k++) {
      const o = outputs[k]!;
      const start = offset * rowSizes[k]!;
      const end = (offset + r.rows) * rowSizes[k]!;
      const data = Array.isArray(o.data)
        ? o.data.slice(start, end)
        : (o.data as TypedArray).subarray(start, end);
      const shape = o.shape.slice();
      shape[0] = r.rows;
      mine.push({ name: o.name, datatype: o.datatype, shape, data });
    }
    offset += r.rows;
    answers.push(mine);
  }
  return answers;
}
