/**
 * OpenTelemetry tracing shared by both tiers: one tracer provider per service instance (not the
 * process-wide global, so that a gateway and a replica in one process keep their own service
 * names), the W3C trace-context propagator, and OTLP/HTTP export through a bounded batch span
 * processor. Spans are made at the pipeline's stages with explicit parents: no context manager,
 * no async hooks, no auto-instrumentation. `startTracing` returns undefined when no endpoint is
 * configured, and every caller keeps `undefined` in a field it checks once per request.
 */
import {
  type Attributes,
  type Context,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type TextMapGetter,
  type TimeInput,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { PRODUCT_VERSION } from '../version.js';
import type { TracingConfig } from './config.js';
import {
  type FastSampling,
  fastSamplingOf,
  PooledIds,
  sampledRoot,
  unrecorded,
  unsampledParent,
} from './fast-sampling.js';

export { SpanKind, type Span, type Context, type Link, type Attributes };

/** Reads a header of node's IncomingHttpHeaders (lower-case names; repeated ones joined). */
const HEADER_GETTER: TextMapGetter<Record<string, string | string[] | undefined>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

function samplerOf(config: TracingConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.ratio);
  switch (config.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/** The tracing of one service instance: its tracer, the propagator, flush and shutdown. */
export class Tracing {
  readonly tracer: Tracer;
  private readonly propagator = new W3CTraceContextPropagator();

  constructor(
    private readonly provider: BasicTracerProvider,
    readonly serviceName: string,
    private readonly ids: PooledIds = new PooledIds(),
    private readonly fast: FastSampling | undefined = undefined,
  ) {
    this.tracer = provider.getTracer('infergate', PRODUCT_VERSION);
  }

  /**
   * The server span of an incoming request, under its `traceparent` if it has one. A span the
   * sampler would not record is made here without the SDK (fast-sampling.ts); attributes are for
   * recorded spans only, so set them after `isRecording()`.
   */
  startRequest(
    name: string,
    kind: SpanKind,
    headers: Record<string, string | string[] | undefined>,
    startTime?: TimeInput,
  ): Span {
    const fast = this.fast;
    if (fast !== undefined) {
      const tp = headers.traceparent;
      if (tp === undefined) {
        const traceId = this.ids.generateTraceId();
        if (!sampledRoot(fast, traceId)) return unrecorded(traceId, this.ids.generateSpanId());
        this.ids.next = traceId;
        try {
          return this.start(name, kind, ROOT_CONTEXT, undefined, startTime);
        } finally {
          this.ids.next = undefined;
        }
      }
      if (fast.parentBased && typeof tp === 'string') {
        const traceId = unsampledParent(tp);
        if (traceId !== undefined) return unrecorded(traceId, this.ids.generateSpanId());
      }
    }
    return this.start(name, kind, this.extract(headers), undefined, startTime);
  }

  /** The remote parent of a request from its `traceparent` / `tracestate` headers (or none). */
  extract(headers: Record<string, string | string[] | undefined>): Context {
    if (headers.traceparent === undefined) return ROOT_CONTEXT;
    return this.propagator.extract(ROOT_CONTEXT, headers, HEADER_GETTER);
  }

  /** Writes `traceparent` (and `tracestate`) of `span` into `carrier`. */
  inject(span: Span, carrier: Record<string, string>): void {
    this.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, {
      set: (c, k, v) => {
        c[k] = v;
      },
    });
  }

  /** Starts a span under `parent` (a context or a span). */
  start(
    name: string,
    kind: SpanKind,
    parent: Context | Span,
    attributes?: Attributes,
    startTime?: TimeInput,
    links?: Link[],
  ): Span {
    const context = isSpan(parent) ? trace.setSpan(ROOT_CONTEXT, parent) : parent;
    // One literal, undefined fields included: the SDK reads each with a default.
    return this.tracer.startSpan(name, { kind, attributes, startTime, links }, context);
  }

  /** Exports every finished span now. */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  /** Exports what is left and stops. */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

function isSpan(x: Context | Span): x is Span {
  return typeof (x as Span).spanContext === 'function';
}

/**
 * Tracing for one service, or undefined when `config` is undefined (no endpoint configured):
 * then nothing is made, loaded into a provider or exported. `exporter` replaces OTLP (tests).
 */
export function startTracing(
  config: TracingConfig | undefined,
  exporter?: SpanExporter,
): Tracing | undefined {
  if (config === undefined) return undefined;
  const ids = new PooledIds();
  const provider = new BasicTracerProvider({
    idGenerator: ids,
    resource: resourceFromAttributes({
      ...config.resource,
      [ATTR_SERVICE_NAME]: config.serviceName,
      [ATTR_SERVICE_VERSION]: PRODUCT_VERSION,
    }),
    sampler: samplerOf(config),
    spanProcessors: [
      new BatchSpanProcessor(
        exporter ?? new OTLPTraceExporter({ url: config.endpoint, headers: { ...config.headers } }),
        {
          scheduledDelayMillis: config.exportDelayMs,
          maxQueueSize: config.maxQueueSize,
          maxExportBatchSize: Math.min(config.maxExportBatchSize, config.maxQueueSize),
          exportTimeoutMillis: config.exportTimeoutMs,
        },
      ),
    ],
  });
  return new Tracing(provider, config.serviceName, ids, fastSamplingOf(config.sampler, config.ratio));
}
