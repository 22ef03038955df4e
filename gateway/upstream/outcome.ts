/**
 * What one attempt's result was: the explicit lists of what is retried, and the classification
 * that `forward` hands to `Endpoint.settle` (which decides what it does to the endpoint).
 */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Network errors after which the request is sent again. Inference is treated as idempotent: a
 * model computes the same answer twice, so an attempt cut off by a dying replica is safe to repeat.
 */
export const RETRYABLE_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);
/** Errors that mean nothing listens at the endpoint: its breaker opens at once. */
export const CONNECT_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);
/** Statuses after which the request is sent again: the replica is overloaded or draining. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([503]);

/** An attempt's outcome as metrics count it. */
export type AttemptOutcome =
  | 'ok'
  | 'client_error'
  | 'server_error'
  | 'overloaded'
  | 'network_error'
  | 'timeout'
  | 'circuit_open';

export type RetryReason = 'network_error' | 'overloaded' | 'timeout';

/** How an admitted attempt ended, as `Endpoint.settle` takes it. */
export type Settlement =
  | { readonly kind: 'ok' | 'client_error' | 'server_error' }
  /** A retryable status (503); `retryAfterSeconds` is NaN without a usable `Retry-After`. */
  | { readonly kind: 'overloaded'; readonly retryAfterSeconds: number }
  | { readonly kind: 'network_error'; readonly code: string | undefined }
  /** The request's deadline cut the attempt off. */
  | { readonly kind: 'timeout' }
  /** The attempt took longer than perTryTimeoutMs and was abandoned. */
  | { readonly kind: 'per_try_timeout' }
  /** The client went away and the attempt was abandoned. */
  | { readonly kind: 'cancelled' };

/** The outcomes that carry nothing else, made once (settling allocates nothing on the hot path). */
export const OK: Settlement = Object.freeze({ kind: 'ok' });
export const CLIENT_ERROR: Settlement = Object.freeze({ kind: 'client_error' });
export const SERVER_ERROR: Settlement = Object.freeze({ kind: 'server_error' });
export const TIMEOUT: Settlement = Object.freeze({ kind: 'timeout' });
export const PER_TRY_TIMEOUT: Settlement = Object.freeze({ kind: 'per_try_timeout' });
export const CANCELLED: Settlement = Object.freeze({ kind: 'cancelled' });

export class TimeoutError extends Error {
  readonly code = 'INFERGATE_TIMEOUT';
}

export class CancelledError extends Error {
  readonly code = 'INFERGATE_CANCELLED';
}

/** An attempt abandoned at the policy's perTryTimeoutMs; the request may go on elsewhere. */
export class PerTryTimeoutError extends Error {
  readonly code = 'INFERGATE_PER_TRY_TIMEOUT';
}

/** One attempt's answer, or why there was none. */
export type AttemptResult = { status: number; headers: IncomingHttpHeaders; body: Buffer } | { error: Error };

/** The `code` of a thrown error (`ECONNREFUSED`, `UND_ERR_SOCKET`), when it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** The result's kind; `timedOut` says that the request's deadline has passed. */
export function classify(r: AttemptResult, timedOut: boolean): Settlement {
  if ('error' in r) {
    if (timedOut) return TIMEOUT;
    if (r.error instanceof PerTryTimeoutError) return PER_TRY_TIMEOUT;
    return { kind: 'network_error', code: errorCode(r.error) };
  }
  const { status } = r;
  if (RETRYABLE_STATUSES.has(status)) {
    return { kind: 'overloaded', retryAfterSeconds: Number(r.headers['retry-after']) };
  }
  return status < 400 ? OK : status < 500 ? CLIENT_ERROR : SERVER_ERROR;
}

/** A network error after which the request may be sent again (see RETRYABLE_ERROR_CODES). */
export function retryableError(outcome: Settlement): boolean {
  return outcome.kind === 'network_error' && RETRYABLE_ERROR_CODES.has(outcome.code ?? '');
}

/** What metrics call a settled attempt (forward reports no cancelled one). */
export function attemptOutcome(s: Settlement): AttemptOutcome {
  return s.kind === 'per_try_timeout' || s.kind === 'cancelled' ? 'timeout' : s.kind;
}
