import { ApiError, defineErrors } from '../common/errors.js';
import { fastifyApiError } from '../common/fastify-errors.js';
import { CodecError, type CodecReason } from '../common/oip/codec-error.js';

/** Every error a backend replica answers with. Documented in docs/errors.md. */
export const BE_ERRORS = defineErrors({
  BE_ERR_MALFORMED_JSON: [400, 'The body (or its JSON header) is not valid JSON or not UTF-8.'],
  BE_ERR_NESTING_TOO_DEEP: [400, 'The JSON is nested deeper than the limit (64 levels).'],
  BE_ERR_INVALID_REQUEST: [400, 'The request does not have the form of an inference request.'],
  BE_ERR_BAD_URL: [
    400,
    'The URL cannot be decoded (a bad percent-escape) or a path segment is longer than 256 characters.',
  ],
  BE_ERR_BAD_REQUEST: [
    400,
    'The HTTP parser refused the request (Content-Length with Transfer-Encoding, a bad version, a malformed head).',
  ],
  BE_ERR_UNSUPPORTED_DATATYPE: [
    400,
    'The datatype is unknown, unsupported by onnxruntime, or has no JSON form.',
  ],
  BE_ERR_INVALID_SHAPE: [400, 'A dim is negative or not an integer, or the rank is too large.'],
  BE_ERR_SHAPE_OVERFLOW: [400, 'The element count or byte size of a shape does not fit in 64 bits.'],
  BE_ERR_DATA_LENGTH_MISMATCH: [
    400,
    'The number of data elements (or binary bytes) disagrees with the shape.',
  ],
  BE_ERR_INVALID_DATA: [400, 'A data element has the wrong JSON type or is out of range for the datatype.'],
  BE_ERR_INVALID_BINARY: [400, 'The binary tensor extension is used inconsistently.'],
  BE_ERR_UNKNOWN_INPUT: [400, 'The model has no input of this name.'],
  BE_ERR_MISSING_INPUT: [400, 'An input the model needs is not in the request.'],
  BE_ERR_UNKNOWN_OUTPUT: [400, 'The model has no output of this name.'],
  BE_ERR_DATATYPE_MISMATCH: [400, "The input's datatype differs from the model's."],
  BE_ERR_SHAPE_MISMATCH: [
    400,
    "The input's rank or a fixed dim differs from the model's, or inputs disagree on the batch size.",
  ],
  BE_ERR_BATCH_TOO_LARGE: [400, "The request's batch is larger than the model's max_batch_size."],
  BE_ERR_INFERENCE_REJECTED: [
    400,
    "The request matches the model's metadata, but onnxruntime refused to run the model on it (a dim a layer cannot take, an index out of range).",
  ],
  BE_ERR_MODEL_NOT_FOUND: [
    404,
    'The replica serves no model of this name (not in its repository, or not loaded).',
  ],
  BE_ERR_VERSION_NOT_FOUND: [404, 'The replica serves no version of this number of the model.'],
  BE_ERR_NOT_FOUND: [404, 'No such route.'],
  BE_ERR_REQUEST_TIMEOUT: [
    408,
    'The client did not send its headers (or its whole request) within the timeout; the connection closes.',
  ],
  BE_ERR_BODY_TOO_LARGE: [413, 'The body is larger than the limit (64 MiB by default).'],
  BE_ERR_HEADERS_TOO_LARGE: [431, 'The request headers are larger than the HTTP parser allows (16 KiB).'],
  BE_ERR_MODEL_LOAD_FAILED: [500, 'onnxruntime could not load the model.'],
  BE_ERR_INFERENCE_FAILED: [
    500,
    "onnxruntime failed to run the model for a reason of the replica's (memory, a device).",
  ],
  BE_ERR_INTERNAL: [500, 'An unexpected error; the message is logged, not sent.'],
  BE_ERR_MODEL_NOT_READY: [503, 'The model is known but not loaded (unloaded, loading, or failed to load).'],
  BE_ERR_QUEUE_FULL: [503, "The model's batching queue is full; retry after Retry-After."],
  BE_ERR_SHUTTING_DOWN: [503, 'The replica is draining for shutdown; retry on another replica.'],
});

export type BackendErrorCode = keyof typeof BE_ERRORS;

/** What the HTTP parser refuses, answered from the catalogue (common/client-limits.ts). */
export const BE_CLIENT_ERRORS = {
  badRequest: BE_ERRORS.BE_ERR_BAD_REQUEST,
  headersTooLarge: BE_ERRORS.BE_ERR_HEADERS_TOO_LARGE,
  timeout: BE_ERRORS.BE_ERR_REQUEST_TIMEOUT,
} as const;

/** The backend code for each codec rejection: `BE_ERR_` + the reason (checked at compile time). */
export function codecErrorDef(reason: CodecReason): (typeof BE_ERRORS)[BackendErrorCode] {
  const code: `BE_ERR_${CodecReason}` = `BE_ERR_${reason}`;
  return BE_ERRORS[code];
}

const BACKEND_FASTIFY_ERRORS = {
  bodyTooLarge: BE_ERRORS.BE_ERR_BODY_TOO_LARGE,
  badRequest: BE_ERRORS.BE_ERR_INVALID_REQUEST,
  internal: BE_ERRORS.BE_ERR_INTERNAL,
  internalMessage: 'internal error; the replica logged it with the request id',
} as const;

/** Any error a request meets (ours, the codec's, fastify's) as the backend answers it. */
export function toApiError(err: Error, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof CodecError) {
    return new ApiError(
      codecErrorDef(err.reason),
      err.message,
      err.field === undefined ? {} : { field: err.field },
    );
  }
  return fastifyApiError(err, bodyLimit, BACKEND_FASTIFY_ERRORS);
}

/**
 * onnxruntime's message made fit for an answer: without the source file locations and C++
 * function signatures it carries (`/onnxruntime_src/.../reshape_helper.h:84 onnxruntime::...(...)`),
 * and at most 500 characters. The full message is what the replica logs.
 */
export function onnxruntimeMessage(raw: string): string {
  const cleaned = raw
    .replace(/(?:[A-Za-z]:)?(?:[\\/][^\s\\/:]+)+\.(?:h|hpp|cc|cpp|cxx|c|cu|inc):\d+\s*/g, '')
    .replace(/\b(?:onnxruntime|Ort|std)::[\w:~<>]*\([^()]*\)(?:\s*const)?(?:::<lambda\([^()]*\)>)?\s*/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return cleaned.length > 500 ? `${cleaned.slice(0, 500)}...` : cleaned;
}
