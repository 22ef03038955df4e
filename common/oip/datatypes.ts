/** Open Inference Protocol datatypes and their onnxruntime counterparts. */

export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
  'BF16',
] as const;

export type Datatype = (typeof DATATYPES)[number];

/** onnxruntime-node tensor type names. */
export type OrtType =
  | 'bool'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'float16'
  | 'float32'
  | 'float64'
  | 'string';

export type TypedArray =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

/** Element data as held in memory: a typed array, or strings/byte strings for BYTES. */
export type TensorData = TypedArray | string[];

interface DatatypeInfo {
  /** Bytes per element; 0 for BYTES (variable length). */
  readonly size: number;
  /** onnxruntime type, or undefined where onnxruntime-node has no such tensor type. */
  readonly ort: OrtType | undefined;
  /** Whether the protocol allows the type in JSON `data`. */
  readonly json: boolean;
}

export const DATATYPE_INFO: Readonly<Record<Datatype, DatatypeInfo>> = {
  BOOL: { size: 1, ort: 'bool', json: true },
  UINT8: { size: 1, ort: 'uint8', json: true },
  UINT16: { size: 2, ort: 'uint16', json: true },
  UINT32: { size: 4, ort: 'uint32', json: true },
  UINT64: { size: 8, ort: 'uint64', json: true },
  INT8: { size: 1, ort: 'int8', json: true },
  INT16: { size: 2, ort: 'int16', json: true },
  INT32: { size: 4, ort: 'int32', json: true },
  INT64: { size: 8, ort: 'int64', json: true },
  FP16: { size: 2, ort: 'float16', json: false },
  FP32: { size: 4, ort: 'float32', json: true },
  FP64: { size: 8, ort: 'float64', json: true },
  BYTES: { size: 0, ort: 'string', json: true },
  BF16: { size: 2, ort: undefined, json: false },
};

const FROM_ORT: Readonly<Record<string, Datatype>> = Object.fromEntries(
  (Object.entries(DATATYPE_INFO) as [Datatype, DatatypeInfo][])
    .filter(([, info]) => info.ort !== undefined)
    .map(([dt, info]) => [info.ort as string, dt]),
);

export function isDatatype(s: unknown): s is Datatype {
  return typeof s === 'string' && Object.hasOwn(DATATYPE_INFO, s);
}

/** The protocol datatype of an onnxruntime type name, or undefined if the protocol has none. */
export function datatypeFromOrt(ort: string): Datatype | undefined {
  return FROM_ORT[ort];
}

type TypedArrayConstructor = {
  new (n: number): TypedArray;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): TypedArray;
};

/** The typed array that holds each fixed-size datatype (FP16 and BF16 as raw 16-bit words). */
const TYPED_ARRAY: Readonly<Record<Exclude<Datatype, 'BYTES'>, TypedArrayConstructor>> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
  BF16: Uint16Array,
};

function typedArrayOf(dt: Datatype): TypedArrayConstructor {
  if (dt === 'BYTES') throw new Error('BYTES has no fixed-size typed array');
  return TYPED_ARRAY[dt];
}

/** Allocates a typed array for `n` elements of a fixed-size datatype. */
export function allocTyped(dt: Datatype, n: number): TypedArray {
  return new (typedArrayOf(dt))(n);
}

/** Integer range of JSON-representable integer datatypes (64-bit ones are limited to safe integers). */
export const INT_RANGE: Partial<Readonly<Record<Datatype, readonly [number, number]>>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** Bytes of one slab of `allocTypedSmall`, and the largest array it serves from a slab. */
export const SMALL_SLAB_BYTES = 16384;
export const SMALL_MAX_BYTES = 2048;
let slab = new ArrayBuffer(SMALL_SLAB_BYTES);
let slabUsed = 0;

/**
 * Like `allocTyped`, zero-filled, but an array of at most SMALL_MAX_BYTES is a view into a shared
 * slab (8-byte aligned), as Node's Buffer pool does: V8 gives every array of more than 64 bytes a
 * backing store of its own, which costs about a microsecond, far more than a small model's data.
 * A view does not own its buffer, so it must not be transferred to another thread (a
 * structured clone would copy the whole slab): for data that stays on this thread.
 */
export function allocTypedSmall(dt: Datatype, n: number): TypedArray {
  const bytes = n * DATATYPE_INFO[dt].size;
  if (bytes === 0 || bytes > SMALL_MAX_BYTES) return allocTyped(dt, n);
  if (slabUsed + bytes > SMALL_SLAB_BYTES) {
    slab = new ArrayBuffer(SMALL_SLAB_BYTES);
    slabUsed = 0;
  }
  const view = new (typedArrayOf(dt))(slab, slabUsed, n);
  slabUsed = (slabUsed + bytes + 7) & ~7;
  return view;
}
