/**
 * The replica's spans: the server span of each inference request (continuing the gateway's
 * `traceparent`), the wait of each request in the model's queue, and one span per batch run,
 * linked to the server span of every request it served, with its size. Made only when tracing is
 * configured; the routes and the batcher keep undefined and check it once.
 */
import type { FastifyRequest } from 'fastify';
import { type Link, type Span, SpanKind, type Tracing } from '../common/telemetry/tracing.js';
import type { PreparedRequest } from './validate.js';

const ERROR = 2;

interface Queued {
  readonly span: Span;
  readonly queuedAt: number;
}

export class BackendTracing {
  /** The server span and queue time of each request waiting in a batcher, by its payload. */
  private readonly queued = new WeakMap<PreparedRequest, Queued>();

  constructor(readonly tracing: Tracing) {}

  /** The server span of an inference request. */
  begin(req: FastifyRequest, started: number): Span {
    const params = req.params as { model?: string; version?: string };
    const route =
      params.version === undefined
        ? '/v2/models/{model}/infer'
        : '/v2/models/{model}/versions/{version}/infer';
    const url = req.url;
    const q = url.indexOf('?');
    const span = this.tracing.startRequest(`POST ${route}`, SpanKind.SERVER, req.headers, started);
    if (!span.isRecording()) return span;
    span.setAttributes({
      'http.request.method': 'POST',
      'http.route': route,
      'url.path': (q < 0 ? url : url.slice(0, q)).slice(0, 512),
      'url.scheme': 'http',
      'infergate.request_id': String(req.id),
      ...(params.model === undefined ? {} : { 'infergate.model': params.model.slice(0, 256) }),
      ...(params.version === undefined ? {} : { 'infergate.model.version': params.version.slice(0, 64) }),
    });
    return span;
  }

  /** Ends a request's server span with its status. */
  end(span: Span, status: number, version: string | undefined): void {
    span.setAttribute('http.response.status_code', status);
    if (version !== undefined) span.setAttribute('infergate.model.version', version);
    if (status >= 500) span.setStatus({ code: ERROR });
    span.end();
  }

  /** Remembers that the request of `span` waits in a queue from now. */
  enqueued(req: PreparedRequest, span: Span): void {
    if (span.isRecording()) this.queued.set(req, { span, queuedAt: performance.now() });
  }

  /**
   * A batch starts: each sampled request's queue wait ends now, and the batch run span starts,
   * a child of the first sampled request's span with a link to each. Returns its end, or
   * undefined when no request of the batch is sampled.
   */
  batchStarted(
    batch: readonly PreparedRequest[],
    model: string,
    version: string,
  ): ((error: unknown) => void) | undefined {
    const now = performance.now();
    let first: Span | undefined;
    const links: Link[] = [];
    let rows = 0;
    for (const r of batch) {
      rows += r.rows;
      const q = this.queued.get(r);
      if (q === undefined) continue;
      this.queued.delete(r);
      this.tracing
        .start('queue wait', SpanKind.INTERNAL, q.span, { 'infergate.model': model }, q.queuedAt)
        .end(now);
      links.push({ context: q.span.spanContext() });
      first ??= q.span;
    }
    if (first === undefined) return undefined;
    const span = this.tracing.start(
      'batch run',
      SpanKind.INTERNAL,
      first,
      {
        'infergate.model': model,
        'infergate.model.version': version,
        'infergate.batch.size': rows,
        'infergate.batch.requests': batch.length,
      },
      now,
      links,
    );
    return (error) => {
      if (error !== undefined) span.setStatus({ code: ERROR, message: 'batch failed' });
      span.end();
    };
  }
}
