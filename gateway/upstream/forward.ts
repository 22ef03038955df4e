/**
 * One request to a backend, with a deadline and retries: the body is forwarded as bytes (never
 * parsed), each attempt goes to an endpoint picked by P2C, and a failed attempt is retried on
 * another endpoint when the failure is retryable, the retry budget allows it and time is left.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Clock } from '../../common/clock.js';
import type { CompiledRetries } from '../policy/compile.js';
import type { Endpoint } from './endpoint.js';
import { pickEndpoint } from './picker.js';
import type { RetryBudget } from './retry-budget.js';

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

export type AttemptOutcome =
  | 'ok'
  | 'client_error'
  | 'server_error'
  | 'overloaded'
  | 'network_error'
  | 'timeout'
  | 'circuit_open';

/** Set by the caller when the client has gone away; `onCancel` is installed by `forward`. */
export interface Cancellation {
  cancelled: boolean;
  onCancel: (() => void) | undefined;
}

export interface ForwardRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer | null;
  readonly endpoints: readonly Endpoint[];
  readonly timeoutMs: number;
  readonly retries: CompiledRetries;
  readonly budget: RetryBudget;
  readonly cancel?: Cancellation;
}

export interface ForwardContext {
  readonly clock: Clock;
  readonly random: () => number;
  /** Called once per attempt when it ends. */
  onAttempt?(endpoint: Endpoint, outcome: AttemptOutcome, seconds: number): void;
  /** Called when a retry is wanted; `allowed` false when the budget refused it. */
  onRetry?(reason: RetryReason, allowed: boolean): void;
}

export type ForwardResult =
  | {
      readonly kind: 'response';
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
      readonly body: Buffer;
      readonly endpoint: Endpoint;
      readonly attempts: number;
    }
  | { readonly kind: 'timeout'; readonly attempts: number; readonly endpoint: Endpoint | undefined }
  /** No endpoint of the backend can take traffic (unhealthy, ejected, breaker open, backing off). */
  | { readonly kind: 'no_endpoint'; readonly retryAfterSeconds: number }
  /** The client went away; the attempt in flight was abandoned. */
  | { readonly kind: 'cancelled' }
  | { readonly kind: 'unavailable'; readonly attempts: number; readonly error: Error | undefined };

export type RetryReason = 'network_error' | 'overloaded' | 'timeout';

class TimeoutError extends Error {
  readonly code = 'INFERGATE_TIMEOUT';
}

class CancelledError extends Error {
  readonly code = 'INFERGATE_CANCELLED';
}

/** An attempt abandoned at the policy's perTryTimeoutMs; the request may go on elsewhere. */
class PerTryTimeoutError extends Error {
  readonly code = 'INFERGATE_PER_TRY_TIMEOUT';
}

interface Deadline {
  readonly at: number;
  /** Cleared when the request ends first. */
  fire: (() => void) | undefined;
}

/**
 * Deadlines of one timeout value expire in the order they were set, so one timer per value
 * serves them all (a timer per request cost more than the rest of the deadline logic).
 */
class DeadlineQueue {
  private readonly entries: Deadline[] = [];
  private head = 0;
  private timer: unknown;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  add(fire: () => void): Deadline {
    const d: Deadline = { at: this.clock.now() + this.timeoutMs, fire };
    this.entries.push(d);
    if (this.timer === undefined) this.arm(this.timeoutMs);
    return d;
  }

  private arm(ms: number): void {
    this.timer = this.clock.setTimer(() => this.expire(), Math.max(1, ms));
  }

  private expire(): void {
    this.timer = undefined;
    const now = this.clock.now();
    while (this.head < this.entries.length) {
      const d = this.entries[this.head] as Deadline;
      if (d.fire !== undefined && d.at > now) break;
      this.head += 1;
      const fire = d.fire;
      d.fire = undefined;
      fire?.();
    }
    if (this.head === this.entries.length) {
      this.entries.length = 0;
      this.head = 0;
      return;
    }
    if (this.head > 1024) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    this.arm((this.entries[this.head] as Deadline).at - now);
  }
}

/** Deadline queues by clock and timeout value. */
const deadlineQueues = new WeakMap<Clock, Map<number, DeadlineQueue>>();

function deadlineQueue(clock: Clock, timeoutMs: number): DeadlineQueue {
  let byTimeout = deadlineQueues.get(clock);
  if (byTimeout === undefined) {
    byTimeout = new Map();
    deadlineQueues.set(clock, byTimeout);
  }
  let q = byTimeout.get(timeoutMs);
  if (q === undefined) {
    q = new DeadlineQueue(clock, timeoutMs);
    byTimeout.set(timeoutMs, q);
  }
  return q;
}

/** Collects one upstream answer; resolves once, with the response or the error. */
class Attempt implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private abortReason: Error | undefined;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private readonly chunks: Buffer[] = [];
  private settled = false;

  constructor(
    private readonly done: (
      r: { status: number; headers: IncomingHttpHeaders; body: Buffer } | { error: Error },
    ) => void,
  ) {}

  abort(reason: Error): void {
    if (this.settled) return;
    this.abortReason = reason;
    if (this.controller !== undefined) {
      this.controller.abort(reason);
    } else {
      // Still queued in the pool (no connection yet): settle now, so that a deadline holds even
      // then; when undici starts it later, onRequestStart aborts it before anything is sent.
      this.settled = true;
      this.done({ error: reason });
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason !== undefined) controller.abort(this.abortReason);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settled) return;
    this.settled = true;
    const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.done({ status: this.status, headers: this.headers, body });
  }

  onResponseError(_c: Dispatcher.DispatchController, error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.done({ error: this.abortReason ?? error });
  }
}

type AttemptResult = { status: number; headers: IncomingHttpHeaders; body: Buffer } | { error: Error };

/** What counts against an endpoint (breaker, ejection): no answer, a timeout, or a 5xx. */
function isFailure(r: AttemptResult): boolean {
  return 'error' in r || r.status >= 500;
}

/** The endpoints that may take traffic now; the same array when all may (no allocation). */
function availableEndpoints(endpoints: readonly Endpoint[], now: number): readonly Endpoint[] {
  for (let i = 0; i < endpoints.length; i++) {
    if (!(endpoints[i] as Endpoint).available(now)) return endpoints.filter((e) => e.available(now));
  }
  return endpoints;
}

/** Seconds until the first endpoint may take traffic again (at least 1). */
function retryAfter(endpoints: readonly Endpoint[], now: number): number {
  let soonest = Number.POSITIVE_INFINITY;
  for (const e of endpoints) soonest = Math.min(soonest, e.returnsAt(now));
  return Number.isFinite(soonest) ? Math.max(1, Math.ceil((soonest - now) / 1000)) : 1;
}

function isRetryableError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && RETRYABLE_ERROR_CODES.has(code);
}

/** Sends the request, retrying as the policy allows, and never throws. */
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
  let attempts = 0;
  let lastEndpoint: Endpoint | undefined;
  let lastError: Error | undefined;
  let lastOverloaded: (ForwardResult & { kind: 'response' }) | undefined;
  try {
    for (;;) {
      if (lastEndpoint !== undefined) {
        tried ??= new Set();
        tried.add(lastEndpoint);
      }
      const now = clock.now();
      let candidates = availableEndpoints(req.endpoints, now);
      if (refused !== undefined) {
        const out = refused;
        candidates = candidates.filter((e) => !out.has(e));
      }
      const endpoint = pickEndpoint(candidates, random, tried);
      if (endpoint === undefined) {
        if (attempts === 0) return { kind: 'no_endpoint', retryAfterSeconds: retryAfter(req.endpoints, now) };
        break;
      }
      if (pendingRetry !== undefined) {
        // A retry is charged to the budget only when there is an endpoint to send it to.
        const allowed = req.budget.tryRetry(req.retries.budgetPercent);
        ctx.onRetry?.(pendingRetry, allowed);
        pendingRetry = undefined;
        if (!allowed) break;
      }
      lastEndpoint = endpoint;
      attempts += 1;
      const started = clock.now();
      endpoint.outstanding += 1;
      const perTry =
        req.retries.perTryTimeoutMs > 0
          ? deadlineQueue(clock, req.retries.perTryTimeoutMs).add(() =>
              current?.abort(new PerTryTimeoutError('attempt took longer than perTryTimeoutMs')),
            )
          : undefined;
      const sent = endpoint.run(
        () =>
          new Promise<AttemptResult>((resolve) => {
            const attempt = new Attempt(resolve);
            current = attempt;
            try {
              endpoint.pool.dispatch(
                {
                  origin: endpoint.origin,
                  method: req.method,
                  path: req.path,
                  headers: req.headers,
                  body: req.body,
                },
                attempt,
              );
            } catch (e) {
              resolve({ error: e as Error });
            }
          }),
        isFailure,
      );
      const result = await sent;
      if (perTry !== undefined) perTry.fire = undefined;
      endpoint.outstanding -= 1;
      current = undefined;
      if (cancel?.cancelled) return { kind: 'cancelled' };
      const seconds = (clock.now() - started) / 1000;

      let retryReason: RetryReason;
      if (result === undefined) {
        // The breaker refused (it opened since the pick, or the endpoint was closed): nothing was
        // sent. Never pick it again for this request; pick another.
        ctx.onAttempt?.(endpoint, 'circuit_open', seconds);
        attempts -= 1;
        refused ??= new Set();
        refused.add(endpoint);
        lastEndpoint = undefined;
        if (timedOut) return { kind: 'timeout', attempts, endpoint };
        continue;
      }
      if (isFailure(result)) {
        endpoint.recordFailure(req.endpoints);
        if ('error' in result && CONNECT_ERROR_CODES.has((result.error as { code?: string }).code ?? '')) {
          endpoint.failFast();
        }
      } else {
        endpoint.recordSuccess();
      }
      if ('error' in result) {
        if (timedOut) {
          ctx.onAttempt?.(endpoint, 'timeout', seconds);
          return { kind: 'timeout', attempts, endpoint };
        }
        if (result.error instanceof PerTryTimeoutError) {
          ctx.onAttempt?.(endpoint, 'timeout', seconds);
          lastError = result.error;
          retryReason = 'timeout';
        } else {
          const retryable = isRetryableError(result.error);
          ctx.onAttempt?.(endpoint, 'network_error', seconds);
          lastError = result.error;
          if (!retryable) return { kind: 'unavailable', attempts, error: result.error };
          retryReason = 'network_error';
        }
      } else {
        const { status } = result;
        if (!RETRYABLE_STATUSES.has(status)) {
          ctx.onAttempt?.(
            endpoint,
            status < 400 ? 'ok' : status < 500 ? 'client_error' : 'server_error',
            seconds,
          );
          return { kind: 'response', ...result, endpoint, attempts };
        }
        ctx.onAttempt?.(endpoint, 'overloaded', seconds);
        endpoint.backOff(Number(result.headers['retry-after']));
        lastOverloaded = { kind: 'response', ...result, endpoint, attempts };
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
    return { ...lastOverloaded, attempts };
  }
  if (lastError instanceof PerTryTimeoutError) return { kind: 'timeout', attempts, endpoint: lastEndpoint };
  return { kind: 'unavailable', attempts, error: lastError };
}
