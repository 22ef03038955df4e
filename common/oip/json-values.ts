/**
 * Tensor data in JSON, both ways: the `data` of a JSON input flattened into a typed array
 * (every element checked against its datatype), and tensor data written as JSON values or text.
 */
import { CodecError } from './codec-error.js';
import { allocTyped, type Datatype, INT_RANGE, type TensorData, type TypedArray } from './datatypes.js';

/**
 * Flattens row-major JSON `data` into a typed array (or strings for BYTES), checking every
 * element. `data` is flat, or nested: an array of arrays at depth d must hold exactly `shape[d]`
 * of them (never deeper than the rank), and an array of values at depth d exactly the element
 * count of `shape[d..]`. So `[[1,2],[3,4]]` and `[1,2,3,4]` are [2,2], `[[1,2,3],[4]]` is not.
 */
export function decodeJsonData(
  data: unknown,
  datatype: Datatype,
  count: number,
  shape: readonly number[],
  field: string,
  name: string,
): TensorData {
  let top: unknown[];
  if (Array.isArray(data)) top = data;
  else if (shape.length === 0 || count === 1) top = [data];
  else throw new CodecError('INVALID_DATA', `${field}.data must be an array`, `${field}.data`);
  const flat = top.length === 0 || !Array.isArray(top[0]);
  // Sized by the data sent when it is short of the shape's count: a request that claims a huge
  // shape with little data is refused without anything of the claimed size being allocated (the
  // element checks still run, so the first fault is the one named).
  const size = Math.min(count, flat ? top.length : countLeaves(top));
  const out: TensorData = datatype === 'BYTES' ? new Array<string>(size) : allocTyped(datatype, size);
  // The common case, flat data: one tight loop, nothing else allocated.
  if (flat) {
    // Elements are checked before the length, as they come: the first fault is the one named.
    writeLeaves(top, Math.min(top.length, count), datatype, out, 0, field, name, shape, 0);
    if (top.length !== count) {
      throw new CodecError(
        'DATA_LENGTH_MISMATCH',
        top.length > count
          ? `${field}.data has more elements than the ${count} its shape needs`
          : `${field}.data has ${top.length} elements but its shape needs ${count}`,
        `${field}.data`,
      );
    }
    return out;
  }
  writeNested(top, { datatype, out, field, name, shape, path: [] }, 0, 0);
  return out;
}

/** Non-array elements in nested arrays, at any depth (bounded by the body: JSON nests at most 64 deep). */
function countLeaves(arr: readonly unknown[]): number {
  let n = 0;
  for (const v of arr) n += Array.isArray(v) ? countLeaves(v) : 1;
  return n;
}

interface NestedTarget {
  datatype: Datatype;
  out: TensorData;
  field: string;
  name: string;
  shape: readonly number[];
  /** Index at each depth above the array being read, for messages. */
  path: number[];
}

function elementsFrom(shape: readonly number[], depth: number): number {
  let n = 1;
  for (let d = depth; d < shape.length; d++) n *= shape[d]!;
  return n;
}

function dataPath(t: { field: string; path: readonly number[] }, depth: number): string {
  let p = `${t.field}.data`;
  for (let d = 0; d < depth; d++) p += `[${t.path[d]}]`;
  return p;
}

/** Writes the array at `depth` (whose first element is an array) from element `at`; returns the next. */
function writeNested(arr: readonly unknown[], t: NestedTarget, depth: number, at: number): number {
  const rank = t.shape.length;
  if (depth >= rank - 1) {
    throw new CodecError(
      'INVALID_DATA',
      `${t.field}.data is nested deeper than the shape's rank ${rank}`,
      `${t.field}.data`,
    );
  }
  const dim = t.shape[depth]!;
  if (arr.length !== dim) {
    throw new CodecError(
      'DATA_LENGTH_MISMATCH',
      `input '${t.name.slice(0, 64)}': ${dataPath(t, depth)} holds ${arr.length} arrays but dim ${depth} of shape [${t.shape.join(',')}] is ${dim}`,
      `${t.field}.data`,
    );
  }
  const rowSize = elementsFrom(t.shape, depth + 1);
  for (let i = 0; i < arr.length; i++) {
    t.path[depth] = i;
    const row = arr[i];
    if (!Array.isArray(row)) {
      throw new CodecError(
        'INVALID_DATA',
        `input '${t.name.slice(0, 64)}': ${dataPath(t, depth + 1)} is not an array like its siblings (ragged data)`,
        `${t.field}.data`,
      );
    }
    if (row.length > 0 && Array.isArray(row[0])) {
      at = writeNested(row, t, depth + 1, at);
      continue;
    }
    if (row.length !== rowSize) {
      throw new CodecError(
        'DATA_LENGTH_MISMATCH',
        `input '${t.name.slice(0, 64)}': ${dataPath(t, depth + 1)} has ${row.length} elements but dims ${depth + 1}.. of shape [${t.shape.join(',')}] need ${rowSize} (ragged data)`,
        `${t.field}.data`,
      );
    }
    writeLeaves(row, rowSize, t.datatype, t.out, at, t.field, t.name, t.shape, depth + 1);
    at += rowSize;
  }
  return at;
}

/** JSON has no NaN or infinities; they travel as these strings (as Python's json writes them). */
const NON_FINITE = new Set(['NaN', 'Infinity', '-Infinity']);
/** The largest finite FP32 value. */
const FP32_MAX = 3.4028234663852886e38;

/**
 * Writes the first `n` of `src`, element values, to `out` from index `at`, checking each against the
 * datatype. One loop per datatype, no closures: this runs for every element of every request.
 */
function writeLeaves(
  src: readonly unknown[],
  n: number,
  datatype: Datatype,
  out: TensorData,
  at: number,
  field: string,
  name: string,
  shape: readonly number[],
  depth: number,
): void {
  let i = 0;
  let what: string;
  switch (datatype) {
    case 'INT32': {
      const arr = out as Int32Array;
      for (; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'number' || (v | 0) !== v) break;
        arr[at + i] = v;
      }
      what = 'a INT32 integer';
      break;
    }
    case 'FP32': {
      const arr = out as Float32Array;
      for (; i < n; i++) {
        const v = src[i];
        if (typeof v === 'number') {
          // A number beyond FP32's range would silently become an infinity.
          if ((v > FP32_MAX || v < -FP32_MAX) && !Number.isFinite(Math.fround(v))) break;
          arr[at + i] = v;
        } else if (typeof v === 'string' && NON_FINITE.has(v)) arr[at + i] = Number(v);
        else break;
      }
      what = 'a number in FP32 range (infinities are written "Infinity")';
      break;
    }
    case 'FP64': {
      const arr = out as Float64Array;
      for (; i < n; i++) {
        const v = src[i];
        // JSON.parse reads a literal beyond FP64's range (1e400) as an infinity: refused too.
        if (typeof v === 'number' && v - v === 0) arr[at + i] = v;
        else if (typeof v === 'string' && NON_FINITE.has(v)) arr[at + i] = Number(v);
        else break;
      }
      what = 'a number in FP64 range (infinities are written "Infinity")';
      break;
    }
    case 'BYTES': {
      const arr = out as string[];
      for (; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'string') break;
        arr[at + i] = v;
      }
      what = 'a string';
      break;
    }
    case 'BOOL': {
      const arr = out as Uint8Array;
      for (; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'boolean') break;
        arr[at + i] = v ? 1 : 0;
      }
      what = 'a boolean';
      break;
    }
    case 'INT64':
    case 'UINT64': {
      const arr = out as BigInt64Array | BigUint64Array;
      const [lo, hi] = INT_RANGE[datatype]!;
      for (; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) break;
        arr[at + i] = BigInt(v);
      }
      what = `a ${datatype} integer`;
      break;
    }
    default: {
      const arr = out as Exclude<TypedArray, BigInt64Array | BigUint64Array>;
      const [lo, hi] = INT_RANGE[datatype]!;
      for (; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) break;
        arr[at + i] = v;
      }
      what = `a ${datatype} integer`;
    }
  }
  if (i === n) return;
  const v = src[i];
  const dfield = `${field}.data`;
  if (Array.isArray(v)) {
    const message =
      depth >= shape.length - 1
        ? `${dfield} is nested deeper than the shape's rank ${shape.length}`
        : `input '${name.slice(0, 64)}': ${dfield} mixes arrays and values at one level (ragged data)`;
    throw new CodecError('INVALID_DATA', message, dfield);
  }
  const shown = typeof v === 'string' ? `'${v.slice(0, 16)}'` : String(v).slice(0, 24);
  throw new CodecError('INVALID_DATA', `${dfield}[${at + i}] is ${shown}, not ${what}`, dfield);
}

/**
 * JSON form of tensor data: 64-bit integers become numbers (exact up to 2^53); non-finite floats
 * become the strings "NaN", "Infinity" and "-Infinity".
 */
export function jsonData(data: TensorData): unknown[] {
  if (Array.isArray(data)) return data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, Number);
  if (data instanceof Float32Array || data instanceof Float64Array) {
    return Array.from(data, (v) => (Number.isFinite(v) ? v : String(v)));
  }
  return Array.from(data as Exclude<TypedArray, BigInt64Array | BigUint64Array>);
}

/**
 * The JSON text of tensor data: exactly `JSON.stringify` of `jsonData(data)` (of booleans for
 * BOOL), written by hand. Answers are small and frequent; building arrays and objects only to
 * stringify them cost more than the model run for small models.
 */
export function jsonDataText(datatype: Datatype, data: TensorData): string {
  const n = data.length;
  if (n === 0) return '[]';
  let s = '[';
  if (Array.isArray(data)) {
    for (let i = 0; i < n; i++) s += (i === 0 ? '' : ',') + JSON.stringify(data[i]);
  } else if (datatype === 'BOOL') {
    const d = data as Uint8Array;
    for (let i = 0; i < n; i++) s += (i === 0 ? '' : ',') + (d[i] !== 0 ? 'true' : 'false');
  } else if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) s += (i === 0 ? '' : ',') + String(Number(data[i]!));
  } else if (data instanceof Float32Array || data instanceof Float64Array) {
    for (let i = 0; i < n; i++) {
      const v = data[i]!;
      // JSON.stringify writes a finite number as String(v) does; non-finite ones travel as strings.
      s += (i === 0 ? '' : ',') + (Number.isFinite(v) ? String(v) : `"${v}"`);
    }
  } else {
    // Integers: join writes each as String(v) does, into one flat string.
    const d = data as Exclude<TypedArray, BigInt64Array | BigUint64Array | Float32Array | Float64Array>;
    return `[${d.join(',')}]`;
  }
  return `${s}]`;
}
