/**
 * Policy compiler: YAML text → validated, cross-checked, immutable runtime snapshot. Every problem
 * is found here, at load, with its field path; nothing is checked per request.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { createHash } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, parseDocument } from 'yaml';
import {
  type CircuitBreakerDocument,
  type ConcurrencyDocument,
  type HealthCheckDocument,
  type ModelDocument,
  type OutlierDetectionDocument,
  type PolicyDocument,
  PolicySchema,
  type RetriesDocument,
} from './schema.js';

/** One problem in a policy, with the dotted path of the field (`models.mlp.split.canary`). */
export interface PolicyIssue {
  readonly path: string;
  readonly message: string;
}

export const DEFAULT_TIMEOUT_MS = 2000;
export const DEFAULT_RETRIES: CompiledRetries = Object.freeze({
  attempts: 2,
  budgetPercent: 20,
  backoffMs: 25,
  perTryTimeoutMs: 0,
});
/** Policies larger than this are refused before parsing. */
export const MAX_POLICY_BYTES = 1 << 20;

export interface CompiledCircuitBreaker {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly resetTimeoutMs: number;
  readonly windowMs: number;
}
export interface CompiledHealthCheck {
  /** 0: active checks off. */
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}
export interface CompiledOutlierDetection {
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
}
export interface CompiledConcurrency {
  readonly maxInFlight: number;
  readonly maxQueue: number;
  readonly queueTimeoutMs: number;
}

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

export interface CompiledRetries {
  readonly attempts: number;
  readonly budgetPercent: number;
  readonly backoffMs: number;
  /** 0: no per-attempt limit, only the request's deadline. */
  readonly perTryTimeoutMs: number;
}

export interface CompiledBackend {
  readonly name: string;
  /** Normalised origins (`http://127.0.0.1:8001`), in policy order. */
  readonly endpoints: readonly string[];
  readonly circuitBreaker: CompiledCircuitBreaker;
  readonly healthCheck: CompiledHealthCheck;
  readonly outlierDetection: CompiledOutlierDetection;
}

export interface CompiledVariant {
  readonly name: string;
  readonly backend: CompiledBackend;
  /** Model name and version on the backend. */
  readonly model: string;
  readonly version: string | undefined;
  /** Upstream paths, computed once. */
  readonly inferPath: string;
  readonly metadataPath: string;
  readonly readyPath: string;
}

export interface CompiledRoute {
  /** Lower-cased header names with the exact value each must have. */
  readonly headers: readonly (readonly [name: string, value: string])[];
  readonly variant: CompiledVariant;
}

export interface CompiledSplit {
  /** Variants with a positive weight, in policy order. */
  readonly variants: readonly CompiledVariant[];
  /** Upper bounds in [0, 100]: a point p in [0, 100) picks the first variant with p < bound. */
  readonly bounds: readonly number[];
}

export interface CompiledModel {
  readonly name: string;
  readonly variants: ReadonlyMap<string, CompiledVariant>;
  /** First variant of each backend version, for `/versions/{v}` pins. */
  readonly byVersion: ReadonlyMap<string, CompiledVariant>;
  readonly split: CompiledSplit;
  readonly stickyHeader: string | undefined;
  readonly routes: readonly CompiledRoute[];
  readonly timeoutMs: number;
  readonly retries: CompiledRetries;
  readonly concurrency: CompiledConcurrency;
}

export interface CompiledPolicy {
  readonly sha256: string;
  readonly backends: ReadonlyMap<string, CompiledBackend>;
  readonly models: ReadonlyMap<string, CompiledModel>;
  /** Gateway-wide load shedding. */
  readonly limits: CompiledConcurrency;
  /** Features the policy sets that this gateway version accepts but does not act on yet. */
  readonly warnings: readonly PolicyIssue[];
  /** The validated document, for display (`infergate policy get`, the admin view). */
  readonly document: PolicyDocument;
}

export type CompileResult =
  | { readonly ok: true; readonly policy: CompiledPolicy }
  | { readonly ok: false; readonly errors: readonly PolicyIssue[] };

/** `/models/mlp/split/canary` → `models.mlp.split.canary`; `/a/0/b` → `a[0].b`. */
export function dottedPath(pointer: string | readonly (string | number)[]): string {
  const parts =
    typeof pointer === 'string'
      ? pointer
          .split('/')
          .slice(1)
          .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      : pointer.map(String);
  let out = '';
  for (const part of parts) {
    if (/^\d+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out === '' ? '(root)' : out;
}

/** A UTF-16 surrogate without its pair: not a character, and encodeURIComponent throws on it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A dotted path from its parts: `at('models', 'mlp.v2', 'split')` → `models["mlp.v2"].split`. */
function at(...parts: (string | number)[]): string {
  return dottedPath(parts);
}

export function formatIssue(issue: PolicyIssue): string {
  return `${issue.path}: ${issue.message}`;
}

/** Parse, validate and compile one policy. Never throws. */
export function compilePolicy(text: string): CompileResult {
  try {
    return compileText(text);
  } catch (e) {
    // A value the checks above let through and the compiler could not use: still a rejection.
    return fail('(root)', `the policy could not be compiled: ${firstLine((e as Error).message)}`);
  }
}

function compileText(text: string): CompileResult {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) {
    return fail('(root)', `the policy is larger than ${MAX_POLICY_BYTES} bytes`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return { path: `(yaml line ${pos.line}, column ${pos.col})`, message: firstLine(e.message) };
      }),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return fail('(root)', firstLine((e as Error).message));
  }
  if (value === null || value === undefined) return fail('(root)', 'the policy is empty');
  if (typeof value !== 'object') {
    return fail('(root)', 'the policy must be a mapping');
  }
  return compileDocument(value);
}

/** Validate and compile an already-parsed document (JSON or YAML). */
export function compileDocument(value: unknown): CompileResult {
  const schemaErrors = schemaIssues(value);
  if (schemaErrors.length > 0) return { ok: false, errors: schemaErrors };
  const document = value as PolicyDocument;
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];

  const defaults = document.defaults ?? {};
  const defaultTimeout = defaults.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const defaultRetries = retries(defaults.retries, DEFAULT_RETRIES);
  const defaultBreaker = merge(DEFAULT_CIRCUIT_BREAKER, defaults.circuitBreaker);
  const defaultHealth = merge(DEFAULT_HEALTH_CHECK, defaults.healthCheck);
  const defaultOutlier = merge(DEFAULT_OUTLIER_DETECTION, defaults.outlierDetection);
  const defaultConcurrency = merge(DEFAULT_MODEL_CONCURRENCY, defaults.concurrency);

  const backends = new Map<string, CompiledBackend>();
  for (const [name, def] of Object.entries(document.backends)) {
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
    const outlierDetection = merge(defaultOutlier, def.outlierDetection);
    if (outlierDetection.maxEjectionMs < outlierDetection.baseEjectionMs) {
      errors.push({
        path: at('backends', name, 'outlierDetection', 'maxEjectionMs'),
        message: `must be at least baseEjectionMs (${outlierDetection.baseEjectionMs})`,
      });
    }
    const healthCheck = merge(defaultHealth, def.healthCheck);
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
        circuitBreaker: merge(defaultBreaker, def.circuitBreaker),
        healthCheck,
        outlierDetection,
      }),
    );
  }

  const models = new Map<string, CompiledModel>();
  for (const [name, def] of Object.entries(document.models)) {
    const model = compileModel(
      name,
      def,
      backends,
      { timeoutMs: defaultTimeout, retries: defaultRetries, concurrency: defaultConcurrency },
      errors,
      warnings,
    );
    if (model !== undefined) models.set(name, model);
  }

  if (document.auth !== undefined) {
    // Fail closed: a policy that asks for authentication must not be served without it.
    errors.push({ path: 'auth', message: 'authentication is not supported by this version of infergate' });
  }

  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    policy: Object.freeze({
      sha256: createHash('sha256').update(JSON.stringify(document)).digest('hex'),
      backends,
      models,
      limits: merge(DEFAULT_LIMITS, document.limits),
      warnings: Object.freeze(warnings),
      document,
    }),
  };
}

function compileModel(
  name: string,
  def: ModelDocument,
  backends: ReadonlyMap<string, CompiledBackend>,
  defaults: { timeoutMs: number; retries: CompiledRetries; concurrency: CompiledConcurrency },
  errors: PolicyIssue[],
  warnings: PolicyIssue[],
): CompiledModel | undefined {
  const base = ['models', name] as const;
  const before = errors.length;
  const variants = new Map<string, CompiledVariant>();
  const byVersion = new Map<string, CompiledVariant>();
  for (const [vname, v] of Object.entries(def.variants)) {
    const backend = backends.get(v.backend);
    if (backend === undefined) {
      errors.push({
        path: at(...base, 'variants', vname, 'backend'),
        message: `unknown backend '${v.backend}'`,
      });
      continue;
    }
    if (LONE_SURROGATE.test(v.model)) {
      errors.push({ path: at(...base, 'variants', vname, 'model'), message: 'is not well-formed Unicode' });
      continue;
    }
    const version = v.version === undefined ? undefined : String(v.version);
    const prefix = `/v2/models/${encodeURIComponent(v.model)}${version === undefined ? '' : `/versions/${version}`}`;
    const variant: CompiledVariant = Object.freeze({
      name: vname,
      backend,
      model: v.model,
      version,
      inferPath: `${prefix}/infer`,
      metadataPath: prefix,
      readyPath: `${prefix}/ready`,
    });
    variants.set(vname, variant);
    if (version !== undefined && !byVersion.has(version)) byVersion.set(version, variant);
  }
  const variantAt = (path: string, vname: string): CompiledVariant | undefined => {
    const v = variants.get(vname);
    if (v === undefined && !Object.hasOwn(def.variants, vname)) {
      errors.push({ path, message: `unknown variant '${vname}'` });
    }
    return v;
  };

  // The weighted split.
  let split: CompiledSplit = { variants: [], bounds: [] };
  if (def.split === undefined) {
    const only = [...variants.values()];
    if (Object.keys(def.variants).length > 1) {
      errors.push({ path: at(...base, 'split'), message: 'required when a model has more than one variant' });
    } else if (only[0] !== undefined) {
      split = { variants: [only[0]], bounds: [100] };
    }
  } else {
    const weighted: [CompiledVariant, number][] = [];
    let total = 0;
    for (const [vname, weight] of Object.entries(def.split)) {
      const v = variantAt(at(...base, 'split', vname), vname);
      if (v !== undefined && weight > 0) {
        weighted.push([v, weight]);
        total += weight;
      }
    }
    if (total <= 0 && errors.length === before) {
      errors.push({ path: at(...base, 'split'), message: 'the weights must have a positive sum' });
    } else if (total > 0) {
      let cumulative = 0;
      const bounds = weighted.map(([, w], i) => {
        cumulative += w;
        return i === weighted.length - 1 ? 100 : (cumulative / total) * 100;
      });
      split = { variants: weighted.map(([v]) => v), bounds };
    }
  }

  const routes: CompiledRoute[] = [];
  (def.routes ?? []).forEach((r, i) => {
    const v = variantAt(at(...base, 'routes', i, 'variant'), r.variant);
    const headers = Object.entries(r.match.headers).map(([h, value]) => [h.toLowerCase(), value] as const);
    const seen = new Set<string>();
    for (const [h] of headers) {
      if (seen.has(h)) {
        errors.push({
          path: at(...base, 'routes', i, 'match', 'headers'),
          message: `header '${h}' is listed twice`,
        });
      }
      seen.add(h);
    }
    if (v !== undefined) routes.push(Object.freeze({ headers, variant: v }));
  });

  if (def.shadow !== undefined) {
    variantAt(at(...base, 'shadow', 'variant'), def.shadow.variant);
    warnings.push({
      path: at(...base, 'shadow'),
      message: 'accepted, but shadow mirroring is not active in this version',
    });
  }
  if (def.canary !== undefined) {
    variantAt(at(...base, 'canary', 'variant'), def.canary.variant);
    def.canary.steps.forEach((step, i) => {
      const prev = def.canary?.steps[i - 1];
      if (prev !== undefined && step <= prev) {
        errors.push({ path: at(...base, 'canary', 'steps', i), message: 'steps must increase' });
      }
    });
    warnings.push({
      path: at(...base, 'canary'),
      message:
        'accepted, but automatic canary progression is not active in this version; the split stays as written',
    });
  }
  if (def.rateLimit !== undefined) {
    // Fail closed: a limit the operator relies on must not be silently ignored.
    errors.push({
      path: at(...base, 'rateLimit'),
      message: 'rate limiting is not supported by this version of infergate',
    });
  }

  if (errors.length > before) return undefined;
  return Object.freeze({
    name,
    variants,
    byVersion,
    split: Object.freeze(split),
    stickyHeader: def.sticky?.header.toLowerCase(),
    routes: Object.freeze(routes),
    timeoutMs: def.timeoutMs ?? defaults.timeoutMs,
    retries: retries(def.retries, defaults.retries),
    concurrency: merge(defaults.concurrency, def.concurrency),
  });
}

/** `base` with the keys `doc` sets, frozen. */
function merge<T extends object>(
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

function retries(doc: RetriesDocument | undefined, base: CompiledRetries): CompiledRetries {
  return Object.freeze({
    attempts: doc?.attempts ?? base.attempts,
    budgetPercent: doc?.budgetPercent ?? base.budgetPercent,
    backoffMs: doc?.backoffMs ?? base.backoffMs,
    perTryTimeoutMs: doc?.perTryTimeoutMs ?? base.perTryTimeoutMs,
  });
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

/** Schema errors, one per field (the first found), with the policy's own wording where set. */
function schemaIssues(value: unknown): PolicyIssue[] {
  const byPath = new Map<string, string>();
  for (const e of Value.Errors(PolicySchema, value)) {
    const path = dottedPath(e.path);
    if (byPath.has(path)) continue;
    const custom = (e.schema as { errorMessage?: unknown }).errorMessage;
    const missing = e.message === 'Expected required property';
    byPath.set(path, typeof custom === 'string' && !missing ? custom : describe(e.message, e.schema));
    if (byPath.size >= 100) break;
  }
  return [...byPath].map(([path, message]) => ({ path, message }));
}

function describe(message: string, schema: unknown): string {
  if (message === 'Unexpected property') return 'unknown key';
  if (message === 'Expected required property') return 'required';
  const s = schema as { minProperties?: number; type?: string };
  if (message.startsWith('Expected object to have at least') && s.minProperties === 1)
    return 'must not be empty';
  return message.charAt(0).toLowerCase() + message.slice(1);
}

function fail(path: string, message: string): CompileResult {
  return { ok: false, errors: [{ path, message }] };
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}
