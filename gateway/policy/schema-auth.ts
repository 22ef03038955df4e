/**
 * Schema of the `auth` section (API keys by their SHA-256, JWT against a JWKS) and of the
 * top-level `rateLimit` settings (local or global buckets, and what happens when Redis is down).
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { Type } from '@sinclair/typebox';
import { hint, Name } from './schema-common.js';

/** An RFC 3339 time with its offset; the compiler checks that it is a real date. */
const RFC3339 = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$';

export const RateLimitSchema = Type.Object(
  {
    requestsPerSecond: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1_000_000,
      description: 'Sustained rate.',
    }),
    burst: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 10_000_000,
        description: 'Bucket size: requests allowed at once (default: one second of the rate).',
      }),
    ),
  },
  { additionalProperties: false, description: 'A token bucket (GCRA): a rate and a burst.' },
);

/** A model's limit, with an optional limit for each key on that model. */
export const ModelRateLimitSchema = Type.Object(
  {
    ...RateLimitSchema.properties,
    perKey: Type.Optional({ ...RateLimitSchema, description: 'The limit of each key on this model.' }),
  },
  {
    additionalProperties: false,
    description: 'Limits of the model (all keys together) and of each key on it.',
  },
);

const ApiKeySchema = Type.Object(
  {
    id: Name('key'),
    sha256: hint(Type.String({ pattern: '^[0-9a-f]{64}$' }), 'must be 64 lowercase hex digits'),
    models: Type.Optional(Type.Array(Name('model'), { maxItems: 1024 })),
    rateLimit: Type.Optional(RateLimitSchema),
    expiresAt: Type.Optional(
      hint(
        Type.String({ pattern: RFC3339, description: 'When the key stops working (RFC 3339).' }),
        'must be an RFC 3339 time such as 2027-01-31T00:00:00Z',
      ),
    ),
  },
  { additionalProperties: false, description: 'One API key, by the SHA-256 of its text.' },
);

export const JWT_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;

const JwtSchema = Type.Object(
  {
    jwksFile: Type.Optional(
      Type.String({ minLength: 1, description: 'A JWKS file (re-read when it changes).' }),
    ),
    jwksUrl: Type.Optional(
      hint(
        Type.String({ pattern: '^https?://[^\\s]+$', description: 'A JWKS URL.' }),
        'must be an http(s) URL',
      ),
    ),
    issuer: Type.String({ minLength: 1, description: 'Required `iss`.' }),
    audience: Type.String({ minLength: 1, description: 'Required `aud`.' }),
    algorithms: Type.Optional(
      Type.Array(
        hint(
          Type.Union(JWT_ALGORITHMS.map((a) => Type.Literal(a))),
          `must be one of ${JWT_ALGORITHMS.join(', ')}`,
        ),
        { minItems: 1, uniqueItems: true },
      ),
    ),
    clockSkewSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 300 })),
    modelsClaim: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    refreshSeconds: Type.Optional(Type.Integer({ minimum: 10, maximum: 86_400 })),
  },
  { additionalProperties: false, description: 'Bearer JWTs verified against a JWKS.' },
);

export const AuthSchema = Type.Object(
  {
    required: Type.Boolean({
      description: 'true: every model not marked public needs a credential; false: anonymous requests pass.',
    }),
    apiKeys: Type.Optional(Type.Array(ApiKeySchema, { maxItems: 100_000 })),
    jwt: Type.Optional(JwtSchema),
  },
  { additionalProperties: false },
);

export const RateLimitSettingsSchema = Type.Object(
  {
    mode: Type.Optional(
      hint(Type.Union([Type.Literal('local'), Type.Literal('global')]), "must be 'local' or 'global'"),
    ),
    failureMode: Type.Optional(
      hint(Type.Union([Type.Literal('open'), Type.Literal('closed')]), "must be 'open' or 'closed'"),
    ),
    perKey: Type.Optional({ ...RateLimitSchema, description: 'The limit of a key that sets none itself.' }),
  },
  { additionalProperties: false, description: 'Where buckets live (local: this gateway; global: Redis).' },
);
