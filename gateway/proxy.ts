/**
 * admit -> route -> forward: one request to a model, from its context and body to the upstream's
 * result. The HTTP route calls it; shadow copies and batch jobs will too. It never throws and
 * records every decision in the context.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Clock } from '../common/clock.js';
import { ApiError } from '../common/errors.js';
import { admit, release } from './admission/stage.js';
import type { RequestContext } from './context.js';
import { GW_ERRORS } from './errors.js';
import { type RandomSource, route } from './router.js';
import type { VariantState } from './snapshot.js';
import { type ForwardResult, forward } from './upstream/forward.js';

/** A request answered by the gateway itself: refused by a stage, or no such model or version. */
export interface Refused {
  readonly kind: 'refused';
  readonly error: ApiError;
}

export type ProxyResult = Refused | ForwardResult;

const CANCELLED: ForwardResult = Object.freeze({ kind: 'cancelled' });

/** Request headers passed on to the backend; everything else stays at the gateway. */
const FORWARDED_REQUEST_HEADERS = [
  'content-type',
  'inference-header-content-length',
  'accept',
  'traceparent',
  'tracestate',
] as const;

/** What the proxy needs besides the request: the clock and the random source, injected. */
export interface ProxyEnv {
  readonly clock: Clock;
  readonly random: RandomSource;
}

export async function proxy(ctx: RequestContext, body: Buffer | null, env: ProxyEnv): Promise<ProxyResult> {
  const model = ctx.snapshot.models.get(ctx.modelName);
  if (model === undefined) {
    // With auth required, a caller without a valid credential learns nothing of the model names.
    const gate = ctx.snapshot.authGate;
    if (gate !== undefined) {
      const pendingGate = admit([gate], ctx);
      const refused = pendingGate === undefined ? undefined : await pendingGate;
      release([gate], ctx);
      if (refused !== undefined) {
        ctx.outcome = 'refused';
        return { kind: 'refused', error: refused.error };
      }
    }
    ctx.outcome = 'not_found';
    return {
      kind: 'refused',
      error: new ApiError(GW_ERRORS.GW_ERR_MODEL_NOT_FOUND, `unknown model '${ctx.modelName.slice(0, 256)}'`),
    };
  }
  ctx.model = model;

  const pending = admit(model.admission, ctx);
  const refusal = pending === undefined ? undefined : await pending;
  if (refusal !== undefined) {
    ctx.outcome = 'refused';
    return { kind: 'refused', error: refusal.error };
  }
  try {
    ctx.admittedAt = env.clock.now();
    const decision = route(
      ctx.snapshot.routing,
      { model: ctx.modelName, version: ctx.version, headers: ctx.headers },
      env.random,
    );
    if (!decision.ok) {
      ctx.outcome = 'not_found';
      return {
        kind: 'refused',
        error: new ApiError(
          GW_ERRORS.GW_ERR_VERSION_NOT_FOUND,
          `model '${ctx.modelName}' has no variant serving version '${String(ctx.version).slice(0, 64)}'`,
        ),
      };
    }
    const variant = model.variants.get(decision.variant) as VariantState;
    ctx.variant = variant;
    ctx.reason = decision.reason;
    if (ctx.cancel.cancelled) {
      ctx.outcome = 'cancelled';
      return CANCELLED;
    }
    const result = await forward(
      {
        method: ctx.kind === 'infer' ? 'POST' : 'GET',
        path:
          ctx.kind === 'infer'
            ? variant.variant.inferPath
            : ctx.kind === 'metadata'
              ? variant.variant.metadataPath
              : variant.variant.readyPath,
        headers: forwardHeaders(ctx.id, ctx.headers),
        body,
        endpoints: variant.endpoints,
        timeoutMs: model.model.timeoutMs,
        retries: model.model.retries,
        budget: model.budget,
        cancel: ctx.cancel,
        trace: ctx.trace,
      },
      variant,
    );
    ctx.outcome = result.kind;
    if (result.kind !== 'cancelled' && result.kind !== 'no_endpoint') ctx.attempts = result.attempts;
    if (result.kind === 'response') ctx.endpoint = result.endpoint.origin;
    return result;
  } finally {
    release(model.admission, ctx);
  }
}

/** The headers an upstream request carries: the request id and the forwarded ones (shadow copies too). */
export function forwardHeaders(id: string, headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = { 'x-request-id': id };
  for (const h of FORWARDED_REQUEST_HEADERS) {
    const v = headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return out;
}
