/**
 * A request line as the binary tensor extension: the JSON header with `binary_data_size` in place
 * of each input's `data`, then the tensors' little-endian bytes, and `Inference-Header-Content-Length`.
 * The backend then reads the tensors as bytes instead of parsing numbers out of JSON, which is most
 * of a large request's cost. Only plain numeric inputs whose values all fit their datatype are
 * turned into bytes; a line with anything else (BYTES, FP16, a value out of range, a `data`
 * that is not a flat array) is sent as written, and the backend judges it as it would online.
 */
import { allocTyped, type Datatype } from '../../common/oip/datatypes.js';

/** The datatypes sent as bytes, with the range of values each holds exactly. */
const BINARY: Partial<Record<Datatype, readonly [number, number] | 'float'>> = {
  FP32: 'float',
  FP64: 'float',
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
};

export interface WireBody {
  readonly data: string | Buffer;
  /** The JSON header's length, when `data` carries binary tensors. */
  readonly headerLength: number | undefined;
}

export interface InputDoc {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  parameters?: Record<string, unknown>;
  data?: unknown;
}

export function tensorBytes(input: InputDoc): Buffer | undefined {
  const dt = input.datatype as Datatype;
  const range = typeof input.datatype === 'string' ? BINARY[dt] : undefined;
  const data = input.data;
  if (range === undefined || !Array.isArray(data) || input.parameters?.binary_data_size !== undefined)
    return undefined;
  const out = allocTyped(dt, data.length) as Float32Array;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v !== 'number') return undefined;
    if (range !== 'float' && (!Number.isInteger(v) || v < range[0] || v > range[1])) return undefined;
    out[i] = v;
  }
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** The binary form of a parsed OIP request, or its JSON text when an input cannot be bytes. */
export function wireBody(doc: { inputs: unknown[]; [k: string]: unknown }, text: string): WireBody {
  const parts: Buffer[] = [];
  const inputs: InputDoc[] = [];
  for (const raw of doc.inputs) {
    if (raw === null || typeof raw !== 'object') return { data: text, headerLength: undefined };
    const input = raw as InputDoc;
    const bytes = tensorBytes(input);
    if (bytes === undefined) return { data: text, headerLength: undefined };
    const { data: _data, ...rest } = input;
    inputs.push({ ...rest, parameters: { ...input.parameters, binary_data_size: bytes.length } });
    parts.push(bytes);
  }
  const header = Buffer.from(JSON.stringify({ ...doc, inputs }));
  return { data: Buffer.concat([header, ...parts]), headerLength: header.length };
}
