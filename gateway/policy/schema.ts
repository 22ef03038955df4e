/**
 * Policy schema version 1: the one definition that the runtime validates with and that
 * `policies/policy.schema.json` is generated from (`infergate policy schema`), so editors and the
 * gateway agree. Unknown keys are errors everywhere.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';

/** Names of backends, models and variants: what fits in a URL path segment and a metric label. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$';
/** An HTTP header name (RFC 9110 token), matched case-insensitively. */
export const HEADER_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$";
/** An endpoint: scheme, host and port, no path. */
export const ENDPOINT_PATTERN = '^https?://[^/?#\\s]+/?$';

/** Shown instead of the validator's generic message when a value fails this schema. */
function hint<T extends TSchema>(schema: T, errorMessage: string): T {
  return { ...schema, errorMessage };
}

const Name = (what: string) =>
  hint(
    Type.String({ pattern: NAME_PATTERN, description: `name of a ${what}` }),
    `must be a ${what} name (letters, digits, '_', '.', '-'; at most 128)`,
  );

/** A map keyed by names; a key that is not a valid name is reported as unknown. */
const NamedMap = <T extends TSchema>(value: T, description: string) =>
  Type.Record(Type.String({ pattern: NAME_PATTERN }), value, { additionalProperties: false, description });

const Percent = (description: string) => Type.Number({ minimum: 0, maximum: 100, description });

export const RetriesSchema = Type.Object(
  {
    attempts: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10,
        description:
          'How many times a failed attempt is retried on another endpoint (0: never). Only connect errors, broken connections, 503 answers and attempts past perTryTimeoutMs are retried, never a 4xx.',
      }),
    ),
    budgetPercent: Type.Optional(
      Percent('Retries may add at most this percentage of the requests (over 10 s), plus 10 retries.'),
    ),
    backoffMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10_000,
        description: 'Base of the jittered exponential backoff between attempts, in milliseconds.',
      }),
    ),
    perTryTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 600_000,
        description:
          'An attempt slower than this is abandoned and retried on another endpoint (within timeoutMs); absent: only the whole deadline applies.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Retry rules.' },
);

export const CircuitBreakerSchema = Type.Object(
  {
    errorThresholdPercentage: Type.Optional(Percent('Open when this percentage of calls fails.')),
    volumeThreshold: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Calls needed in the window before the breaker may open.' }),
    ),
    resetTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 3_600_000,
        description: 'How long an open breaker waits before letting a probe through.',
      }),
    ),
    windowMs: Type.Optional(
      Type.Integer({
        minimum: 100,
        maximum: 600_000,
        description: 'Rolling window the error percentage is taken over.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Per-endpoint circuit breaker.' },
);

export const HealthCheckSchema = Type.Object(
  {
    intervalMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 3_600_000,
        description: "How often each endpoint's /v2/health/ready is asked; 0 turns active checks off.",
      }),
    ),
    timeoutMs: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 60_000, description: 'A check slower than this fails.' }),
    ),
    unhealthyThreshold: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description: 'Consecutive failed checks that take an endpoint out.',
      }),
    ),
    healthyThreshold: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description: 'Consecutive passed checks that bring it back.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Active health checks of every endpoint.' },
);

export const OutlierDetectionSchema = Type.Object(
  {
    consecutiveFailures: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000,
        description: 'Consecutive failed attempts (connect errors, 5xx, timeouts) that eject an endpoint.',
      }),
    ),
    baseEjectionMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 3_600_000,
        description: 'First ejection; doubles with each repeat.',
      }),
    ),
    maxEjectionMs: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'Longest ejection.' }),
    ),
    maxEjectionPercent: Type.Optional(
      Percent("Most of a backend's endpoints that may be ejected at once (at least one)."),
    ),
  },
  { additionalProperties: false, description: 'Passive ejection of endpoints that keep failing.' },
);

export const ConcurrencySchema = Type.Object(
  {
    maxInFlight: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Requests served at once.' }),
    ),
    maxQueue: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1_000_000,
        description: 'Requests that may wait for a slot; beyond, 503.',
      }),
    ),
    queueTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 60_000,
        description: 'How long a request may wait for a slot; then 503.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Load shedding: a concurrency limit with a bounded wait.' },
);

const TimeoutMs = Type.Integer({
  minimum: 1,
  maximum: 600_000,
  description: 'Deadline of a request through the gateway, all attempts included; past it, 504.',
});

const RateLimitSchema = Type.Object(
  {
    requestsPerSecond: Type.Number({ exclusiveMinimum: 0, description: 'Sustained rate.' }),
    burst: Type.Optional(Type.Integer({ minimum: 1, description: 'Bucket size.' })),
  },
  { additionalProperties: false, description: 'Token-bucket rate limit.' },
);

const VariantSchema = Type.Object(
  {
    backend: Name('backend'),
    model: hint(
      Type.String({
        minLength: 1,
        maxLength: 256,
        pattern: '^[^/\\s]+$',
        description: 'Model name on the backend.',
      }),
      'must be a model name without slashes or spaces',
    ),
    version: Type.Optional(
      hint(
        Type.Union(
          [
            Type.String({ pattern: '^[0-9]{1,18}$' }),
            Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
          ],
          {
            description: 'Model version on the backend; absent: the backend chooses.',
          },
        ),
        'must be a version number such as "1"',
      ),
    ),
  },
  { additionalProperties: false, description: 'Where a variant of the model is served.' },
);

const RouteSchema = Type.Object(
  {
    match: Type.Object(
      {
        headers: Type.Record(
          Type.String({ pattern: HEADER_PATTERN }),
          Type.String({ maxLength: 1024, description: 'Exact value.' }),
          {
            additionalProperties: false,
            minProperties: 1,
            description: 'Every header must have this value.',
          },
        ),
      },
      { additionalProperties: false },
    ),
    variant: Name('variant'),
  },
  { additionalProperties: false, description: 'An explicit rule, checked before the split.' },
);

const ModelSchema = Type.Object(
  {
    variants: Type.Record(Type.String({ pattern: NAME_PATTERN }), VariantSchema, {
      additionalProperties: false,
      minProperties: 1,
      description: 'Variants of the model by name.',
    }),
    split: Type.Optional(
      NamedMap(
        Type.Number({ minimum: 0, maximum: 1_000_000, description: 'Relative weight.' }),
        'Weighted split between variants; may be left out when there is one variant.',
      ),
    ),
    sticky: Type.Optional(
      Type.Object(
        {
          header: hint(
            Type.String({ pattern: HEADER_PATTERN, description: 'Request header naming the user.' }),
            'must be an HTTP header name',
          ),
        },
        { additionalProperties: false, description: 'One user always sees one variant while weights stay.' },
      ),
    ),
    routes: Type.Optional(Type.Array(RouteSchema, { maxItems: 256 })),
    shadow: Type.Optional(
      Type.Object(
        { variant: Name('variant'), percent: Percent('Share of requests mirrored.') },
        {
          additionalProperties: false,
          description: 'Mirror requests to a variant; never affects the reply.',
        },
      ),
    ),
    canary: Type.Optional(
      Type.Object(
        {
          variant: Name('variant'),
          steps: Type.Array(Percent('Weight of the canary at this step.'), { minItems: 1, maxItems: 100 }),
          intervalSeconds: Type.Number({ exclusiveMinimum: 0 }),
          maxErrorRate: Type.Number({ minimum: 0, maximum: 1 }),
          maxLatencyP99Ms: Type.Number({ exclusiveMinimum: 0 }),
        },
        { additionalProperties: false, description: 'Automatic progressive rollout.' },
      ),
    ),
    rateLimit: Type.Optional(RateLimitSchema),
    concurrency: Type.Optional(ConcurrencySchema),
    timeoutMs: Type.Optional(TimeoutMs),
    retries: Type.Optional(RetriesSchema),
  },
  { additionalProperties: false },
);

const BackendSchema = Type.Object(
  {
    endpoints: Type.Array(
      hint(
        Type.String({ pattern: ENDPOINT_PATTERN, description: 'http(s)://host:port of one replica.' }),
        'must be an http(s)://host:port URL without a path',
      ),
      { minItems: 1, maxItems: 1024, uniqueItems: true },
    ),
    circuitBreaker: Type.Optional(CircuitBreakerSchema),
    healthCheck: Type.Optional(HealthCheckSchema),
    outlierDetection: Type.Optional(OutlierDetectionSchema),
  },
  { additionalProperties: false, description: 'A pool of replicas that serve the same models.' },
);

const AuthSchema = Type.Object(
  {
    required: Type.Boolean(),
    apiKeys: Type.Optional(
      Type.Array(
        Type.Object(
          {
            id: Name('key'),
            sha256: hint(Type.String({ pattern: '^[0-9a-f]{64}$' }), 'must be 64 lowercase hex digits'),
            models: Type.Optional(Type.Array(Name('model'))),
            rateLimit: Type.Optional(RateLimitSchema),
          },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  { additionalProperties: false },
);

export const PolicySchema = Type.Object(
  {
    version: hint(Type.Literal(1, { description: 'Schema version.' }), 'must be 1'),
    defaults: Type.Optional(
      Type.Object(
        {
          timeoutMs: Type.Optional(TimeoutMs),
          retries: Type.Optional(RetriesSchema),
          circuitBreaker: Type.Optional(CircuitBreakerSchema),
          healthCheck: Type.Optional(HealthCheckSchema),
          outlierDetection: Type.Optional(OutlierDetectionSchema),
          concurrency: Type.Optional(ConcurrencySchema),
        },
        { additionalProperties: false },
      ),
    ),
    backends: Type.Record(Type.String({ pattern: NAME_PATTERN }), BackendSchema, {
      additionalProperties: false,
      minProperties: 1,
    }),
    models: Type.Record(Type.String({ pattern: NAME_PATTERN }), ModelSchema, {
      additionalProperties: false,
      minProperties: 1,
    }),
    limits: Type.Optional({
      ...ConcurrencySchema,
      description: 'Gateway-wide load shedding, on top of the per-model limits.',
    }),
    auth: Type.Optional(AuthSchema),
  },
  {
    title: 'infergate routing policy, version 1',
    additionalProperties: false,
  },
);

export type PolicyDocument = Static<typeof PolicySchema>;
export type ModelDocument = Static<typeof ModelSchema>;
export type RetriesDocument = Static<typeof RetriesSchema>;
export type CircuitBreakerDocument = Static<typeof CircuitBreakerSchema>;
export type HealthCheckDocument = Static<typeof HealthCheckSchema>;
export type OutlierDetectionDocument = Static<typeof OutlierDetectionSchema>;
export type ConcurrencyDocument = Static<typeof ConcurrencySchema>;

/** The JSON Schema document written to `policies/policy.schema.json`. */
export function policyJsonSchema(): Record<string, unknown> {
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (value === null || typeof value !== 'object') return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'errorMessage') continue;
      out[k] = strip(v);
    }
    return out;
  };
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...(strip(PolicySchema) as object) };
}
