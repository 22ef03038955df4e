/**
 * What tracing is configured to do, as typed values: the CLI reads the standard `OTEL_*`
 * variables (cli/otel-env.ts) and passes this down; nothing else reads the environment.
 */

/** The samplers of the OpenTelemetry specification's `OTEL_TRACES_SAMPLER`. */
export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

export const SAMPLER_NAMES: readonly SamplerName[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

export interface TracingConfig {
  /** The service name on every span: infergate-gateway or infergate-backend unless overridden. */
  readonly serviceName: string;
  /** Full URL of the OTLP/HTTP traces endpoint (`.../v1/traces`). */
  readonly endpoint: string;
  /** Extra headers on each export (`OTEL_EXPORTER_OTLP_HEADERS`). */
  readonly headers: Readonly<Record<string, string>>;
  readonly sampler: SamplerName;
  /** The ratio of the traceidratio samplers, 0..1. */
  readonly ratio: number;
  /** Resource attributes (`OTEL_RESOURCE_ATTRIBUTES`). */
  readonly resource: Readonly<Record<string, string>>;
  /** Batch span processor: delay between exports (ms) and the bounded queue of finished spans. */
  readonly exportDelayMs: number;
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  readonly exportTimeoutMs: number;
}

export const TRACING_DEFAULTS = {
  sampler: 'parentbased_always_on' as SamplerName,
  ratio: 1,
  exportDelayMs: 5000,
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  exportTimeoutMs: 30_000,
};
