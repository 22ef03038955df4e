/**
 * Open Inference Protocol (KServe v2) REST codec: inference requests and responses in JSON and in
 * the binary tensor data extension. Pure functions over bytes; no I/O, no framework.
 *
 * Every rejection is a CodecError naming the offending field (`inputs[1].shape[0]`); each tier
 * maps its `reason` onto its own error catalogue.
 */
import { jsonDepthExceeds } from './json-scan.js';
import {
  allocTyped,
  DATATYPE_INFO,
  type Datatype,
  INT_RANGE,
  isDatatype,
  type TensorData,
  type TypedArray,
} from './datatypes.js';

export type CodecReason =
  | 'MALFORMED_JSON'
  | 'NESTING_TOO_DEEP'
  | 'INVALID_REQUEST'
  | 'UNSUPPORTED_DATATYPE'
  | 'INVALID_SHAPE'
  | 'SHAPE_OVERFLOW'
  | 'DATA_LENGTH_MISMATCH'
  | 'INVALID_DATA'
  | 'INVALID_BINARY';

export class CodecError extends Error {
  constructor(
    readonly reason: CodecReason,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'CodecError';
  }
}

export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorData;
}

export interface DecodedInput extends Tensor {
  parameters: Record<string, unknown> | undefined;
}

export interface RequestedOutput {
  name: string;
  /** Whether the client asked for this output in binary form. */
  binary: boolean;
}

export interface DecodedRequest {
  id: string | undefined;
  parameters: Record<string, unknown> | undefined;
  inputs: DecodedInput[];
  /** Outputs the client asked for; undefined means all of them. */
  outputs: RequestedOutput[] | undefined;
  /** `parameters.binary_data_output`: the default form of outputs not listed in `outputs`. */
  binaryOutput: boolean;
}

/** A request whose `Inference-Header-Content-Length` is 0: the body is one raw tensor. */
export interface RawRequest {
  raw: Uint8Array;
}

export const DEFAULT_MAX_JSON_DEPTH = 64;
const MAX_RANK = 32;
const INT64_MAX = (1n << 63n) - 1n;

export interface DecodeOptions {
  /** Value of the `Inference-Header-Content-Length` header, if present. */
  headerLength?: string | undefined;
  maxJsonDepth?: number;
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Decodes an inference request body. Throws CodecError. */
export function decodeInferRequest(body: Uint8Array, opts: DecodeOptions = {}): DecodedRequest | RawRequest {
  let jsonBytes = body;
  let binary: Uint8Array | undefined;
  if (opts.headerLength !== undefined) {
    const h = parseHeaderLength(opts.headerLength, body.length);
    if (h === 0) return { raw: body };
    jsonBytes = body.subarray(0, h);
    binary = body.subarray(h);
  }
  const doc = parseJson(jsonBytes, opts.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH);
  return decodeDocument(doc, binary, jsonBytes.length);
}

function parseHeaderLength(value: string, bodyLength: number): number {
  if (!/^\d{1,15}$/.test(value)) {
    throw new CodecError(
      'INVALID_BINARY',
      `Inference-Header-Content-Length '${value.slice(0, 32)}' is not a non-negative integer`,
      'Inference-Header-Content-Length',
    );
  }
  const h = Number(value);
  if (h > bodyLength) {
    throw new CodecError(
      'INVALID_BINARY',
      `Inference-Header-Content-Length ${h} is larger than the body (${bodyLength} bytes)`,
      'Inference-Header-Content-Length',
    );
  }
  return h;
}

/** JSON.parse behind a nesting-depth check on the bytes. Throws CodecError. */
export function parseJson(bytes: Uint8Array, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): unknown {
  if (jsonDepthExceeds(bytes, maxDepth)) {
    throw new CodecError('NESTING_TOO_DEEP', `JSON body is nested more than ${maxDepth} levels deep`);
  }
  let text: string;
  try {
    text = textDecoder.decode(bytes);
  } catch {
    throw new CodecError('MALFORMED_JSON', 'body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CodecError('MALFORMED_JSON', `body is not valid JSON: ${(e as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalParameters(v: unknown, field: string): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw new CodecError('INVALID_REQUEST', `${field} must be an object`, field);
  return v;
}

function decodeDocument(doc: unknown, binary: Uint8Array | undefined, jsonLength: number): DecodedRequest {
  if (!isObject(doc)) throw new CodecError('INVALID_REQUEST', 'request body must be a JSON object');
  const id = doc.id;
  if (id !== undefined && typeof id !== 'string') {
    throw new CodecError('INVALID_REQUEST', 'id must be a string', 'id');
  }
  const parameters = optionalParameters(doc.parameters, 'parameters');
  const rawInputs = doc.inputs;
  if (!Array.isArray(rawInputs) || rawInputs.length === 0) {
    throw new CodecError('INVALID_REQUEST', 'inputs must be a non-empty array', 'inputs');
  }
  const cursor = { offset: 0 };
  // Names seen so far: compared one by one for the few inputs models have, a Set past that.
  const seen = rawInputs.length > 8 ? new Set<string>() : undefined;
  const inputs: DecodedInput[] = [];
  for (let i = 0; i < rawInputs.length; i++) {
    const input = decodeInput(rawInputs[i], `inputs[${i}]`, binary, cursor, jsonLength);
    let twice = false;
    if (seen === undefined) {
      for (let j = 0; j < i; j++) if (inputs[j]!.name === input.name) twice = true;
    } else {
      twice = seen.has(input.name);
      seen.add(input.name);
    }
    if (twice) {
      throw new CodecError('INVALID_REQUEST', `input '${input.name}' is given twice`, `inputs[${i}].name`);
    }
    inputs.push(input);
  }
  const binaryLength = binary?.length ?? 0;
  if (cursor.offset !== binaryLength) {
    throw new CodecError(
      'INVALID_BINARY',
      `binary_data_size of the inputs adds up to ${cursor.offset} bytes but ${binaryLength} bytes follow the JSON header`,
      'inputs',
    );
  }
  const binaryOutput = parameters?.binary_data_output ?? false;
  if (typeof binaryOutput !== 'boolean') {
    throw new CodecError(
      'INVALID_REQUEST',
      'parameters.binary_data_output must be a boolean',
      'parameters.binary_data_output',
    );
  }
  return {
    id,
    parameters,
    inputs,
    outputs: decodeRequestedOutputs(doc.outputs, binaryOutput),
    binaryOutput,
  };
}

function decodeRequestedOutputs(v: unknown, binaryDefault: boolean): RequestedOutput[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new CodecError('INVALID_REQUEST', 'outputs must be an array', 'outputs');
  // An empty list names no output: every output, as without the field (Triton and KServe agree).
  if (v.length === 0) return undefined;
  const out: RequestedOutput[] = [];
  for (let i = 0; i < v.length; i++) {
    const o: unknown = v[i];
    const field = `outputs[${i}]`;
    if (!isObject(o) || typeof o.name !== 'string') {
      throw new CodecError('INVALID_REQUEST', `${field} must be an object with a string name`, field);
    }
    // Asking twice for one output would answer it twice; a client means something else.
    for (let j = 0; j < out.length; j++) {
      if (out[j]!.name === o.name) {
        throw new CodecError(
          'INVALID_REQUEST',
          `output '${o.name.slice(0, 64)}' is asked for twice (outputs[${j}] and ${field})`,
          `${field}.name`,
        );
      }
    }
    const params = optionalParameters(o.parameters, `${field}.parameters`);
    const flag = params?.binary_data;
    if (flag !== undefined && typeof flag !== 'boolean') {
      throw new CodecError(
        'INVALID_REQUEST',
        `${field}.parameters.binary_data must be a boolean`,
        `${field}.parameters.binary_data`,
      );
    }
    out.push({ name: o.name, binary: flag ?? binaryDefault });
  }
  return out;
}

/**
 * The element count of a shape that checkShape would accept without a doubt: an array of at most
 * MAX_RANK non-negative integers whose product stays a safe integer (so no byte size of any
 * datatype can pass 2^63 either). Undefined otherwise: checkShape then decides, and names the
 * fault. Plain numbers; checkShape's BigInt arithmetic cost more than the rest of a small request.
 */
function shapeElements(shape: unknown): number | undefined {
  if (!Array.isArray(shape) || shape.length > MAX_RANK) return undefined;
  let count = 1;
  for (let d = 0; d < shape.length; d++) {
    const dim: unknown = shape[d];
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 0) return undefined;
    count *= dim;
    if (count > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return count;
}

/**
 * Validates a shape and returns its element count. Rejects negative and non-integer dims, and
 * shapes whose element count or byte size does not fit in 64 bits, before anything is allocated.
 */
export function checkShape(shape: unknown, datatype: Datatype, field: string): number {
  if (!Array.isArray(shape)) throw new CodecError('INVALID_SHAPE', `${field} must be an array`, field);
  if (shape.length > MAX_RANK) {
    throw new CodecError('INVALID_SHAPE', `${field} has rank ${shape.length}, more than ${MAX_RANK}`, field);
  }
  let count = 1n;
  for (let d = 0; d < shape.length; d++) {
    const dim = shape[d];
    if (typeof dim !== 'number' || !Number.isInteger(dim)) {
      throw new CodecError('INVALID_SHAPE', `${field}[${d}] must be an integer`, `${field}[${d}]`);
    }
    if (dim < 0) {
      throw new CodecError(
        'INVALID_SHAPE',
        `${field}[${d}] is ${dim}; dims must not be negative`,
        `${field}[${d}]`,
      );
    }
    count *= BigInt(dim);
  }
  const bytes = count * BigInt(Math.max(1, DATATYPE_INFO[datatype].size));
  if (count > INT64_MAX || bytes > INT64_MAX) {
    throw new CodecError(
      'SHAPE_OVERFLOW',
      `${field} [${shape.join(',')}] has ${bigCount(count)} elements of ${datatype}, which overflows 64 bits`,
      field,
    );
  }
  if (count > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CodecError('SHAPE_OVERFLOW', `${field} [${shape.join(',')}] has too many elements`, field);
  }
  return Number(count);
}

/** An element count for a message: exact while short, else in scientific notation. */
function bigCount(n: bigint): string {
  const text = n.toString();
  return text.length <= 24 ? text : `about ${text[0]}.${text.slice(1, 3)}e+${text.length - 1}`;
}

function decodeInput(
  raw: unknown,
  field: string,
  binary: Uint8Array | undefined,
  cursor: { offset: number },
  jsonLength: number,
): DecodedInput {
  if (!isObject(raw)) throw new CodecError('INVALID_REQUEST', `${field} must be an object`, field);
  const { name, datatype } = raw;
  if (typeof name !== 'string' || name.length === 0) {
    throw new CodecError('INVALID_REQUEST', `${field}.name must be a non-empty string`, `${field}.name`);
  }
  if (!isDatatype(datatype)) {
    throw new CodecError(
      'UNSUPPORTED_DATATYPE',
      `${field}.datatype '${String(datatype).slice(0, 32)}' is not an Open Inference Protocol datatype`,
      `${field}.datatype`,
    );
  }
  const count = shapeElements(raw.shape) ?? checkShape(raw.shape, datatype, `${field}.shape`);
  const shape = raw.shape as number[];
  const parameters =
    raw.parameters === undefined ? undefined : optionalParameters(raw.parameters, `${field}.parameters`);
  const binarySize = parameters?.binary_data_size;
  if (binarySize !== undefined) {
    if (raw.data !== undefined) {
      throw new CodecError(
        'INVALID_REQUEST',
        `${field} has both data and parameters.binary_data_size`,
        `${field}.data`,
      );
    }
    const data = decodeBinaryTensor(binarySize, datatype, count, field, binary, cursor);
    return { name, datatype, shape, data, parameters };
  }
  if (!DATATYPE_INFO[datatype].json) {
    throw new CodecError(
      'UNSUPPORTED_DATATYPE',
      `${field}: ${datatype} has no JSON form; send it with the binary tensor extension`,
      `${field}.datatype`,
    );
  }
  if (raw.data === undefined) {
    throw new CodecError('INVALID_REQUEST', `${field}.data is missing`, `${field}.data`);
  }
  // Each JSON element takes at least one byte, so a shape that needs more elements than the body
  // has bytes cannot match its data: reject it before allocating.
  if (count > jsonLength) {
    throw new CodecError(
      'DATA_LENGTH_MISMATCH',
      `${field}.shape [${shape.join(',')}] needs ${count} elements, more than the request carries`,
      `${field}.data`,
    );
  }
  const data = decodeJsonData(raw.data, datatype, count, shape, field, name);
  return { name, datatype, shape, data, parameters };
}

function decodeBinaryTensor(
  sizeParam: unknown,
  datatype: Datatype,
  count: number,
  field: string,
  binary: Uint8Array | undefined,
  cursor: { offset: number },
): TensorData {
  const pfield = `${field}.parameters.binary_data_size`;
  if (typeof sizeParam !== 'number' || !Number.isSafeInteger(sizeParam) || sizeParam < 0) {
    throw new CodecError('INVALID_BINARY', `${pfield} must be a non-negative integer`, pfield);
  }
  if (binary === undefined) {
    throw new CodecError(
      'INVALID_BINARY',
      `${field} uses binary_data_size but the request has no Inference-Header-Content-Length header`,
      pfield,
    );
  }
  const start = cursor.offset;
  const end = start + sizeParam;
  if (end > binary.length) {
    throw new CodecError(
      'INVALID_BINARY',
      `${pfield} is ${sizeParam} but only ${binary.length - start} bytes of binary data remain`,
      pfield,
    );
  }
  cursor.offset = end;
  const bytes = binary.subarray(start, end);
  if (datatype === 'BYTES') return decodeBinaryBytes(bytes, count, field);
  const expected = count * DATATYPE_INFO[datatype].size;
  if (sizeParam !== expected) {
    throw new CodecError(
      'DATA_LENGTH_MISMATCH',
      `${pfield} is ${sizeParam} bytes but shape and ${datatype} need ${expected}`,
      pfield,
    );
  }
  const out = allocTyped(datatype, count);
  // Copy: the slice may not be aligned for the element size. Wire order is little-endian, as is
  // every platform onnxruntime-node ships for.
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
  if (datatype === 'BOOL') checkBoolBytes(out as Uint8Array, field);
  return out;
}

function checkBoolBytes(data: Uint8Array, field: string): void {
  for (let i = 0; i < data.length; i++) {
    if (data[i]! > 1)
      throw new CodecError('INVALID_DATA', `${field}: BOOL byte ${i} is neither 0 nor 1`, field);
  }
}

/** BYTES in binary form: each element is a 4-byte little-endian length, then the bytes. */
function decodeBinaryBytes(bytes: Uint8Array, count: number, field: string): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  let p = 0;
  while (p < bytes.length) {
    if (p + 4 > bytes.length) {
      throw new CodecError('INVALID_BINARY', `${field}: truncated BYTES length prefix at byte ${p}`, field);
    }
    const len = view.getUint32(p, true);
    p += 4;
    if (p + len > bytes.length) {
      throw new CodecError(
        'INVALID_BINARY',
        `${field}: BYTES element ${out.length} runs past its data`,
        field,
      );
    }
    if (out.length === count) break;
    try {
      out.push(textDecoder.decode(bytes.subarray(p, p + len)));
    } catch {
      // BYTES are held as text (onnxruntime string tensors); bytes that are not UTF-8 would change.
      throw new CodecError(
        'INVALID_DATA',
        `${field}: BYTES element ${out.length} is not valid UTF-8`,
        `${field}.data`,
      );
    }
    p += len;
  }
  if (out.length !== count || p !== bytes.length) {
    throw new CodecError(
      'DATA_LENGTH_MISMATCH',
      `${field}: binary data holds a different number of BYTES elements than the shape's ${count}`,
      `${field}.data`,
    );
  }
  return out;
}

/**
 * Flattens row-major JSON `data` into a typed array (or strings for BYTES), checking every
 * element. `data` is flat, or nested: an array of arrays at depth d must hold exactly `shape[d]`
 * of them (never deeper than the rank), and an array of values at depth d exactly the element
 * count of `shape[d..]`. So `[[1,2],[3,4]]` and `[1,2,3,4]` are [2,2], `[[1,2,3],[4]]` is not.
 */
function decodeJsonData(
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

// ---------------------------------------------------------------------------------------------
// Responses

export interface ResponseOutput extends Tensor {
  binary: boolean;
}

export interface InferResponse {
  model_name: string;
  model_version?: string | undefined;
  id?: string | undefined;
  parameters?: Record<string, unknown> | undefined;
  outputs: ResponseOutput[];
}

export interface EncodedResponse {
  /** A string when the answer is pure JSON: node writes headers and body in one syscall then. */
  body: Buffer | string;
  /** Set when binary outputs follow the JSON header (the `Inference-Header-Content-Length`). */
  headerLength: number | undefined;
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

/** Raw little-endian bytes of a tensor, as the binary extension carries them. */
export function tensorBytes(data: TensorData): Uint8Array {
  if (!Array.isArray(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const parts = data.map((s) => Buffer.from(s, 'utf8'));
  const out = Buffer.allocUnsafe(parts.reduce((sum, p) => sum + 4 + p.length, 0));
  let p = 0;
  for (const part of parts) {
    out.writeUInt32LE(part.length, p);
    part.copy(out, p + 4);
    p += 4 + part.length;
  }
  return out;
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

/**
 * Encodes an answer: the JSON text written by hand (the same bytes as `JSON.stringify` of
 * `{model_name, model_version?, id?, parameters?, outputs: [{name, datatype, shape, data |
 * parameters: {binary_data_size}}]}`), then the binary outputs, if any, in order.
 */
/**
 * A JSON string literal: as JSON.stringify writes it, which only the plain printable ASCII of
 * names and versions needs no call for.
 */
function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(s);
  }
  return `"${s}"`;
}

export function encodeInferResponse(resp: InferResponse): EncodedResponse {
  let text = `{"model_name":${jsonString(resp.model_name)}`;
  if (resp.model_version !== undefined) text += `,"model_version":${jsonString(resp.model_version)}`;
  if (resp.id !== undefined) text += `,"id":${jsonString(resp.id)}`;
  if (resp.parameters !== undefined) text += `,"parameters":${JSON.stringify(resp.parameters)}`;
  text += ',"outputs":[';
  let blobs: Uint8Array[] | undefined;
  const outputs = resp.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i]!;
    if (i > 0) text += ',';
    // Dims are integers, written as JSON writes them; datatypes need no escaping.
    text += `{"name":${jsonString(o.name)},"datatype":"${o.datatype}","shape":[`;
    const shape = o.shape;
    for (let d = 0; d < shape.length; d++) text += d === 0 ? `${shape[d]!}` : `,${shape[d]!}`;
    text += ']';
    if (o.binary) {
      const bytes = tensorBytes(o.data);
      if (blobs === undefined) blobs = [bytes];
      else blobs.push(bytes);
      text += `,"parameters":{"binary_data_size":${bytes.length}}}`;
    } else {
      text += `,"data":${jsonDataText(o.datatype, o.data)}}`;
    }
  }
  text += ']}';
  if (blobs === undefined) return { body: text, headerLength: undefined };
  const json = Buffer.from(text, 'utf8');
  return { body: Buffer.concat([json, ...blobs]), headerLength: json.length };
}

/** Decodes a response body (used by clients, tests and the gateway's shadow comparison). */
export function decodeInferResponse(body: Uint8Array, headerLength?: string): InferResponse {
  const h = headerLength === undefined ? body.length : parseHeaderLength(headerLength, body.length);
  const doc = parseJson(body.subarray(0, h), DEFAULT_MAX_JSON_DEPTH);
  if (!isObject(doc) || !Array.isArray(doc.outputs) || typeof doc.model_name !== 'string') {
    throw new CodecError('INVALID_REQUEST', 'response is not an inference response');
  }
  const tail = body.subarray(h);
  const cursor = { offset: 0 };
  const outputs = doc.outputs.map((o: unknown, i: number) => {
    const t = decodeInput(o, `outputs[${i}]`, tail, cursor, h);
    const binary = t.parameters?.binary_data_size !== undefined;
    return { name: t.name, datatype: t.datatype, shape: t.shape, data: t.data, binary };
  });
  if (cursor.offset !== tail.length) {
    throw new CodecError(
      'INVALID_BINARY',
      `binary_data_size of the outputs adds up to ${cursor.offset} bytes but ${tail.length} bytes follow the JSON header`,
      'outputs',
    );
  }
  return {
    model_name: doc.model_name,
    model_version: typeof doc.model_version === 'string' ? doc.model_version : undefined,
    id: typeof doc.id === 'string' ? doc.id : undefined,
    parameters: isObject(doc.parameters) ? doc.parameters : undefined,
    outputs,
  };
}
