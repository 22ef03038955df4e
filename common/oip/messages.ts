/**
 * Open Inference Protocol (KServe v2) messages as the codec hands them over: decoded requests,
 * the answers it encodes, and the tensors both carry.
 */
import type { Datatype, TensorData } from './datatypes.js';

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

/**
 * The one input a raw binary body (`Inference-Header-Content-Length: 0`) fills: a fixed-size
 * datatype, every dim fixed but the first, which the byte count gives. Made once per model
 * (`rawInput()`), not per request.
 */
export interface RawInput {
  readonly name: string;
  readonly datatype: Datatype;
  /** The dims after the first. */
  readonly rowShape: readonly number[];
  /** Bytes of one row: 0 when a dim of the row is 0 (no body is a whole number of such rows). */
  readonly rowBytes: number;
}

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
