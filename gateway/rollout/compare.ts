/**
 * Two answers to one request, compared output by output: presence, shape and datatype, the
 * largest absolute and relative difference, and for outputs declared as classifications the
 * top-1 class of each row. Pure: decoded responses in, a comparison out.
 */
import type { TensorData } from '../../common/oip/datatypes.js';
import type { InferResponse, ResponseOutput } from '../../common/oip/messages.js';

export interface OutputComparison {
  readonly name: string;
  /** Set when only one answer has the output. */
  readonly missing: 'primary' | 'shadow' | undefined;
  readonly shapeMatch: boolean;
  readonly datatypeMatch: boolean;
  /** Largest |a - b| over the elements (Infinity when the shapes differ or BYTES differ). */
  readonly maxAbs: number;
  /** Largest |a - b| / max(|a|, |b|) over the elements (0 where both are 0). */
  readonly maxRel: number;
  /** Classification outputs: rows (the last dimension holds the classes) and rows with the same top-1. */
  readonly rows: number;
  readonly top1Agree: number;
}

export interface Comparison {
  readonly outputs: readonly OutputComparison[];
  /** Every output present in both with the same shape and datatype, within tolerance, no top-1 flip. */
  readonly agrees: boolean;
}

export function compareResponses(
  primary: InferResponse,
  shadow: InferResponse,
  classifications: ReadonlySet<string>,
  tolerance: number,
): Comparison {
  const outputs: OutputComparison[] = [];
  const theirs = new Map(shadow.outputs.map((o) => [o.name, o]));
  for (const a of primary.outputs) {
    const b = theirs.get(a.name);
    theirs.delete(a.name);
    outputs.push(
      b === undefined ? missing(a.name, 'shadow') : compareOutput(a, b, classifications.has(a.name)),
    );
  }
  for (const name of theirs.keys()) outputs.push(missing(name, 'primary'));
  const agrees = outputs.every(
    (o) =>
      o.missing === undefined &&
      o.shapeMatch &&
      o.datatypeMatch &&
      o.maxAbs <= tolerance &&
      o.top1Agree === o.rows,
  );
  return { outputs, agrees };
}

function missing(name: string, side: 'primary' | 'shadow'): OutputComparison {
  return {
    name,
    missing: side,
    shapeMatch: false,
    datatypeMatch: false,
    maxAbs: Number.POSITIVE_INFINITY,
    maxRel: Number.POSITIVE_INFINITY,
    rows: 0,
    top1Agree: 0,
  };
}

export function compareOutput(
  a: ResponseOutput,
  b: ResponseOutput,
  classification: boolean,
): OutputComparison {
  const shapeMatch = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  const datatypeMatch = a.datatype === b.datatype;
  const base = { name: a.name, missing: undefined, shapeMatch, datatypeMatch };
  if (!shapeMatch || a.data.length !== b.data.length) {
    return {
      ...base,
      maxAbs: Number.POSITIVE_INFINITY,
      maxRel: Number.POSITIVE_INFINITY,
      rows: 0,
      top1Agree: 0,
    };
  }
  if (typeof a.data[0] === 'string' || typeof b.data[0] === 'string') {
    const same = a.data.every((v, i) => v === b.data[i]);
    const d = same ? 0 : Number.POSITIVE_INFINITY;
    return { ...base, maxAbs: d, maxRel: d, rows: 0, top1Agree: 0 };
  }
  let maxAbs = 0;
  let maxRel = 0;
  const n = a.data.length;
  for (let i = 0; i < n; i++) {
    const x = num(a.data, i);
    const y = num(b.data, i);
    const diff = Math.abs(x - y);
    if (diff > maxAbs || Number.isNaN(diff)) maxAbs = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff;
    const scale = Math.max(Math.abs(x), Math.abs(y));
    if (scale > 0 && diff / scale > maxRel) maxRel = diff / scale;
  }
  if (!classification || a.shape.length === 0) return { ...base, maxAbs, maxRel, rows: 0, top1Agree: 0 };
  const classes = a.shape[a.shape.length - 1] as number;
  const rows = classes > 0 ? n / classes : 0;
  let top1Agree = 0;
  for (let r = 0; r < rows; r++)
    if (argmax(a.data, r * classes, classes) === argmax(b.data, r * classes, classes)) top1Agree++;
  return { ...base, maxAbs, maxRel, rows, top1Agree };
}

function num(data: TensorData, i: number): number {
  return Number(data[i]);
}

/** Index of the largest value in data[start, start + count); the first on ties. */
export function argmax(data: TensorData, start: number, count: number): number {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < count; k++) {
    const v = num(data, start + k);
    if (v > bestValue) {
      bestValue = v;
      best = k;
    }
  }
  return best;
}
