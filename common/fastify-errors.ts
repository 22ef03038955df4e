import type { FastifyError } from 'fastify';
import { ApiError, type ErrorDef } from './errors.js';

/** The tier's own catalogue entries for what fastify itself refuses. */
export interface FastifyErrorCodes {
  readonly bodyTooLarge: ErrorDef;
  readonly badRequest: ErrorDef;
  readonly internal: ErrorDef;
  /** The client-facing message of an internal error (the cause is logged, never answered). */
  readonly internalMessage: string;
}

/**
 * An error thrown on a route or by fastify (body too large, a malformed request) as the tier's
 * ApiError: ApiErrors pass as they are; fastify's 413 and other 4xx get the tier's codes; the rest
 * is an internal error whose message says nothing of its cause.
 */
export function fastifyApiError(err: Error, bodyLimit: number, codes: FastifyErrorCodes): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as FastifyError;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || fe.statusCode === 413) {
    return new ApiError(codes.bodyTooLarge, `body is larger than the limit of ${bodyLimit} bytes`);
  }
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new ApiError(codes.badRequest, fe.message);
  }
  return new ApiError(codes.internal, codes.internalMessage);
}
