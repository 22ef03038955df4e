/**
 * The request context: one per request, created when it reaches the gateway and carried through
 * admission, routing, forwarding and the answer. It is the one object that metrics, logs, traces
 * and the audit log read, so that every stage records what it decided here and nowhere else.
 *
 * A class with every field set in the constructor: V8 gives every context one shape.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Bucket } from './admission/gcra.js';
import type { CompiledRate } from './policy/compile.js';
import type { RouteReason } from './router.js';
import type { ModelState, Snapshot, VariantState } from './snapshot.js';
import type { AttemptTrace, Cancellation } from './upstream/forward.js';

/** A request's trace (gateway/tracing.ts): its spans, made only when tracing is on. */
export interface ContextTrace extends AttemptTrace {
  readonly traceId: string;
  /** Ends the request's spans from what the context recorded. */
  end(ctx: RequestContext): void;
}

/** What the client asked of a model: an inference, its metadata, or its readiness. */
export type RequestKind = 'infer' | 'metadata' | 'ready';

/** How a request ended, for metrics, logs and the audit line. */
export type Outcome =
  /** Answered with the upstream's response (any status the backend chose). */
  | 'response'
  /** Refused by an admission stage (its name is in `refusedBy`). */
  | 'refused'
  /** No such model, or no variant with that version. */
  | 'not_found'
  | 'no_endpoint'
  | 'timeout'
  | 'unavailable'
  /** The client went away before the answer. */
  | 'cancelled';

export class RequestContext {
  /** The snapshot the request started with; it keeps it to its end, whatever reloads happen. */
  readonly snapshot: Snapshot;
  readonly id: string;
  /** Clock time (ms) at which the gateway took the request. */
  readonly arrivedAt: number;
  readonly kind: RequestKind;
  /** The logical model named in the URL, as the client wrote it. */
  readonly modelName: string;
  /** From `/versions/{v}`: pins a variant by its backend version. */
  readonly version: string | undefined;
  readonly headers: IncomingHttpHeaders;
  /** Set by the client connection's close: the attempt in flight is abandoned. */
  readonly cancel: Cancellation;

  /** The snapshot's model, once the name is known to it. */
  model: ModelState | undefined = undefined;
  /** The route decision: the variant, with what forwarding to it needs. */
  variant: VariantState | undefined = undefined;
  reason: RouteReason | undefined = undefined;
  /** The API key (or token subject) that the auth stage accepted. */
  keyId: string | undefined = undefined;
  /** That key's own rate limit, for the rate-limit stage. */
  keyLimit: CompiledRate | undefined = undefined;
  /** The buckets the rate-limit stage charged (given back if a later stage sheds the request). */
  rateCharged: readonly Bucket[] | undefined = undefined;
  /** node's rawHeaders (the auth stage refuses repeated credential headers). */
  rawHeaders: readonly string[] | undefined = undefined;
  /** Headers the admission stages add to the answer (WWW-Authenticate, RateLimit-*). */
  replyHeaders: Record<string, string> | undefined = undefined;
  /** The trace handle of the request's server span, when tracing is on. */
  trace: ContextTrace | undefined = undefined;
  /** Admission stages passed, in order; released in reverse when the request ends. */
  admitted = 0;
  /** Holds a batch slot of its model (`x-infergate-priority: batch`, the batch-share stage). */
  batch = false;
  /** The stage that refused the request. */
  refusedBy: string | undefined = undefined;
  /** Clock times (ms): admission done, answer ready. */
  admittedAt = 0;
  answeredAt = 0;
  /** Upstream attempts made, and the endpoint that answered last. */
  attempts = 0;
  endpoint: string | undefined = undefined;
  outcome: Outcome | undefined = undefined;
  /** The status code the client was answered with (499 when it went away). */
  status = 0;

  constructor(
    snapshot: Snapshot,
    id: string,
    arrivedAt: number,
    kind: RequestKind,
    modelName: string,
    version: string | undefined,
    headers: IncomingHttpHeaders,
  ) {
    this.snapshot = snapshot;
    this.id = id;
    this.arrivedAt = arrivedAt;
    this.kind = kind;
    this.modelName = modelName;
    this.version = version;
    this.headers = headers;
    this.cancel = { cancelled: false, onCancel: undefined };
  }

  /** Seconds from arrival to the answer. */
  get seconds(): number {
    return (this.answeredAt - this.arrivedAt) / 1000;
  }
}
