/**
 * The model routes (`/v2/models/{m}[/versions/{v}][/infer|/ready]`) served on node's request
 * directly: a plain URL, a body of declared length within the limit, and the request goes from
 * here to `proxy` and `answer` without fastify's routing, request and reply objects, body parser
 * and send pipeline, which together cost the gateway more per request than everything it does
 * itself. Anything else (a percent-escape, a query string, chunked bodies, HEAD, a bad URL, a body
 * over the limit) is left to fastify, whose routes for the same paths end in `serveModel` too.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../common/logging.js';
import { requestId } from '../common/request-id.js';
import { answer, baseHeaders, internalError, writeError } from './answer.js';
import type { AuditLog } from './audit/log.js';
import { type RequestKind, RequestContext } from './context.js';
import type { GatewayMetrics } from './metrics.js';
import { type ProxyEnv, type ProxyResult, proxy } from './proxy.js';
import type { Snapshot } from './snapshot.js';
import type { GatewayTracing } from './tracing.js';
import type { Cancellation } from './upstream/forward.js';

export interface ModelTarget {
  readonly kind: RequestKind;
  readonly model: string;
  readonly version: string | undefined;
}

export interface ModelServeDeps extends ProxyEnv {
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly bodyLimit: number;
  readonly current: () => Snapshot;
  readonly draining: () => boolean;
  /** Spans of each request; undefined when tracing is off. */
  readonly tracing?: GatewayTracing | undefined;
  /** One line per request; undefined without --audit-log. */
  readonly audit?: AuditLog | undefined;
}

/** The trace id header of every traced answer. */
export const TRACE_ID_HEADER = 'x-trace-id';

function headersOf(deps: ModelServeDeps, ctx: RequestContext) {
  const headers = baseHeaders(ctx.id, deps.draining());
  if (ctx.trace !== undefined) headers[TRACE_ID_HEADER] = ctx.trace.traceId;
  return headers;
}

/** The requests in flight on a client connection, cancelled if it closes before they answer. */
const IN_FLIGHT = Symbol('infergate.inFlight');
type ClientSocket = Socket & { [IN_FLIGHT]?: Set<Cancellation> };

/**
 * A client that goes away cancels its upstream attempt and frees its slots at once. Requests
 * register with their connection (one listener per connection, not per request).
 */
export function trackClientConnections(
  server: Server,
  event: 'connection' | 'secureConnection' = 'connection',
): void {
  server.on(event, (socket: ClientSocket) => {
    const inFlight = new Set<Cancellation>();
    socket[IN_FLIGHT] = inFlight;
    socket.once('close', () => {
      for (const c of inFlight) {
        c.cancelled = true;
        c.onCancel?.();
      }
      inFlight.clear();
    });
  });
}

/** Characters of a path segment that needs no decoding: unreserved ones, as fastify's limit allows. */
const PLAIN = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-')
  PLAIN[c.charCodeAt(0)] = 1;
const MAX_SEGMENT = 256;
const SLASH = 0x2f;
const PREFIX = '/v2/models/';

/**
 * The segments after the prefix, each 1..256 plain characters, at most 4 of them; undefined for
 * anything else. A scan rather than split and a regular expression per segment: it runs on every
 * request.
 */
function plainSegments(url: string): string[] | undefined {
  const parts: string[] = [];
  let start = PREFIX.length;
  for (;;) {
    let i = start;
    while (i < url.length) {
      const c = url.charCodeAt(i);
      if (c === SLASH) break;
      if (c >= 128 || PLAIN[c] === 0) return undefined;
      i++;
    }
    if (i === start || i - start > MAX_SEGMENT || parts.length === 4) return undefined;
    parts.push(url.slice(start, i));
    if (i === url.length) return parts;
    start = i + 1;
  }
}

/** The model route of a plain URL and method, or undefined: fastify routes it then. */
export function parseModelRoute(
  method: string | undefined,
  url: string | undefined,
): ModelTarget | undefined {
  if (url === undefined || !url.startsWith(PREFIX)) return undefined;
  const parts = plainSegments(url);
  if (parts === undefined) return undefined;
  const model = parts[0] as string;
  let version: string | undefined;
  let rest = 1;
  if (parts[1] === 'versions' && parts.length >= 3) {
    version = parts[2];
    rest = 3;
  }
  if (parts.length === rest) return method === 'GET' ? { kind: 'metadata', model, version } : undefined;
  if (parts.length !== rest + 1) return undefined;
  const last = parts[rest];
  if (last === 'infer') return method === 'POST' ? { kind: 'infer', model, version } : undefined;
  if (last === 'ready') return method === 'GET' ? { kind: 'ready', model, version } : undefined;
  return undefined;
}

/**
 * Serves a model request that fastify need not see; false when it is not one (nothing was read).
 * A POST body is taken only with a Content-Length within the limit; GETs only without a body.
 */
export function tryServeModel(deps: ModelServeDeps, req: IncomingMessage, res: ServerResponse): boolean {
  const target = parseModelRoute(req.method, req.url);
  if (target === undefined || req.headers['transfer-encoding'] !== undefined) return false;
  const length = req.headers['content-length'];
  if (target.kind !== 'infer') {
    if (length !== undefined && length !== '0') return false;
    void serveModel(deps, req, res, requestId(req), target, null);
    return true;
  }
  const declared = length === undefined ? Number.NaN : Number(length);
  if (!(declared >= 0 && declared <= deps.bodyLimit) || !Number.isInteger(declared)) return false;
  const id = requestId(req);
  if (declared === 0) {
    void serveModel(deps, req, res, id, target, EMPTY);
    return true;
  }
  const chunks: Buffer[] = [];
  // A client that goes away mid-body: nothing to answer (fastify drops it too).
  req.on('error', ignore);
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    void serveModel(deps, req, res, id, target, body);
  });
  return true;
}

export const EMPTY = Buffer.alloc(0);
const ignore = () => {};

/**
 * One request to a model: a context, the proxy, the answer, then what metrics read of it. Never
 * rejects: an unexpected error is logged with the request id and answered 500 (or the connection
 * is closed, when the answer had started), so a bug costs one request, never the process.
 */
export async function serveModel(
  deps: ModelServeDeps,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  target: ModelTarget,
  body: Buffer | null,
): Promise<void> {
  const { clock, metrics } = deps;
  const ctx = new RequestContext(
    deps.current(),
    id,
    clock.now(),
    target.kind,
    target.model,
    target.version,
    req.headers,
  );
  ctx.rawHeaders = req.rawHeaders;
  const socket = req.socket as ClientSocket;
  const pending = socket[IN_FLIGHT];
  pending?.add(ctx.cancel);
  if (socket.destroyed) ctx.cancel.cancelled = true;
  if (deps.tracing !== undefined) ctx.trace = deps.tracing.begin(ctx, req);
  let result: ProxyResult | undefined;
  try {
    result = await proxy(ctx, body, deps);
    pending?.delete(ctx.cancel);
    ctx.status = answer(res, headersOf(deps, ctx), ctx, result, deps.logger);
  } catch (err) {
    pending?.delete(ctx.cancel);
    deps.logger.error({ err, reqId: id, traceId: ctx.trace?.traceId }, 'unexpected error');
    if (res.headersSent) {
      res.destroy();
      ctx.status = 500;
    } else {
      ctx.status = writeError(res, headersOf(deps, ctx), internalError());
    }
  }
  ctx.answeredAt = clock.now();
  if (ctx.variant !== undefined) ctx.variant.series.request(ctx.status, ctx.seconds);
  else
    metrics.request(
      ctx.model === undefined ? '' : ctx.modelName,
      '',
      ctx.status,
      ctx.outcome === 'refused' ? ctx.seconds : 0,
    );
  if (ctx.trace !== undefined) ctx.trace.end(ctx);
  if (deps.audit !== undefined) deps.audit.record(ctx, body, result);
  // Shadow copies go out once the answer is written and counted: they never delay or change it.
  const shadow = ctx.model?.shadow;
  if (shadow !== undefined && result?.kind === 'response' && ctx.variant !== undefined && body !== null)
    shadow.mirror(id, req.headers, ctx.variant, body, result);
}
