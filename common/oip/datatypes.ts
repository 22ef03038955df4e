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

/** Allocates a typed array for `n` elements of a fixed-size datatype. */
export function allocTyped(dt: Datatype, n: number): TypedArray {
  switch (dt) {
    case 'BOOL':
    case 'UINT8':
      return new Uint8Array(n);
    case 'UINT16':
    case 'FP16':
    case 'BF16':
      return new Uint16Array(n);
    case 'UINT32':
      return new Uint32Array(n);
    case 'UINT64':
      return new BigUint64Array(n);
    case 'INT8':
      return new Int8Array(n);
    case 'INT16':
      return new Int16Array(n);
    case 'INT32':
      return new Int32Array(n);
    case 'INT64':
      return new BigInt64Array(n);
    case 'FP32':
      return new Float32Array(n);
    case 'FP64':
      return new Float64Array(n);
    case 'BYTES':
      throw new Error('BYTES has no fixed-size typed array');
  }
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
