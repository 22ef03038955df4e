import type { FastifyReply } from 'fastify';
import type { ApiError } from './errors.js';

/** Sends an error as both tiers answer it: the JSON body `{error, code[, field]}`, and
 * `Retry-After` when the error has one. */
export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
  return reply.code(err.statusCode).type('application/json').send(err.toJSON());
}
