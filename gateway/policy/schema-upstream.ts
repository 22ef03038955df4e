/**
 * Schema of the settings that govern calls to the upstream replicas, used both under `defaults`
 * and per backend or model: retries, circuit breaker, health checks, outlier detection,
 * concurrency (load shedding) and the request deadline.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { Type } from '@sinclair/typebox';
import { hint, Percent } from './schema-common.js';

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

export const BatchSchema = Type.Object(
  {
    maxShare: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description:
          "Share (0..1) of the model's concurrency.maxInFlight that batch requests (x-infergate-priority: batch) may hold; 0: none admitted. Default 0.5.",
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Offline batch traffic: admitted within a share of the concurrency, shed first under load.',
  },
);

export const TimeoutMs = Type.Integer({
  minimum: 1,
  maximum: 600_000,
  description: 'Deadline of a request through the gateway, all attempts included; past it, 504.',
});

/** A file on the gateway's host, named by its absolute path. */
const AbsolutePath = (description: string) =>
  hint(Type.String({ pattern: '^/[^\\0]*$', maxLength: 4096, description }), 'must be an absolute file path');

export const UpstreamTlsSchema = Type.Object(
  {
    ca: Type.Optional(
      AbsolutePath(
        "PEM CA certificate(s) that signed the replicas' certificates (default: the system's CAs).",
      ),
    ),
    cert: Type.Optional(AbsolutePath('PEM client certificate the gateway presents to the replicas (mTLS).')),
    key: Type.Optional(AbsolutePath('PEM private key of the client certificate.')),
    serverName: Type.Optional(
      hint(
        Type.String({
          pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$',
          description:
            "Host name the replicas' certificates must carry (SNI), when it is not the endpoint's host.",
        }),
        'must be a DNS host name',
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      "TLS to this backend's replicas (https:// endpoints): the CA to trust, a client certificate and key (mTLS), the server name. Files are read on the gateway's host when the policy is applied.",
  },
);
