/**
 * Schema of a model's rollout sections: `shadow` (mirror a share of requests to a variant and
 * compare its outputs with the answer's) and `canary` (step a variant's weight up while it is
 * judged against a baseline serving at the same time).
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { Type } from '@sinclair/typebox';
import { NAME_PATTERN, Name, Percent } from './schema-common.js';

export const ShadowSchema = Type.Object(
  {
    variant: Name('variant'),
    percent: Percent('Share of requests mirrored.'),
    timeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 600_000,
        description: 'Deadline of a shadow copy (default 2000).',
      }),
    ),
    maxInFlight: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100_000,
        description:
          'Shadow copies outstanding at once; beyond, copies are dropped and counted (default 64).',
      }),
    ),
    classifications: Type.Optional(
      Type.Array(Type.String({ pattern: NAME_PATTERN }), {
        maxItems: 64,
        description: 'Outputs whose last dimension holds class scores: top-1 agreement is measured on them.',
      }),
    ),
    tolerance: Type.Optional(
      Type.Number({
        minimum: 0,
        description: 'Largest absolute difference that still counts as agreement (default 1e-6).',
      }),
    ),
    noiseFloorPercent: Type.Optional(
      Percent(
        'Share of requests replayed to the primary variant itself, to measure its own noise (default 0).',
      ),
    ),
    logTensors: Type.Optional(
      Type.Boolean({ description: 'Log the first values of disagreeing outputs (default false).' }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Mirror requests to a variant and compare its outputs; never affects the reply.',
  },
);

export const CanarySchema = Type.Object(
  {
    variant: Name('variant'),
    baseline: Name('variant'),
    steps: Type.Array(Percent('Weight of the canary at this step.'), { minItems: 1, maxItems: 100 }),
    stepSeconds: Type.Number({
      exclusiveMinimum: 0,
      maximum: 86_400,
      description: 'Least time a step lasts.',
    }),
    minSamples: Type.Integer({
      minimum: 1,
      maximum: 10_000_000,
      description: 'Requests each variant must have answered in a step before it is judged.',
    }),
    maxErrorRateIncrease: Type.Number({
      minimum: 0,
      maximum: 1,
      description: 'Error rate the canary may have above the baseline (0.01: one point).',
    }),
    maxLatencyIncreasePercent: Type.Number({
      minimum: 0,
      maximum: 10_000,
      description: 'How much slower than the baseline the canary may be.',
    }),
    confidence: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0.5,
        exclusiveMaximum: 1,
        description: 'Confidence of a rollback over the whole rollout (default 0.95).',
      }),
    ),
  },
  { additionalProperties: false, description: 'Automatic progressive rollout, judged against a baseline.' },
);
