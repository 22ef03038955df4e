/**
 * Upstream results and the gateway's own refusals, written to the client's response: the
 * backend's answer passed on as bytes with the headers a client needs, its 5xx as the gateway's
 * 502, and each way forwarding can fail as its catalogued error. Returns the status answered (499
 * when the client went away). Writes node's response directly: the reply of a model request is
 * the hot path, and fastify's send pipeline cost more than the rest of it.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { ApiError } from '../common/errors.js';
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

/**
 * Headers of every answer, on both paths (fastify's replies take them too): the request id, and
 * while draining Connection: close, so that clients reconnect elsewhere.
 */
export function baseHeaders(requestId: string, draining: boolean): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { 'x-request-id': requestId };
  if (draining) headers.connection = 'close';
  return headers;
}

/** What a client is told of an unexpected error; the cause is logged with the request id. */
export const INTERNAL_MESSAGE = 'internal error; the gateway logged it with the request id';

export function internalError(): ApiError {
  return new ApiError(GW_ERRORS.GW_ERR_INTERNAL, INTERNAL_MESSAGE);
}

export function answer(
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  ctx: RequestContext,
  result: ProxyResult,
  logger: Logger,
): number {
  if (ctx.replyHeaders !== undefined) Object.assign(headers, ctx.replyHeaders);
  if (result.kind === 'refused') return writeError(res, headers, result.error);
  const variant = ctx.variant;
  if (variant === undefined) return writeError(res, headers, internalError());
  headers['x-infergate-variant'] = variant.variant.name;
  const backend = variant.variant.backend.name;
  switch (result.kind) {
    case 'response': {
      if (result.status >= 500 && result.status !== 503) {
        logger.warn(
          {
            reqId: ctx.id,
            traceId: ctx.trace?.traceId,
            keyId: ctx.keyId,
            model: ctx.modelName,
            variant: variant.variant.name,
            endpoint: result.endpoint.origin,
            status: result.status,
          },
          'backend error',
        );
        return writeError(
          res,
          headers,
          new ApiError(
            GW_ERRORS.GW_ERR_UPSTREAM_ERROR,
            `backend '${backend}' answered ${result.status}${backendCode(result.body)}`,
          ),
        );
      }
      for (const h of FORWARDED_RESPONSE_HEADERS) {
        const v = result.headers[h];
        if (v !== undefined) (headers as Record<string, string | string[]>)[h] = v;
      }
      if (result.status === 503 && result.headers['retry-after'] === undefined) headers['retry-after'] = '1';
      headers['content-length'] = result.body.length;
      res.writeHead(result.status, headers);
      res.end(result.body);
      return result.status;
    }
    case 'no_endpoint':
      return writeError(
        res,
        headers,
        new ApiError(
          GW_ERRORS.GW_ERR_NO_HEALTHY_ENDPOINT,
          `no endpoint of backend '${backend}' can take traffic now`,
          { retryAfterSeconds: result.retryAfterSeconds },
        ),
      );
    case 'cancelled':
      // Nobody to answer; counted as 499 (client closed request), as nginx does.
      res.destroy();
      return 499;
    case 'timeout':
      return writeError(
        res,
        headers,
        new ApiError(
          GW_ERRORS.GW_ERR_UPSTREAM_TIMEOUT,
          `backend '${backend}' did not answer within ${ctx.model?.model.timeoutMs} ms`,
        ),
      );
    case 'unavailable':
      logger.warn(
        {
          reqId: ctx.id,
          traceId: ctx.trace?.traceId,
          keyId: ctx.keyId,
          model: ctx.modelName,
          variant: variant.variant.name,
          attempts: result.attempts,
          error: (result.error as { code?: string } | undefined)?.code ?? result.error?.message,
        },
        'backend unavailable',
      );
      return writeError(
        res,
        headers,
        new ApiError(
          GW_ERRORS.GW_ERR_UPSTREAM_UNAVAILABLE,
          `no replica of backend '${backend}' could be reached (${result.attempts} attempt${result.attempts === 1 ? '' : 's'})`,
          { retryAfterSeconds: 1 },
        ),
      );
  }
}

/** An error as both tiers answer it (see `sendApiError` in common/http.ts), on node's response. */
export function writeError(res: ServerResponse, headers: OutgoingHttpHeaders, err: ApiError): number {
  const body = JSON.stringify(err.toJSON());
  headers['content-type'] = 'application/json; charset=utf-8';
  headers['content-length'] = Buffer.byteLength(body);
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
  res.writeHead(err.statusCode, headers);
  res.end(body);
  return err.statusCode;
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
