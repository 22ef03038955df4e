/** Shapes: checked, and their element counts taken, before anything of their size is allocated. */
import { CodecError } from './codec-error.js';
import { DATATYPE_INFO, type Datatype } from './datatypes.js';

const MAX_RANK = 32;
const INT64_MAX = (1n << 63n) - 1n;

/**
 * The element count of a shape that checkShape would accept without a doubt: an array of at most
 * MAX_RANK non-negative integers whose product stays a safe integer (so no byte size of any
 * datatype can pass 2^63 either). Undefined otherwise: checkShape then decides, and names the
 * fault. Plain numbers; checkShape's BigInt arithmetic cost more than the rest of a small request.
 */
export function shapeElements(shape: unknown): number | undefined {
  if (!Array.isArray(shape) || shape.length > MAX_RANK) return undefined;
  let count = 1;
  for (let d = 0; d < shape.length; d++) {
    const dim: unknown = shape[d];
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 0) return undefined;
    count *= dim;
    if (count > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return count;
}

/**
 * Validates a shape and returns its element count. Rejects negative and non-integer dims, and
 * shapes whose element count or byte size does not fit in 64 bits, before anything is allocated.
 */
export function checkShape(shape: unknown, datatype: Datatype, field: string): number {
  if (!Array.isArray(shape)) throw new CodecError('INVALID_SHAPE', `${field} must be an array`, field);
  if (shape.length > MAX_RANK) {
    throw new CodecError('INVALID_SHAPE', `${field} has rank ${shape.length}, more than ${MAX_RANK}`, field);
  }
  let count = 1n;
  for (let d = 0; d < shape.length; d++) {
    const dim = shape[d];
    if (typeof dim !== 'number' || !Number.isInteger(dim)) {
      throw new CodecError('INVALID_SHAPE', `${field}[${d}] must be an integer`, `${field}[${d}]`);
    }
    if (dim < 0) {
      throw new CodecError(
        'INVALID_SHAPE',
        `${field}[${d}] is ${dim}; dims must not be negative`,
        `${field}[${d}]`,
      );
    }
    count *= BigInt(dim);
  }
  const bytes = count * BigInt(Math.max(1, DATATYPE_INFO[datatype].size));
  if (count > INT64_MAX || bytes > INT64_MAX) {
    throw new CodecError(
      'SHAPE_OVERFLOW',
      `${field} [${shape.join(',')}] has ${bigCount(count)} elements of ${datatype}, which overflows 64 bits`,
      field,
    );
  }
  if (count > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CodecError('SHAPE_OVERFLOW', `${field} [${shape.join(',')}] has too many elements`, field);
  }
  return Number(count);
}

/** An element count for a message: exact while short, else in scientific notation. */
function bigCount(n: bigint): string {
  const text = n.toString();
  return text.length <= 24 ? text : `about ${text[0]}.${text.slice(1, 3)}e+${text.length - 1}`;
}
