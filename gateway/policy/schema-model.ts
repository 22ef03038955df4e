/**
 * Schema of one entry of the `models` section: variants, the weighted split, stickiness, explicit
 * routes, shadow, canary, the per-model limits and whether it is public.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { Type } from '@sinclair/typebox';
import { HEADER_PATTERN, hint, NAME_PATTERN, Name, NamedMap } from './schema-common.js';
import { ModelRateLimitSchema } from './schema-auth.js';
import { CanarySchema, ShadowSchema } from './schema-rollout.js';
import { BatchSchema, ConcurrencySchema, RetriesSchema, TimeoutMs } from './schema-upstream.js';

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

export const ModelSchema = Type.Object(
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
    shadow: Type.Optional(ShadowSchema),
    canary: Type.Optional(CanarySchema),
    rateLimit: Type.Optional(ModelRateLimitSchema),
    public: Type.Optional(
      Type.Boolean({ description: 'Served without a credential even when auth is required.' }),
    ),
    concurrency: Type.Optional(ConcurrencySchema),
    batch: Type.Optional(BatchSchema),
    timeoutMs: Type.Optional(TimeoutMs),
    retries: Type.Optional(RetriesSchema),
  },
  { additionalProperties: false },
);
