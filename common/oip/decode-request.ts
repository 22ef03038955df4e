/**
 * Open Inference Protocol (KServe v2) REST requests, decoded: JSON bodies, bodies in the binary
 * tensor data extension, and raw binary bodies. Pure functions over bytes; no I/O, no framework.
 * Every rejection is a CodecError naming the offending field.
 */
import { decodeBinaryTensor, parseHeaderLength } from './binary-data.js';
import { CodecError } from './codec-error.js';
import { DATATYPE_INFO, type Datatype, isDatatype } from './datatypes.js';
import { DEFAULT_MAX_JSON_DEPTH, isObject, parseJson } from './json-scan.js';
import { decodeJsonData } from './json-values.js';
import type { DecodedInput, DecodedRequest, RawInput, RawRequest, RequestedOutput } from './messages.js';
import { checkShape, shapeElements } from './shape.js';

export interface DecodeOptions {
  /** Value of the `Inference-Header-Content-Length` header, if present. */
  headerLength?: string | undefined;
  maxJsonDepth?: number;
  /**
   * What a raw binary body (`Inference-Header-Content-Length: 0`) is decoded as: the model's one
   * input. Without it such a body comes back undecoded, as a RawRequest.
   */
  rawInput?: RawInput | undefined;
}

/** Decodes an inference request body. Throws CodecError. */
export function decodeInferRequest(body: Uint8Array, opts: DecodeOptions = {}): DecodedRequest | RawRequest {
  let jsonBytes = body;
  let binary: Uint8Array | undefined;
  if (opts.headerLength !== undefined) {
    const h = parseHeaderLength(opts.headerLength, body.length);
    if (h === 0) return opts.rawInput === undefined ? { raw: body } : decodeRawRequest(body, opts.rawInput);
    jsonBytes = body.subarray(0, h);
    binary = body.subarray(h);
  }
  const doc = parseJson(jsonBytes, opts.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH);
  return decodeDocument(doc, binary, jsonBytes.length);
}

/**
 * An input as a raw binary body fills it, or undefined when it cannot be: its datatype has no
 * fixed size, it has no dims, or a dim after the first is not fixed (-1).
 */
export function rawInput(
  name: string,
  datatype: Datatype | undefined,
  shape: readonly number[],
): RawInput | undefined {
  const size = datatype === undefined ? 0 : DATATYPE_INFO[datatype].size;
  if (datatype === undefined || size === 0 || shape.length === 0) return undefined;
  const rowShape = shape.slice(1);
  let rowBytes = size;
  for (const d of rowShape) {
    if (d < 0) return undefined;
    rowBytes *= d;
  }
  return Object.freeze({ name, datatype, rowShape, rowBytes });
}

/**
 * A raw binary body as the request of one input, `input`, whose dim 0 is the number of whole rows
 * the body holds. The bytes are copied once, into the tensor; nothing is written as JSON.
 */
export function decodeRawRequest(body: Uint8Array, input: RawInput): DecodedRequest {
  const { name, datatype, rowShape, rowBytes } = input;
  if (rowBytes === 0 || body.length % rowBytes !== 0) {
    throw new CodecError(
      'DATA_LENGTH_MISMATCH',
      `raw body of ${body.length} bytes is not a whole number of ${datatype} rows of shape [${rowShape.join(',')}]`,
      'body',
    );
  }
  const shape = [body.length / rowBytes, ...rowShape];
  const count = shapeElements(shape) ?? checkShape(shape, datatype, 'inputs[0].shape');
  const parameters = { binary_data_size: body.length };
  const data = decodeBinaryTensor(body.length, datatype, count, 'inputs[0]', body, { offset: 0 });
  return {
    id: undefined,
    parameters: undefined,
    inputs: [{ name, datatype, shape, data, parameters }],
    outputs: undefined,
    binaryOutput: false,
  };
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

export function decodeInput(
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
