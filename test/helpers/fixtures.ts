// Small ONNX fixture models for datatypes the sample models do not use, written with the same
// encoder as models/build.ts.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto, { type onnx as Onnx } from 'onnx-proto';
import { CONFIG_FILE, MODEL_FILE } from '../../models/build.js';
import { encodeModel, float32Initializer, node } from '../../models/onnx.js';
import { type ConfigYaml, renderConfigYaml } from './backend.js';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;

/** Protocol datatype -> ONNX element type, for every type onnxruntime-node can feed and fetch. */
export const ONNX_ELEM: Readonly<Record<string, number>> = {
  BOOL: T.BOOL,
  UINT8: T.UINT8,
  INT8: T.INT8,
  UINT16: T.UINT16,
  INT16: T.INT16,
  UINT32: T.UINT32,
  INT32: T.INT32,
  UINT64: T.UINT64,
  INT64: T.INT64,
  FP16: T.FLOAT16,
  FP32: T.FLOAT,
  FP64: T.DOUBLE,
  BYTES: T.STRING,
};

export function valueInfo(
  name: string,
  elemType: number,
  shape: readonly (number | string)[],
): Onnx.IValueInfoProto {
  const dim = shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

/**
 * An Identity model: one `IN_<suffix>` -> `OUT_<suffix>` pair per entry, each [batch, ...dims].
 */
export function identityModel(
  name: string,
  io: readonly { suffix: string; datatype: string; dims: number[] }[],
): Uint8Array {
  return encodeModel(
    {
      name,
      nodes: io.map((t) => node('Identity', [`IN_${t.suffix}`], [`OUT_${t.suffix}`], `identity_${t.suffix}`)),
      inputs: io.map((t) => valueInfo(`IN_${t.suffix}`, ONNX_ELEM[t.datatype]!, ['batch', ...t.dims])),
      outputs: io.map((t) => valueInfo(`OUT_${t.suffix}`, ONNX_ELEM[t.datatype]!, ['batch', ...t.dims])),
    },
    1,
    `${name}: identity fixture`,
  );
}

/** Entries of `lookupModel`'s table: value i is 1.5 * i. */
export const LOOKUP_SIZE = 10;

/**
 * A lookup model whose failure depends on the data, not the shape: INT64 `index` [batch, 1] ->
 * FP32 `value` [batch, 1] = table[index], a Gather over a table of LOOKUP_SIZE entries. An index
 * outside [-10, 9] makes onnxruntime refuse the run.
 */
export function lookupModel(): Uint8Array {
  return encodeModel(
    {
      name: 'lookup',
      nodes: [node('Gather', ['table', 'index'], ['value'], 'lookup')],
      inputs: [valueInfo('index', T.INT64, ['batch', 1])],
      outputs: [valueInfo('value', T.FLOAT, ['batch', 1])],
      initializers: [
        float32Initializer(
          'table',
          [LOOKUP_SIZE],
          Float32Array.from({ length: LOOKUP_SIZE }, (_, i) => 1.5 * i),
        ),
      ],
    },
    1,
    'lookup: Gather fixture whose failure depends on the data',
  );
}

/** Writes `<root>/<name>/1/model.onnx` and its config.yaml. */
export async function writeModel(
  root: string,
  name: string,
  bytes: Uint8Array,
  config: ConfigYaml = {},
): Promise<void> {
  await mkdir(path.join(root, name, '1'), { recursive: true });
  await writeFile(path.join(root, name, '1', MODEL_FILE), bytes);
  await writeFile(path.join(root, name, CONFIG_FILE), renderConfigYaml(config));
}
