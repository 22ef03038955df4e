/**
 * Load shedding as admission stages: a concurrency slot at the gateway, then one for the model,
 * each with a bounded wait; beyond it the request is refused with 503 and `Retry-After`.
 */
import { ApiError } from '../../common/errors.js';
import { GW_ERRORS } from '../errors.js';
import type { ConcurrencyLimiter, Refusal as LimiterRefusal } from './limiter.js';
import type { AdmissionFacts, AdmissionStage, Refusal, Verdict } from './stage.js';

export type ShedScope = 'gateway' | 'model';

/** Told of each request shed: its logical model, the scope, and why. */
export type OnShed = (model: string, scope: ShedScope, reason: LimiterRefusal) => void;

export function concurrencyStage(
  scope: ShedScope,
  limiter: ConcurrencyLimiter,
  onShed: OnShed,
): AdmissionStage {
  const refusal = (ctx: AdmissionFacts, reason: LimiterRefusal): Refusal => {
    onShed(ctx.modelName, scope, reason);
    return {
      error: new ApiError(
        GW_ERRORS.GW_ERR_OVERLOADED,
        scope === 'gateway'
          ? 'the gateway is at its concurrency limit; retry later'
          : `model '${ctx.modelName}' is at its concurrency limit; retry later`,
        { retryAfterSeconds: 1 },
      ),
    };
  };
  return {
    name: `${scope}-concurrency`,
    admit(ctx: AdmissionFacts): Verdict | Promise<Verdict> {
      if (limiter.tryAcquire()) return undefined;
      return limiter.acquire().then((reason) => (reason === undefined ? undefined : refusal(ctx, reason)));
    },
    release(): void {
      limiter.release();
    },
  };
}
