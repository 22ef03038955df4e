/**
 * Input validation: a decoded request checked against the model it names (input names and count,
 * datatypes, rank, fixed dims, one batch size across inputs, the requested outputs), and made
 * ready for the batcher.
 */
import { ApiError } from '../common/errors.js';
import { DATATYPE_INFO } from '../common/oip/datatypes.js';
import type { DecodedRequest, RequestedOutput, Tensor } from '../common/oip/messages.js';
import { BE_ERRORS } from './errors.js';
import type { TensorSpec } from './tensor-spec.js';

/** What validation reads of a model. */
export interface ModelSignature {
  readonly name: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Effective max batch size: 0 when batching is off. */
  readonly maxBatchSize: number;
}

/** A validated request, ready for the batcher: inputs in the model's order. */
export interface PreparedRequest {
  inputs: Tensor[];
  rows: number;
  key: string;
}

/**
 * Checks a decoded request against the model: input names and count, datatypes, rank, fixed
 * dims, one batch size across inputs, and the requested outputs.
 */
export function validateRequest(model: ModelSignature, req: DecodedRequest): PreparedRequest {
  const given = req.inputs;
  // Unknown names first, in request order (the codec has already refused duplicates).
  for (let i = 0; i < given.length; i++) {
    const name = given[i]!.name;
    if (specIndex(model.inputs, name) === -1) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_UNKNOWN_INPUT,
        `model '${model.name}' has no input '${name}' (inputs: ${model.inputs.map((s) => s.name).join(', ')})`,
        { field: `inputs[${i}].name` },
      );
    }
  }
  let rows = -1;
  let key = '';
  const inputs: Tensor[] = [];
  for (let j = 0; j < model.inputs.length; j++) {
    const spec = model.inputs[j]!;
    // Clients usually send inputs in the model's order.
    let index = given[j]?.name === spec.name ? j : -1;
    if (index === -1) {
      for (let i = 0; i < given.length; i++) {
        if (given[i]!.name === spec.name) {
          index = i;
          break;
        }
      }
    }
    if (index === -1) {
      throw new ApiError(BE_ERRORS.BE_ERR_MISSING_INPUT, `model '${model.name}' needs input '${spec.name}'`, {
        field: 'inputs',
      });
    }
    const input = given[index]!;
    const field = `inputs[${index}]`;
    if (spec.datatype === undefined || DATATYPE_INFO[spec.datatype].ort === undefined) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_UNSUPPORTED_DATATYPE,
        `input '${spec.name}' has ONNX type '${spec.ortType}', which this server cannot feed`,
        { field: `${field}.datatype` },
      );
    }
    if (input.datatype !== spec.datatype) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_DATATYPE_MISMATCH,
        `input '${spec.name}' is ${spec.datatype}, not ${input.datatype}`,
        { field: `${field}.datatype` },
      );
    }
    checkDims(spec, input.shape, index);
    if (input.datatype === 'BYTES') checkBytesElements(input.data as string[], `${field}.data`);
    if (model.maxBatchSize > 0) {
      const n = input.shape[0]!;
      if (rows !== -1 && n !== rows) {
        throw new ApiError(
          BE_ERRORS.BE_ERR_SHAPE_MISMATCH,
          `input '${spec.name}' has batch size ${n} but an earlier input has ${rows}`,
          { field: `${field}.shape[0]` },
        );
      }
      rows = n;
      // The batching key: every input's dims but the first, 'x'-joined, '|' between inputs.
      if (j > 0) key += '|';
      for (let d = 1; d < input.shape.length; d++)
        key += d === 1 ? `${input.shape[d]}` : `x${input.shape[d]}`;
    }
    inputs.push({ name: spec.name, datatype: input.datatype, shape: input.shape, data: input.data });
  }
  if (model.maxBatchSize > 0 && rows > model.maxBatchSize) {
    throw new ApiError(
      BE_ERRORS.BE_ERR_BATCH_TOO_LARGE,
      `batch size ${rows} is larger than max_batch_size ${model.maxBatchSize} of model '${model.name}'`,
      { field: 'inputs[0].shape[0]' },
    );
  }
  checkOutputs(model, req.outputs, req.binaryOutput);
  // Without batching, rows only feed the batch-size histogram: dim 0 of the first input.
  if (rows === -1) rows = inputs[0]?.shape[0] ?? 1;
  return { inputs, rows, key };
}

function specIndex(specs: readonly TensorSpec[], name: string): number {
  for (let i = 0; i < specs.length; i++) if (specs[i]!.name === name) return i;
  return -1;
}

function checkDims(spec: TensorSpec, shape: number[], index: number): void {
  if (spec.shape.length !== shape.length) {
    throw new ApiError(
      BE_ERRORS.BE_ERR_SHAPE_MISMATCH,
      `input '${spec.name}' has rank ${spec.shape.length} [${spec.shape.join(',')}], not ${shape.length} [${shape.join(',')}]`,
      { field: `inputs[${index}].shape` },
    );
  }
  for (let d = 0; d < shape.length; d++) {
    const want = spec.shape[d]!;
    if (want !== -1 && want !== shape[d]) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_SHAPE_MISMATCH,
        `input '${spec.name}' dim ${d} must be ${want}, not ${shape[d]} (model shape [${spec.shape.join(',')}])`,
        { field: `inputs[${index}].shape[${d}]` },
      );
    }
  }
}

function checkOutputs(
  model: ModelSignature,
  requested: RequestedOutput[] | undefined,
  binaryDefault: boolean,
): void {
  if (requested === undefined) {
    // Every output, in the default form.
    if (binaryDefault) return;
    for (const spec of model.outputs) {
      if (spec.datatype === undefined || !DATATYPE_INFO[spec.datatype].json) {
        throw noJsonForm(spec, 'parameters.binary_data_output');
      }
    }
    return;
  }
  for (let i = 0; i < requested.length; i++) {
    const o = requested[i]!;
    const index = specIndex(model.outputs, o.name);
    if (index === -1) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_UNKNOWN_OUTPUT,
        `model '${model.name}' has no output '${o.name}' (outputs: ${model.outputs.map((s) => s.name).join(', ')})`,
        { field: `outputs[${i}].name` },
      );
    }
    const spec = model.outputs[index]!;
    if (!o.binary && (spec.datatype === undefined || !DATATYPE_INFO[spec.datatype].json)) {
      throw noJsonForm(spec, `outputs[${i}].parameters.binary_data`);
    }
  }
}

function noJsonForm(spec: TensorSpec, field: string): ApiError {
  return new ApiError(
    BE_ERRORS.BE_ERR_UNSUPPORTED_DATATYPE,
    `output '${spec.name}' is ${spec.datatype ?? spec.ortType}, which has no JSON form; ask for it with binary_data`,
    { field },
  );
}

/** onnxruntime-node cuts string tensor elements at the first NUL byte: refuse them, never truncate. */
function checkBytesElements(data: readonly string[], field: string): void {
  for (let i = 0; i < data.length; i++) {
    if (data[i]!.includes('\0')) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_INVALID_DATA,
        `${field}[${i}] holds a NUL byte, which onnxruntime string tensors cannot carry`,
        { field },
      );
    }
  }
}
