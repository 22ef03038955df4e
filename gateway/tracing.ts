/**
 * The gateway's spans, made at the pipeline's stages from the request context: the server span
 * (HTTP semantic conventions, continuing the client's `traceparent`), one client span per
 * upstream attempt whose own `traceparent` goes out in that attempt's headers, and, when the
 * request ends, the admission and route spans from what the context recorded. Made only when
 * tracing is configured: `ctx.trace` stays undefined otherwise.
 */
import type { IncomingMessage } from 'node:http';
import { type Span, SpanKind, type Tracing } from '../common/telemetry/tracing.js';
import type { ContextTrace, RequestContext } from './context.js';
import type { AttemptRequest } from './upstream/attempt.js';
import type { AttemptOutcome, RetryReason, TracedAttempt } from './upstream/forward.js';

/** Span status codes of @opentelemetry/api (ERROR = 2), without importing its enum here. */
const ERROR = 2;

/** The request's trace: its server span and what the attempts need. */
export class RequestTrace implements ContextTrace {
  readonly traceId: string;
  /** Clock time when the first attempt started: the end of the route span. */
  private routedAt = 0;

  constructor(
    private readonly tracing: Tracing,
    readonly span: Span,
    private readonly url: string,
  ) {
    this.traceId = span.spanContext().traceId;
  }

  start(
    origin: string,
    attempt: number,
    retryOf: RetryReason | undefined,
    req: AttemptRequest,
    now: number,
  ): TracedAttempt {
    if (this.routedAt === 0) this.routedAt = now;
    // The request's headers are its own (made per request by the proxy), and attempts go one at
    // a time: each attempt's traceparent is written into them in place.
    const headers = req.headers;
    // Only when there is one: a delete turns the object into a slow dictionary for undici.
    if (headers.tracestate !== undefined) delete headers.tracestate;
    if (!this.span.isRecording()) {
      headers.traceparent = traceparent(this.span);
      return { request: req, end: noop };
    }
    const target = new URL(origin);
    const span = this.tracing.start(`${req.method}`, SpanKind.CLIENT, this.span, {
      'http.request.method': req.method,
      'url.full': `${origin}${req.path}`,
      'server.address': target.hostname,
      'server.port': Number(target.port || (target.protocol === 'https:' ? 443 : 80)),
      'infergate.endpoint': origin,
      'infergate.attempt': attempt,
      ...(attempt > 1 ? { 'http.request.resend_count': attempt - 1 } : {}),
      ...(retryOf === undefined ? {} : { 'infergate.retry.reason': retryOf }),
    });
    headers.traceparent = traceparent(span);
    return new Attempt(span, req);
  }

  /** Ends the request's spans from what its context recorded. */
  end(ctx: RequestContext): void {
    const span = this.span;
    if (!span.isRecording()) return;
    const admittedAt = ctx.admittedAt;
    if (ctx.model !== undefined) {
      const admission = this.tracing.start('admission', SpanKind.INTERNAL, span, undefined, ctx.arrivedAt);
      admission.setAttribute(
        'infergate.admission.result',
        ctx.refusedBy === undefined ? 'admitted' : 'refused',
      );
      admission.setAttribute('infergate.admission.stages', ctx.admitted);
      if (ctx.refusedBy !== undefined) {
        admission.setAttribute('infergate.admission.refused_by', ctx.refusedBy);
        admission.setStatus({ code: ERROR, message: `refused by ${ctx.refusedBy}` });
      }
      admission.end(admittedAt > 0 ? admittedAt : ctx.answeredAt);
    }
    const variant = ctx.variant;
    if (admittedAt > 0) {
      const route = this.tracing.start('route', SpanKind.INTERNAL, span, undefined, admittedAt);
      route.setAttribute('infergate.model', ctx.modelName);
      if (variant !== undefined) {
        route.setAttributes({
          'infergate.variant': variant.variant.name,
          'infergate.backend': variant.variant.backend.name,
          'infergate.backend.model': variant.variant.model,
          'infergate.backend.version': variant.variant.version ?? '',
        });
        if (ctx.reason !== undefined) route.setAttribute('infergate.route.reason', ctx.reason);
      } else {
        route.setStatus({ code: ERROR, message: 'no variant' });
      }
      route.end(this.routedAt > 0 ? this.routedAt : admittedAt);
    }
    span.setAttribute('http.response.status_code', ctx.status);
    span.setAttribute('infergate.request_id', ctx.id);
    if (ctx.outcome !== undefined) span.setAttribute('infergate.outcome', ctx.outcome);
    if (ctx.keyId !== undefined) span.setAttribute('infergate.key_id', ctx.keyId);
    if (ctx.model !== undefined) span.setAttribute('infergate.model', ctx.modelName);
    if (variant !== undefined) {
      span.setAttribute('infergate.variant', variant.variant.name);
      span.setAttribute('infergate.backend.model', variant.variant.model);
      span.setAttribute('infergate.backend.version', variant.variant.version ?? '');
    }
    span.setAttribute('infergate.attempts', ctx.attempts);
    if (ctx.status >= 500) span.setStatus({ code: ERROR });
    span.updateName(`${ctx.kind === 'infer' ? 'POST' : 'GET'} ${routeOf(ctx)}`);
    const q = this.url.indexOf('?');
    span.setAttribute('url.path', q < 0 ? this.url : this.url.slice(0, q));
    span.end(ctx.answeredAt);
  }
}

function routeOf(ctx: RequestContext): string {
  const base = ctx.version === undefined ? '/v2/models/{model}' : '/v2/models/{model}/versions/{version}';
  return ctx.kind === 'infer' ? `${base}/infer` : ctx.kind === 'ready' ? `${base}/ready` : base;
}

class Attempt implements TracedAttempt {
  constructor(
    private readonly span: Span,
    readonly request: AttemptRequest,
  ) {}

  end(outcome: AttemptOutcome | 'cancelled', status: number, error: Error | undefined, now: number): void {
    const span = this.span;
    span.setAttribute('infergate.attempt.outcome', outcome);
    if (status > 0) span.setAttribute('http.response.status_code', status);
    if (error !== undefined) {
      const code = (error as { code?: unknown }).code;
      span.setAttribute('error.type', typeof code === 'string' ? code : error.name);
    }
    if (outcome !== 'ok' && outcome !== 'client_error') span.setStatus({ code: ERROR });
    span.end(now);
  }
}

/** The W3C traceparent of a span (version 00). */
function traceparent(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-${(c.traceFlags & 1) === 1 ? '01' : '00'}`;
}
const noop = () => {};

/** Makes the server span of each request. */
export class GatewayTracing {
  constructor(readonly tracing: Tracing) {}

  begin(ctx: RequestContext, req: IncomingMessage): RequestTrace {
    const url = req.url ?? '';
    // No attributes for the sampler (the samplers of OTEL_TRACES_SAMPLER read none): an unsampled
    // request then costs its ids and nothing else.
    const span = this.tracing.startRequest('POST /v2/models', SpanKind.SERVER, ctx.headers, ctx.arrivedAt);
    if (span.isRecording()) {
      const local = req.socket.localPort;
      span.setAttributes({
        'http.request.method': req.method ?? 'GET',
        'url.scheme': 'http',
        'http.route': routeOf(ctx),
        'network.protocol.version': req.httpVersion,
        ...(local === undefined ? {} : { 'server.port': local }),
        ...(req.socket.remoteAddress === undefined ? {} : { 'client.address': req.socket.remoteAddress }),
      });
    }
    return new RequestTrace(this.tracing, span, url.length > 512 ? url.slice(0, 512) : url);
  }
}
