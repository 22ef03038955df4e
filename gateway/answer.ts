/**
 * Upstream results and the gateway's own refusals, as replies: the backend's answer passed on as
 * bytes with the headers a client needs, its 5xx as the gateway's 502, and each way forwarding can
 * fail as its catalogued error. Returns the status answered (499 when the client went away).
 */
import type { FastifyReply } from 'fastify';
import { ApiError } from '../common/errors.js';
import { sendApiError } from '../common/http.js';
import type { Logger } from '../common/logging.js';
import type { RequestContext } from './context.js';
import { GW_ERRORS } from './errors.js';
import type { ProxyResult } from './proxy.js';

/** Response headers passed back to the client. */
const FORWARDED_RESPONSE_HEADERS = [
  'content-type',
  'inference-header-content-length',
  'retry-after',
] as const;

export function answer(
  reply: FastifyReply,
  ctx: RequestContext,
  result: ProxyResult,
  logger: Logger,
): number {
  if (result.kind === 'refused') return sendError(reply, result.error);
  const variant = ctx.variant;
  if (variant === undefined) return sendError(reply, internal());
  reply.header('x-infergate-variant', variant.variant.name);
  const backend = variant.variant.backend.name;
  switch (result.kind) {
    case 'response': {
      if (result.status >= 500 && result.status !== 503) {
        logger.warn(
          {
            reqId: ctx.id,
            model: ctx.modelName,
            variant: variant.variant.name,
            endpoint: result.endpoint.origin,
            status: result.status,
          },
          'backend error',
        );
        return sendError(
          reply,
          new ApiError(
            GW_ERRORS.GW_ERR_UPSTREAM_ERROR,
            `backend '${backend}' answered ${result.status}${backendCode(result.body)}`,
          ),
        );
      }
      reply.code(result.status);
      for (const h of FORWARDED_RESPONSE_HEADERS) {
        const v = result.headers[h];
        if (v !== undefined) reply.header(h, v);
      }
      if (result.status === 503 && result.headers['retry-after'] === undefined)
        reply.header('retry-after', '1');
      reply.send(result.body);
      return result.status;
    }
    case 'no_endpoint':
      return sendError(
        reply,
        new ApiError(
          GW_ERRORS.GW_ERR_NO_HEALTHY_ENDPOINT,
          `no endpoint of backend '${backend}' can take traffic now`,
          { retryAfterSeconds: result.retryAfterSeconds },
        ),
      );
    case 'cancelled':
      // Nobody to answer; counted as 499 (client closed request), as nginx does.
      reply.hijack();
      reply.raw.destroy();
      return 499;
    case 'timeout':
      return sendError(
        reply,
        new ApiError(
          GW_ERRORS.GW_ERR_UPSTREAM_TIMEOUT,
          `backend '${backend}' did not answer within ${ctx.model?.model.timeoutMs} ms`,
        ),
      );
    case 'unavailable':
      logger.warn(
        {
          reqId: ctx.id,
          model: ctx.modelName,
          variant: variant.variant.name,
          attempts: result.attempts,
          error: (result.error as { code?: string } | undefined)?.code ?? result.error?.message,
        },
        'backend unavailable',
      );
      return sendError(
        reply,
        new ApiError(
          GW_ERRORS.GW_ERR_UPSTREAM_UNAVAILABLE,
          `no replica of backend '${backend}' could be reached (${result.attempts} attempt${result.attempts === 1 ? '' : 's'})`,
          { retryAfterSeconds: 1 },
        ),
      );
  }
}

function sendError(reply: FastifyReply, err: ApiError): number {
  sendApiError(reply, err);
  return err.statusCode;
}

function internal(): ApiError {
  return new ApiError(GW_ERRORS.GW_ERR_INTERNAL, 'internal error; the gateway logged it with the request id');
}

/** ` (BE_ERR_...)` from a backend's error body, when it has one. */
export function backendCode(body: Buffer): string {
  if (body.length > 4096) return '';
  try {
    const code = (JSON.parse(body.toString('utf8')) as { code?: unknown }).code;
    return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? ` (${code})` : '';
  } catch {
    return '';
  }
}
