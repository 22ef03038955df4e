/**
 * The batch share: requests marked `x-infergate-priority: batch` (offline jobs, `infergate batch`)
 * are admitted only within `batch.maxShare` of the model's concurrency, and only while a slot is
 * free at once, at the gateway and at the model, with nobody waiting for one: they never queue,
 * so online requests are served first and batch traffic is the first to be shed under load.
 * Refused with 429 `GW_ERR_BATCH_SHED` and `Retry-After`, which the batch client backs off on.
 *
 * An online request pays one header lookup here, and a property read at release.
 */
import { ApiError } from '../../common/errors.js';
import { GW_ERRORS } from '../errors.js';
import type { ConcurrencyLimiter } from './limiter.js';
import type { AdmissionFacts, AdmissionStage, Verdict } from './stage.js';

export const PRIORITY_HEADER = 'x-infergate-priority';
export const BATCH_PRIORITY = 'batch';

/** Batch requests in flight for one model: outlives snapshots, as the model's limiter does. */
export interface BatchCount {
  inFlight: number;
}

export interface BatchShareOptions {
  readonly model: string;
  /** 0..1 of the model's `concurrency.maxInFlight`. */
  readonly maxShare: number;
  readonly count: BatchCount;
  readonly modelLimiter: ConcurrencyLimiter;
  readonly gatewayLimiter: ConcurrencyLimiter;
  readonly onShed: (model: string) => void;
}

/** Batch slots of a model: the share of its limit, at least one when the share is not 0. */
export function batchSlots(maxShare: number, maxInFlight: number): number {
  if (maxShare <= 0) return 0;
  return Math.max(1, Math.floor(maxShare * maxInFlight));
}

export function batchShareStage(opts: BatchShareOptions): AdmissionStage {
  const { count, modelLimiter, gatewayLimiter, onShed, model } = opts;
  const slots = batchSlots(opts.maxShare, modelLimiter.capacity);
  return {
    name: 'batch-share',
    admit(ctx: AdmissionFacts): Verdict {
      if (ctx.headers[PRIORITY_HEADER] !== BATCH_PRIORITY) return undefined;
      if (count.inFlight >= slots || !gatewayLimiter.hasRoom || !modelLimiter.hasRoom) {
        onShed(model);
        return {
          error: new ApiError(
            GW_ERRORS.GW_ERR_BATCH_SHED,
            `model '${ctx.modelName}' has no room for batch requests now; retry later`,
            { retryAfterSeconds: 1 },
          ),
        };
      }
      count.inFlight += 1;
      ctx.batch = true;
      return undefined;
    },
    release(ctx: AdmissionFacts): void {
      if (ctx.batch !== true) return;
      ctx.batch = false;
      count.inFlight -= 1;
    },
  };
}
