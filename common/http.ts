import { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import type { ApiError } from './errors.js';
import type { Logger } from './logging.js';
import { requestId } from './request-id.js';
import { PRODUCT_VERSION } from './version.js';

/**
 * The fastify options both tiers share: their own logger, without fastify's per-request log
 * lines (they would cost more than a small model's inference; errors are logged where they are
 * handled); the body limit; the request id, the client's x-request-id when it is a sane token,
 * else a counter (see request-id.ts); and requests on open connections still served while
 * draining, so that each tier answers them itself.
 */
export function sharedServerOptions(logger: Logger, bodyLimit: number) {
  return {
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    requestIdHeader: false as const,
    genReqId: requestId,
    return503OnClosing: false,
  };
}

/** Sends an error as both tiers answer it: the JSON body `{error, code[, field]}`, and
 * `Retry-After` when the error has one. */
export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
  return reply.code(err.statusCode).type('application/json').send(err.toJSON());
}

/**
 * The Open Inference Protocol's health and server-metadata routes, as both tiers serve them:
 * live always; ready while `ready()` holds (503 `{ready: false}` otherwise); `GET /v2` with the
 * server's name, the product version and its protocol extensions.
 */
export function healthRoutes(
  app: FastifyInstance,
  server: { name: string; extensions: readonly string[]; ready: () => boolean },
): void {
  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_req, reply) => {
    const ready = server.ready();
    return reply.code(ready ? 200 : 503).send({ ready });
  });
  app.get('/v2', async () => ({
    name: server.name,
    version: PRODUCT_VERSION,
    extensions: server.extensions,
  }));
}
