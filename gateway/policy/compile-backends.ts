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
  CompiledUpstreamTls,
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
        tls: compileTls(name, def.tls, endpoints, errors),
      }),
    );
  }
  return backends;
}

/** A backend's `tls`: a certificate goes with its key, and every listed endpoint is https://. */
function compileTls(
  name: string,
  tls: PolicyDocument['backends'][string]['tls'],
  endpoints: readonly string[],
  errors: PolicyIssue[],
): CompiledUpstreamTls | undefined {
  if (tls === undefined) return undefined;
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    const missing = tls.cert === undefined ? 'cert' : 'key';
    errors.push({
      path: at('backends', name, 'tls', missing),
      message: `is required with ${missing === 'cert' ? 'key' : 'cert'} (a client certificate and its key)`,
    });
  }
  endpoints.forEach((origin, i) => {
    if (origin.startsWith('http:'))
      errors.push({
        path: at('backends', name, 'endpoints', i),
        message: `'${origin}' is plain HTTP, but the backend has tls: use https://`,
      });
  });
  return Object.freeze({ ca: tls.ca, cert: tls.cert, key: tls.key, serverName: tls.serverName });
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
