/**
 * The codec's one error. Every rejection names the offending field (`inputs[1].shape[0]`); each
 * tier maps its `reason` onto its own error catalogue.
 */
export type CodecReason =
  | 'MALFORMED_JSON'
  | 'NESTING_TOO_DEEP'
  | 'INVALID_REQUEST'
  | 'UNSUPPORTED_DATATYPE'
  | 'INVALID_SHAPE'
  | 'SHAPE_OVERFLOW'
  | 'DATA_LENGTH_MISMATCH'
  | 'INVALID_DATA'
  | 'INVALID_BINARY';

export class CodecError extends Error {
  constructor(
    readonly reason: CodecReason,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'CodecError';
  }
}
