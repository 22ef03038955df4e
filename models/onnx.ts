// Minimal helpers to assemble ONNX ModelProto bytes with onnx-proto (protobufjs static code).
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

// onnx-proto is CommonJS that assigns `module.exports = root`, so ESM only sees it as the default export.
const { onnx } = onnxProto;

export const IR_VERSION = 8;
export const OPSET_VERSION = 13;
export const PRODUCER_NAME = 'infergate';

export const ElemType = {
  FLOAT: onnx.TensorProto.DataType.FLOAT,
  INT32: onnx.TensorProto.DataType.INT32,
} as const;
export type ElemType = (typeof ElemType)[keyof typeof ElemType];

/** A fixed size, or a symbolic name for a dynamic dimension. */
export type Dim = number | string;

export function tensorInfo(name: string, elemType: ElemType, shape: readonly Dim[]): Onnx.IValueInfoProto {
  const dim = shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

/** Explicitly little-endian, as ONNX raw_data requires, whatever the host's byte order. */
function float32LeBytes(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return bytes;
}

export function float32Initializer(
  name: string,
  dims: readonly number[],
  values: Float32Array,
): Onnx.ITensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== values.length)
    throw new Error(`${name}: dims ${dims} need ${count} values, got ${values.length}`);
  return { name, dims: [...dims], dataType: ElemType.FLOAT, rawData: float32LeBytes(values) };
}

export function node(opType: string, inputs: string[], outputs: string[], name: string): Onnx.INodeProto {
  return { opType, input: inputs, output: outputs, name };
}

export interface GraphSpec {
  name: string;
  nodes: Onnx.INodeProto[];
  initializers?: Onnx.ITensorProto[];
  inputs: Onnx.IValueInfoProto[];
  outputs: Onnx.IValueInfoProto[];
}

/** Serializes a graph into ModelProto bytes; no timestamps or host data, so output is reproducible. */
export function encodeModel(graph: GraphSpec, modelVersion: number, docString: string): Uint8Array {
  const model: Onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    producerName: PRODUCER_NAME,
    modelVersion,
    docString,
    graph: {
      name: graph.name,
      node: graph.nodes,
      initializer: graph.initializers ?? [],
      input: graph.inputs,
      output: graph.outputs,
    },
  };
  return onnx.ModelProto.encode(model).finish();
}
