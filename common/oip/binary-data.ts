/**
 * The binary tensor data extension: the `Inference-Header-Content-Length` split, tensors read
 * from the bytes after the JSON header, and tensors written as those bytes.
 */
import { CodecError } from './codec-error.js';
import { allocTyped, DATATYPE_INFO, type Datatype, type TensorData } from './datatypes.js';

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The length of the JSON header that `Inference-Header-Content-Length` gives. */
export function parseHeaderLength(value: string, bodyLength: number): number {
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

/**
 * Reads the `sizeParam` (`binary_data_size`) bytes at `cursor.offset` of `binary` as a tensor of
 * `count` elements, and moves the cursor past them.
 */
export function decodeBinaryTensor(
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
