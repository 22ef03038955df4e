/**
 * The compiled policy: the frozen runtime snapshot that `compilePolicy` builds and the router,
 * the upstream pools and the admin view read. Types only.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import type { PolicyDocument } from './schema.js';

/** One problem in a policy, with the dotted path of the field (`models.mlp.split.canary`). */
export interface PolicyIssue {
  readonly path: string;
  readonly message: string;
}

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

export interface CompiledRetries {
  readonly attempts: number;
  readonly budgetPercent: number;
  readonly backoffMs: number;
  /** 0: no per-attempt limit, only the request's deadline. */
  readonly perTryTimeoutMs: number;
}

/** TLS to a backend's replicas: file paths on the gateway's host, read when the pools are made. */
export interface CompiledUpstreamTls {
  readonly ca: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly serverName: string | undefined;
}

export interface CompiledBackend {
  readonly name: string;
  /** Normalised origins (`http://127.0.0.1:8001`), in policy order. */
  readonly endpoints: readonly string[];
  readonly circuitBreaker: CompiledCircuitBreaker;
  readonly healthCheck: CompiledHealthCheck;
  readonly outlierDetection: CompiledOutlierDetection;
  /** undefined: plain HTTP, or HTTPS with the system's CAs and no client certificate. */
  readonly tls?: CompiledUpstreamTls | undefined;
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

/** A token bucket (GCRA): `burst` requests at once, refilled at `requestsPerSecond`. */
export interface CompiledRate {
  readonly requestsPerSecond: number;
  readonly burst: number;
}

/** One API key, as the auth stage looks it up (by the SHA-256 of its text). */
export interface KeyRecord {
  readonly id: string;
  /** Models it may call; undefined: every model. */
  readonly models: ReadonlySet<string> | undefined;
  readonly rateLimit: CompiledRate | undefined;
  /** Wall-clock ms since the epoch; undefined: never. */
  readonly expiresAt: number | undefined;
  readonly revoked: boolean;
}

export interface CompiledJwt {
  readonly jwksFile: string | undefined;
  readonly jwksUrl: string | undefined;
  readonly issuer: string;
  readonly audience: string;
  readonly algorithms: readonly string[];
  readonly clockSkewSeconds: number;
  readonly modelsClaim: string;
  readonly refreshSeconds: number;
}

export interface CompiledAuth {
  /** false: a request without a credential passes (one with a bad credential does not). */
  readonly required: boolean;
  /** The policy's keys by SHA-256 (lowercase hex). */
  readonly keys: ReadonlyMap<string, KeyRecord>;
  readonly jwt: CompiledJwt | undefined;
}

export interface CompiledRateSettings {
  readonly mode: 'local' | 'global';
  readonly failureMode: 'open' | 'closed';
  /** The limit of a key (or token subject) that sets none itself. */
  readonly perKey: CompiledRate | undefined;
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
  /** Share (0..1) of `concurrency.maxInFlight` that batch requests may hold. */
  readonly batchShare: number;
  /** Served without a credential even when auth is required. */
  readonly public: boolean;
  /** All requests to the model together, and each key on it. */
  readonly rateLimit: CompiledRate | undefined;
  readonly keyRateLimit: CompiledRate | undefined;
  /** Mirroring to a variant with output comparison (gateway/rollout/shadow.ts). */
  readonly shadow?: CompiledShadow | undefined;
  /** The progressive rollout of a variant (gateway/rollout/canary.ts). */
  readonly canary?: CompiledCanary | undefined;
}

export interface CompiledShadow {
  readonly variant: CompiledVariant;
  readonly percent: number;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  /** Output names compared by top-1 agreement. */
  readonly classifications: ReadonlySet<string>;
  readonly tolerance: number;
  readonly noiseFloorPercent: number;
  readonly logTensors: boolean;
}

export interface CompiledCanary {
  readonly variant: CompiledVariant;
  readonly baseline: CompiledVariant;
  readonly steps: readonly number[];
  readonly stepSeconds: number;
  readonly minSamples: number;
  readonly maxErrorRateIncrease: number;
  readonly maxLatencyIncreasePercent: number;
  readonly confidence: number;
  /** The section as written, canonical: a rollout restarts only when it changes. */
  readonly key: string;
}

export interface CompiledPolicy {
  readonly sha256: string;
  readonly backends: ReadonlyMap<string, CompiledBackend>;
  readonly models: ReadonlyMap<string, CompiledModel>;
  /** Gateway-wide load shedding. */
  readonly limits: CompiledConcurrency;
  /** undefined: no auth section, and no auth stage anywhere. */
  readonly auth: CompiledAuth | undefined;
  /** Defaults (local, open) when the policy has no `rateLimit` section. */
  readonly rateLimit: CompiledRateSettings;
  /** Features the policy sets that this gateway version accepts but does not act on yet. */
  readonly warnings: readonly PolicyIssue[];
  /** The validated document, for display (`infergate policy get`, the admin view). */
  readonly document: PolicyDocument;
}

export type CompileResult =
  | { readonly ok: true; readonly policy: CompiledPolicy }
  | { readonly ok: false; readonly errors: readonly PolicyIssue[] };
