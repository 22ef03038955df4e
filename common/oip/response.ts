/**
 * Open Inference Protocol (KServe v2) REST responses: encoded by the backend (JSON, and the
 * binary tensor data extension), decoded by clients and tests.
 */
import { parseHeaderLength, tensorBytes } from './binary-data.js';
import { CodecError } from './codec-error.js';
import { decodeInput } from './decode-request.js';
import { DEFAULT_MAX_JSON_DEPTH, isObject, parseJson } from './json-scan.js';
import { jsonDataText } from './json-values.js';
import type { EncodedResponse, InferResponse } from './messages.js';

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

/**
 * Encodes an answer: the JSON text written by hand (the same bytes as `JSON.stringify` of
 * `{model_name, model_version?, id?, parameters?, outputs: [{name, datatype, shape, data |
 * parameters: {binary_data_size}}]}`), then the binary outputs, if any, in order.
 */
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
