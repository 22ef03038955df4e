/**
 * What a policy gets for each setting it leaves out, and how a section of the document is laid
 * over its defaults.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import type {
  CompiledCircuitBreaker,
  CompiledConcurrency,
  CompiledHealthCheck,
  CompiledOutlierDetection,
  CompiledRetries,
} from './compiled.js';
import type {
  CircuitBreakerDocument,
  ConcurrencyDocument,
  HealthCheckDocument,
  OutlierDetectionDocument,
  PolicyDocument,
  RetriesDocument,
} from './schema.js';

export const DEFAULT_TIMEOUT_MS = 2000;
export const DEFAULT_RETRIES: CompiledRetries = Object.freeze({
  attempts: 2,
  budgetPercent: 20,
  backoffMs: 25,
  perTryTimeoutMs: 0,
});
/** Policies larger than this are refused before parsing. */
export const MAX_POLICY_BYTES = 1 << 20;

export const DEFAULT_CIRCUIT_BREAKER: CompiledCircuitBreaker = Object.freeze({
  errorThresholdPercentage: 50,
  volumeThreshold: 10,
  resetTimeoutMs: 5000,
  windowMs: 10_000,
});
export const DEFAULT_HEALTH_CHECK: CompiledHealthCheck = Object.freeze({
  intervalMs: 1000,
  timeoutMs: 500,
  unhealthyThreshold: 2,
  healthyThreshold: 1,
});
export const DEFAULT_OUTLIER_DETECTION: CompiledOutlierDetection = Object.freeze({
  consecutiveFailures: 5,
  baseEjectionMs: 5000,
  maxEjectionMs: 60_000,
  maxEjectionPercent: 50,
});
export const DEFAULT_MODEL_CONCURRENCY: CompiledConcurrency = Object.freeze({
  maxInFlight: 512,
  maxQueue: 512,
  queueTimeoutMs: 250,
});
export const DEFAULT_LIMITS: CompiledConcurrency = Object.freeze({
  maxInFlight: 2048,
  maxQueue: 2048,
  queueTimeoutMs: 250,
});

/** Share of a model's concurrency that batch requests may hold when the policy sets none. */
export const DEFAULT_BATCH_SHARE = 0.5;

/** `base` with the keys `doc` sets, frozen. */
export function merge<T extends object>(
  base: T,
  doc:
    | CircuitBreakerDocument
    | HealthCheckDocument
    | OutlierDetectionDocument
    | ConcurrencyDocument
    | undefined,
): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  if (doc !== undefined) for (const [k, v] of Object.entries(doc)) if (v !== undefined) out[k] = v;
  return Object.freeze(out) as T;
}

export function retries(doc: RetriesDocument | undefined, base: CompiledRetries): CompiledRetries {
  return Object.freeze({
    attempts: doc?.attempts ?? base.attempts,
    budgetPercent: doc?.budgetPercent ?? base.budgetPercent,
    backoffMs: doc?.backoffMs ?? base.backoffMs,
    perTryTimeoutMs: doc?.perTryTimeoutMs ?? base.perTryTimeoutMs,
  });
}

/** The policy's `defaults` over the built-in ones: what every backend and every model inherits. */
export function inheritedDefaults(section: PolicyDocument['defaults']) {
  const d = section ?? {};
  return {
    backend: {
      circuitBreaker: merge(DEFAULT_CIRCUIT_BREAKER, d.circuitBreaker),
      healthCheck: merge(DEFAULT_HEALTH_CHECK, d.healthCheck),
      outlierDetection: merge(DEFAULT_OUTLIER_DETECTION, d.outlierDetection),
    },
    model: {
      timeoutMs: d.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      retries: retries(d.retries, DEFAULT_RETRIES),
      concurrency: merge(DEFAULT_MODEL_CONCURRENCY, d.concurrency),
    },
  };
}
