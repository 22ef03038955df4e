import { defineErrors } from '../common/errors.js';

/** Every error the gateway answers with itself. Documented in docs/errors.md. */
export const GW_ERRORS = defineErrors({
  GW_ERR_BAD_REQUEST: [
    400,
    'The request cannot be forwarded as sent (a malformed URL, or an HTTP request the parser refuses: Content-Length with Transfer-Encoding, a bad version).',
  ],
  GW_ERR_ADMIN_UNAUTHORIZED: [
    401,
    'The admin port needs its bearer token (bound beyond loopback) and none or another was sent.',
  ],
  GW_ERR_UNAUTHENTICATED: [
    401,
    'No credential, or one that is malformed, unknown, expired or revoked; with WWW-Authenticate.',
  ],
  GW_ERR_FORBIDDEN: [403, 'The credential is valid but the model is outside its scope.'],
  GW_ERR_NOT_FOUND: [404, 'No such route at the gateway.'],
  GW_ERR_MODEL_NOT_FOUND: [404, 'The policy has no model of this name.'],
  GW_ERR_VERSION_NOT_FOUND: [404, 'No variant of the model serves this version.'],
  GW_ERR_REQUEST_TIMEOUT: [
    408,
    'The client did not send its headers (or its whole request) within the timeout; the connection closes.',
  ],
  GW_ERR_BODY_TOO_LARGE: [413, 'The body is larger than the gateway limit (64 MiB by default).'],
  GW_ERR_RATE_LIMITED: [
    429,
    'A rate limit of the key, the model or the key on the model is reached; with Retry-After and RateLimit headers.',
  ],
  GW_ERR_BATCH_SHED: [
    429,
    "A batch request (x-infergate-priority: batch) beyond the model's batch share, or while online requests want the slots; with Retry-After.",
  ],
  GW_ERR_HEADERS_TOO_LARGE: [431, 'The request headers are larger than the HTTP parser allows (16 KiB).'],
  GW_ERR_INTERNAL: [500, 'An unexpected error; the message is logged, not sent.'],
  GW_ERR_UPSTREAM_ERROR: [502, 'The backend failed (5xx) or its answer broke off.'],
  GW_ERR_UPSTREAM_UNAVAILABLE: [
    503,
    'No replica of the backend could be reached, or all were overloaded, within the retries allowed.',
  ],
  GW_ERR_NO_HEALTHY_ENDPOINT: [
    503,
    'Every endpoint of the backend is out (failing health checks, ejected, breaker open); answered at once, with Retry-After.',
  ],
  GW_ERR_OVERLOADED: [
    503,
    "The model's or the gateway's concurrency limit is reached and the wait for a slot ran out or was full; with Retry-After.",
  ],
  GW_ERR_RATE_LIMIT_UNAVAILABLE: [
    503,
    'Global rate limits cannot be checked (Redis unreachable) and the policy says failureMode: closed; with Retry-After.',
  ],
  GW_ERR_UPSTREAM_TIMEOUT: [504, "The backend did not answer within the model's timeoutMs."],
});

export type GatewayErrorCode = keyof typeof GW_ERRORS;

/** What the HTTP parser refuses, answered from the catalogue (common/client-limits.ts). */
export const GW_CLIENT_ERRORS = {
  badRequest: GW_ERRORS.GW_ERR_BAD_REQUEST,
  headersTooLarge: GW_ERRORS.GW_ERR_HEADERS_TOO_LARGE,
  timeout: GW_ERRORS.GW_ERR_REQUEST_TIMEOUT,
} as const;
