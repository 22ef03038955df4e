/**
 * One request to a backend, with a deadline and retries: the body is forwarded as bytes (never
 * parsed), each attempt goes to an endpoint picked by P2C, and a failed attempt is retried on
 * another endpoint when the failure is retryable, the retry budget allows it and time is left.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Clock } from '../../common/clock.js';
import type { CompiledRetries } from '../policy/compile.js';
import { type Attempt, type AttemptRequest, dispatchAttempt } from './attempt.js';
import { deadlineQueue } from './deadline.js';
import type { Endpoint } from './endpoint.js';
import {
  type AttemptOutcome,
  type AttemptResult,
  attemptOutcome,
  CANCELLED,
  CancelledError,
  classify,
  PerTryTimeoutError,
  type RetryReason,
  retryableError,
  TimeoutError,
} from './outcome.js';
import { pick } from './picker.js';
import type { RetryBudget } from './retry-budget.js';

export {
  type AttemptOutcome,
  CONNECT_ERROR_CODES,
  RETRYABLE_ERROR_CODES,
  RETRYABLE_STATUSES,
  type RetryReason,
} from './outcome.js';

/** Set by the caller when the client has gone away; `onCancel` is installed by `forward`. */
export interface Cancellation {
  cancelled: boolean;
  onCancel: (() => void) | undefined;
}

/** The request's bytes (method, path, headers, body), where to send them and under what policy. */
export interface ForwardRequest extends AttemptRequest {
  readonly endpoints: readonly Endpoint[];
  readonly timeoutMs: number;
  readonly retries: CompiledRetries;
  readonly budget: RetryBudget;
  readonly cancel?: Cancellation;
  /** The request's trace when tracing is on: a span and a `traceparent` per attempt. */
  readonly trace?: AttemptTrace | undefined;
}

/** Makes each attempt's span and the request it sends (its own `traceparent`). */
export interface AttemptTrace {
  start(
    origin: string,
    attempt: number,
    retryOf: RetryReason | undefined,
    req: AttemptRequest,
    now: number,
  ): TracedAttempt;
}
export interface TracedAttempt {
  readonly request: AttemptRequest;
  end(outcome: AttemptOutcome | 'cancelled', status: number, error: Error | undefined, now: number): void;
}

export interface ForwardContext {
  readonly clock: Clock;
  readonly random: () => number;
  /** Called once per attempt when it ends. */
  onAttempt?(endpoint: Endpoint, outcome: AttemptOutcome, seconds: number): void;
  /** Called when a retry is wanted; `allowed` false when the budget refused it. */
  onRetry?(reason: RetryReason, allowed: boolean): void;
}

/** The upstream's answer: the result of most requests. */
export interface ForwardResponse {
  readonly kind: 'response';
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly endpoint: Endpoint;
  readonly attempts: number;
}

export type ForwardResult =
  | ForwardResponse
  | { readonly kind: 'timeout'; readonly attempts: number; readonly endpoint: Endpoint | undefined }
  /** No endpoint of the backend can take traffic (unhealthy, ejected, breaker open, backing off). */
  | { readonly kind: 'no_endpoint'; readonly retryAfterSeconds: number }
  /** The client went away; the attempt in flight was abandoned. */
  | { readonly kind: 'cancelled' }
  | { readonly kind: 'unavailable'; readonly attempts: number; readonly error: Error | undefined };

/** Seconds until the first endpoint may take traffic again (at least 1). */
function retryAfter(endpoints: readonly Endpoint[], now: number): number {
  let soonest = Number.POSITIVE_INFINITY;
  for (const e of endpoints) soonest = Math.min(soonest, e.returnsAt(now));
  return Number.isFinite(soonest) ? Math.max(1, Math.ceil((soonest - now) / 1000)) : 1;
}

/**
 * Sends the request, retrying as the policy allows, and never throws. Each attempt: pick an
 * endpoint (filter, then P2C), `admit` it through its breaker, send, classify the result, and
 * `settle` it on the endpoint, which decides what that does to its standing.
 */
export async function forward(req: ForwardRequest, ctx: ForwardContext): Promise<ForwardResult> {
  const { clock, random } = ctx;
  const deadline = clock.now() + req.timeoutMs;
  let current: Attempt | undefined;
  let timedOut = false;
  let wakeBackoff: (() => void) | undefined;
  const timer = deadlineQueue(clock, req.timeoutMs).add(() => {
    timedOut = true;
    current?.abort(new TimeoutError('deadline passed'));
    wakeBackoff?.();
  });

  const { cancel } = req;
  if (cancel !== undefined) {
    cancel.onCancel = () => {
      current?.abort(new CancelledError('the client went away'));
      wakeBackoff?.();
    };
  }
  req.budget.recordRequest();
  // Endpoints already tried, for retries; made on the first retry only.
  let tried: Set<Endpoint> | undefined;
  // Endpoints whose breaker refused the call: out of the running for this request.
  let refused: Set<Endpoint> | undefined;
  let pendingRetry: RetryReason | undefined;
  // What the next attempt is a retry of (for its span).
  let retryOf: RetryReason | undefined;
  let attempts = 0;
  let lastEndpoint: Endpoint | undefined;
  let lastError: Error | undefined;
  let lastOverloaded: ForwardResponse | undefined;
  try {
    for (;;) {
      if (lastEndpoint !== undefined) {
        tried ??= new Set();
        tried.add(lastEndpoint);
      }
      const now = clock.now();
      const endpoint = pick(req.endpoints, now, random, refused, tried);
      if (endpoint === undefined) {
        if (attempts === 0) return { kind: 'no_endpoint', retryAfterSeconds: retryAfter(req.endpoints, now) };
        break;
      }
      if (pendingRetry !== undefined) {
        // A retry is charged to the budget only when there is an endpoint to send it to.
        const allowed = req.budget.tryRetry(req.retries.budgetPercent);
        ctx.onRetry?.(pendingRetry, allowed);
        retryOf = pendingRetry;
        pendingRetry = undefined;
        if (!allowed) break;
      }
      if (!endpoint.admit()) {
        // The breaker refused (it opened since the pick, or the endpoint was closed): nothing was
        // sent. Never pick it again for this request; pick another.
        ctx.onAttempt?.(endpoint, 'circuit_open', 0);
        refused ??= new Set();
        refused.add(endpoint);
        lastEndpoint = undefined;
        continue;
      }
      lastEndpoint = endpoint;
      attempts += 1;
      const started = clock.now();
      const perTry =
        req.retries.perTryTimeoutMs > 0
          ? deadlineQueue(clock, req.retries.perTryTimeoutMs).add(() =>
              current?.abort(new PerTryTimeoutError('attempt took longer than perTryTimeoutMs')),
            )
          : undefined;
      const traced = req.trace?.start(endpoint.origin, attempts, retryOf, req, started);
      retryOf = undefined;
      const result = await new Promise<AttemptResult>((resolve) => {
        current = dispatchAttempt(endpoint.dispatcher, endpoint.origin, traced?.request ?? req, resolve);
      });
      if (perTry !== undefined) perTry.fire = undefined;
      current = undefined;
      if (cancel?.cancelled) {
        endpoint.settle(CANCELLED, req.endpoints);
        traced?.end('cancelled', 0, undefined, clock.now());
        return { kind: 'cancelled' };
      }
      const outcome = classify(result, timedOut);
      endpoint.settle(outcome, req.endpoints);
      if (traced !== undefined) {
        if ('error' in result) traced.end(attemptOutcome(outcome), 0, result.error, clock.now());
        else traced.end(attemptOutcome(outcome), result.status, undefined, clock.now());
      }
      ctx.onAttempt?.(endpoint, attemptOutcome(outcome), (clock.now() - started) / 1000);

      let retryReason: RetryReason;
      if ('error' in result) {
        if (timedOut) return { kind: 'timeout', attempts, endpoint };
        lastError = result.error;
        if (outcome.kind === 'per_try_timeout') {
          retryReason = 'timeout';
        } else {
          if (!retryableError(outcome)) return { kind: 'unavailable', attempts, error: result.error };
          retryReason = 'network_error';
        }
      } else {
        if (outcome.kind !== 'overloaded') return response(result, endpoint, attempts);
        lastOverloaded = response(result, endpoint, attempts);
        retryReason = 'overloaded';
      }

      // Retry? Only within the attempts, the time and the budget allowed.
      if (attempts > req.retries.attempts || timedOut) break;
      if (!req.budget.canRetry(req.retries.budgetPercent)) {
        ctx.onRetry?.(retryReason, false);
        break;
      }
      const backoff = random() * req.retries.backoffMs * 2 ** (attempts - 1);
      if (clock.now() + backoff >= deadline) break;
      if (backoff >= 1) {
        let handle: unknown;
        await new Promise<void>((resolve) => {
          wakeBackoff = resolve;
          handle = clock.setTimer(resolve, backoff);
        });
        clock.clearTimer(handle);
        wakeBackoff = undefined;
        if (timedOut) return { kind: 'timeout', attempts, endpoint: lastEndpoint };
        if (cancel?.cancelled) return { kind: 'cancelled' };
      }
      pendingRetry = retryReason;
    }
  } finally {
    timer.fire = undefined;
    if (cancel !== undefined) cancel.onCancel = undefined;
  }
  if (timedOut) return { kind: 'timeout', attempts, endpoint: lastEndpoint };
  if (lastOverloaded !== undefined && (lastError === undefined || lastOverloaded.attempts === attempts)) {
    return response(lastOverloaded, lastOverloaded.endpoint, attempts);
  }
  if (lastError instanceof PerTryTimeoutError) return { kind: 'timeout', attempts, endpoint: lastEndpoint };
  return { kind: 'unavailable', attempts, error: lastError };
}

/** An answer as forward's result (one shape for all of them). */
function response(
  r: { readonly status: number; readonly headers: IncomingHttpHeaders; readonly body: Buffer },
  endpoint: Endpoint,
  attempts: number,
): ForwardResponse {
  return { kind: 'response', status: r.status, headers: r.headers, body: r.body, endpoint, attempts };
}
