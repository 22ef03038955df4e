/**
 * The standard OpenTelemetry variables, read here (only cli/ reads the environment) into the
 * typed `TracingConfig` the tiers take. No endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_ENDPOINT`), `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: no
 * tracing at all (undefined), so it costs nothing.
 */
import {
  SAMPLER_NAMES,
  type SamplerName,
  TRACING_DEFAULTS,
  type TracingConfig,
} from '../common/telemetry/config.js';
import { UsageError } from './args.js';

type Env = Readonly<Record<string, string | undefined>>;

/** `k=v,k2=v2` (values percent-decoded), as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES. */
function pairs(text: string | undefined, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined || text.trim() === '') return out;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UsageError(`${name}: '${part.trim()}' is not key=value`);
    try {
      out[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      throw new UsageError(`${name}: the value of '${part.slice(0, eq).trim()}' is badly escaped`);
    }
  }
  return out;
}

function positive(env: Env, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`${name} must be a positive integer, not '${v}'`);
  return n;
}

/** The traces URL: the signal's own variable as is, else the base endpoint + `/v1/traces`. */
function tracesUrl(env: Env): string | undefined {
  const own = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (own !== undefined && own !== '') return own;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (base === undefined || base === '') return undefined;
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

export function tracingFromEnv(env: Env, defaultServiceName: string): TracingConfig | undefined {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return undefined;
  const exporter = env.OTEL_TRACES_EXPORTER;
  if (exporter === 'none') return undefined;
  if (exporter !== undefined && exporter !== '' && exporter !== 'otlp') {
    throw new UsageError(`OTEL_TRACES_EXPORTER: only otlp (or none) is supported, not '${exporter}'`);
  }
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL;
  if (protocol !== undefined && protocol !== '' && protocol !== 'http/json' && protocol !== 'http/protobuf') {
    throw new UsageError(`OTEL_EXPORTER_OTLP_PROTOCOL: infergate exports over HTTP, not '${protocol}'`);
  }
  const endpoint = tracesUrl(env);
  if (endpoint === undefined) return undefined;
  try {
    new URL(endpoint);
  } catch {
    throw new UsageError(`the OTLP traces endpoint '${endpoint}' is not a URL`);
  }
  const samplerText = env.OTEL_TRACES_SAMPLER;
  const sampler =
    samplerText === undefined || samplerText === '' ? TRACING_DEFAULTS.sampler : (samplerText as SamplerName);
  if (!SAMPLER_NAMES.includes(sampler)) {
    throw new UsageError(
      `OTEL_TRACES_SAMPLER must be one of ${SAMPLER_NAMES.join(', ')}, not '${samplerText}'`,
    );
  }
  const argText = env.OTEL_TRACES_SAMPLER_ARG;
  let ratio = TRACING_DEFAULTS.ratio;
  if (sampler.endsWith('traceidratio') && argText !== undefined && argText !== '') {
    ratio = Number(argText);
    if (!(ratio >= 0 && ratio <= 1)) {
      throw new UsageError(`OTEL_TRACES_SAMPLER_ARG must be a ratio in [0, 1], not '${argText}'`);
    }
  }
  const serviceName = env.OTEL_SERVICE_NAME;
  return {
    serviceName: serviceName === undefined || serviceName === '' ? defaultServiceName : serviceName,
    endpoint,
    headers: {
      ...pairs(env.OTEL_EXPORTER_OTLP_HEADERS, 'OTEL_EXPORTER_OTLP_HEADERS'),
      ...pairs(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
    },
    sampler,
    ratio,
    resource: pairs(env.OTEL_RESOURCE_ATTRIBUTES, 'OTEL_RESOURCE_ATTRIBUTES'),
    exportDelayMs: positive(env, 'OTEL_BSP_SCHEDULE_DELAY', TRACING_DEFAULTS.exportDelayMs),
    maxQueueSize: positive(env, 'OTEL_BSP_MAX_QUEUE_SIZE', TRACING_DEFAULTS.maxQueueSize),
    maxExportBatchSize: positive(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', TRACING_DEFAULTS.maxExportBatchSize),
    exportTimeoutMs: positive(env, 'OTEL_BSP_EXPORT_TIMEOUT', TRACING_DEFAULTS.exportTimeoutMs),
  };
}
