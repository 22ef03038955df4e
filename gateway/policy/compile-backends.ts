/**
 * The `backends` section: endpoint URLs normalised and checked for repeats, the per-backend
 * breaker, health check and outlier detection laid over the defaults and checked against each
 * other.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { merge } from './compile-defaults.js';
import { at } from './compile-issues.js';
import type {
  CompiledBackend,
  CompiledCircuitBreaker,
  CompiledHealthCheck,
  CompiledOutlierDetection,
  PolicyIssue,
} from './compiled.js';
import type { PolicyDocument } from './schema.js';

export interface BackendDefaults {
  readonly circuitBreaker: CompiledCircuitBreaker;
  readonly healthCheck: CompiledHealthCheck;
  readonly outlierDetection: CompiledOutlierDetection;
}

/** Every backend of the policy by name; problems are pushed onto `errors`. */
export function compileBackends(
  section: PolicyDocument['backends'],
  defaults: BackendDefaults,
  errors: PolicyIssue[],
): Map<string, CompiledBackend> {
  const backends = new Map<string, CompiledBackend>();
  for (const [name, def] of Object.entries(section)) {
    const endpoints: string[] = [];
    def.endpoints.forEach((raw, i) => {
      const origin = normaliseEndpoint(raw);
      if (origin === undefined) {
        errors.push({ path: at('backends', name, 'endpoints', i), message: `'${raw}' is not a valid URL` });
      } else if (endpoints.includes(origin)) {
        errors.push({ path: at('backends', name, 'endpoints', i), message: `'${raw}' is listed twice` });
      } else {
        endpoints.push(origin);
      }
    });
    const outlierDetection = merge(defaults.outlierDetection, def.outlierDetection);
    if (outlierDetection.maxEjectionMs < outlierDetection.baseEjectionMs) {
      errors.push({
        path: at('backends', name, 'outlierDetection', 'maxEjectionMs'),
        message: `must be at least baseEjectionMs (${outlierDetection.baseEjectionMs})`,
      });
    }
    const healthCheck = merge(defaults.healthCheck, def.healthCheck);
    if (healthCheck.intervalMs > 0 && healthCheck.timeoutMs > healthCheck.intervalMs) {
      errors.push({
        path: at('backends', name, 'healthCheck', 'timeoutMs'),
        message: `must not exceed intervalMs (${healthCheck.intervalMs})`,
      });
    }
    backends.set(
      name,
      Object.freeze({
        name,
        endpoints: Object.freeze(endpoints),
        circuitBreaker: merge(defaults.circuitBreaker, def.circuitBreaker),
        healthCheck,
        outlierDetection,
      }),
    );
  }
  return backends;
}

function normaliseEndpoint(raw: string): string | undefined {
  try {
    const url = new URL(raw);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password)
      return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}
