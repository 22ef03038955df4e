/**
 * Policy schema version 1: the one definition that the runtime validates with and that
 * `policies/policy.schema.json` is generated from (`infergate policy schema`), so editors and the
 * gateway agree. Unknown keys are errors everywhere.
 *
 * The sections live beside this file (`schema-common.ts`, `schema-upstream.ts`,
 * `schema-model.ts`); this file assembles the document and re-exports their public names.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ENDPOINT_PATTERN, hint, NAME_PATTERN } from './schema-common.js';
import { AuthSchema, type RateLimitSchema, RateLimitSettingsSchema } from './schema-auth.js';
import { ModelSchema } from './schema-model.js';
import {
  BatchSchema,
  CircuitBreakerSchema,
  ConcurrencySchema,
  HealthCheckSchema,
  OutlierDetectionSchema,
  RetriesSchema,
  TimeoutMs,
  UpstreamTlsSchema,
} from './schema-upstream.js';

export { ENDPOINT_PATTERN, HEADER_PATTERN, NAME_PATTERN } from './schema-common.js';
export {
  CircuitBreakerSchema,
  ConcurrencySchema,
  HealthCheckSchema,
  OutlierDetectionSchema,
  RetriesSchema,
} from './schema-upstream.js';

const BackendSchema = Type.Object(
  {
    endpoints: Type.Array(
      hint(
        Type.String({ pattern: ENDPOINT_PATTERN, description: 'http(s)://host:port of one replica.' }),
        'must be an http(s)://host:port URL without a path',
      ),
      {
        maxItems: 1024,
        uniqueItems: true,
        description:
          'The replicas listed here. May be empty in fleet mode: then only replicas that register themselves under this backend name serve it.',
      },
    ),
    circuitBreaker: Type.Optional(CircuitBreakerSchema),
    healthCheck: Type.Optional(HealthCheckSchema),
    outlierDetection: Type.Optional(OutlierDetectionSchema),
    tls: Type.Optional(UpstreamTlsSchema),
  },
  { additionalProperties: false, description: 'A pool of replicas that serve the same models.' },
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
    batch: Type.Optional({
      ...BatchSchema,
      description: 'Offline batch traffic for every model that sets no batch section of its own.',
    }),
    auth: Type.Optional(AuthSchema),
    rateLimit: Type.Optional(RateLimitSettingsSchema),
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
export type BatchDocument = Static<typeof BatchSchema>;
export type AuthDocument = Static<typeof AuthSchema>;
export type RateLimitDocument = Static<typeof RateLimitSchema>;
export type RateLimitSettingsDocument = Static<typeof RateLimitSettingsSchema>;

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
