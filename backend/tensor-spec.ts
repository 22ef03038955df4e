import type * as ort from 'onnxruntime-node';
import { type Datatype, datatypeFromOrt } from '../common/oip/datatypes.js';

/** A model input or output as the protocol describes it: -1 marks a dynamic dim. */
export interface TensorSpec {
  name: string;
  /** Undefined when the protocol has no datatype for the ONNX type (the model still loads). */
  datatype: Datatype | undefined;
  ortType: string;
  shape: number[];
}

export function specOf(meta: ort.InferenceSession.ValueMetadata): TensorSpec {
  if (!meta.isTensor) return { name: meta.name, datatype: undefined, ortType: 'non-tensor', shape: [] };
  return {
    name: meta.name,
    datatype: datatypeFromOrt(meta.type),
    ortType: meta.type,
    shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
  };
}
