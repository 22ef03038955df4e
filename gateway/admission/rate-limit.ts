/**
 * The rate-limit stage, after auth: the buckets that apply to the request (the model's, the key's,
 * the key's on this model), one decision of the store over all of them, and the answer's
 * `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers). Refused: 429
 * `GW_ERR_RATE_LIMITED` with `Retry-After`; a store that cannot decide (Redis down, failureMode
 * closed): 503 `GW_ERR_RATE_LIMIT_UNAVAILABLE`. A request that a later stage sheds gets its token back. Present only for models that have a limit or when
 * keys may carry one: a policy without limits has no such stage.
 */
import { ApiError } from '../../common/errors.js';
import { GW_ERRORS } from '../errors.js';
import type { CompiledRate } from '../policy/compile.js';
import type { AuthFacts } from './auth.js';
import type { Bucket, FailureMode, RateDecision, RateLimitStore } from './gcra.js';
import type { AdmissionStage, Verdict } from './stage.js';

export interface RateLimitStageOptions {
  readonly model: string;
  readonly modelRate: CompiledRate | undefined;
  /** The limit of each key on this model. */
  readonly keyModelRate: CompiledRate | undefined;
  /** The limit of a key that sets none itself. */
  readonly defaultKeyRate: CompiledRate | undefined;
  readonly store: RateLimitStore;
  readonly failureMode: FailureMode;
  readonly onLimited: (model: string, scope: string) => void;
}

/** Keys whose buckets a stage keeps made (see bucketsOf). */
const MAX_KEYS = 10_000;

interface KeyBuckets {
  readonly keyRate: CompiledRate | undefined;
  readonly buckets: readonly Bucket[];
  readonly policy: string;
}

function isPromise(v: RateDecision | Promise<RateDecision>): v is Promise<RateDecision> {
  return typeof (v as Promise<RateDecision>).then === 'function';
}

/** `"model";q=200;w=1`: q is the bucket size, w the seconds it takes to fill from empty. */
export function policyItem(b: Bucket): string {
  return `"${b.scope}";q=${b.rate.burst};w=${Math.max(1, Math.ceil(b.rate.burst / b.rate.requestsPerSecond))}`;
}

export function rateLimitStage(opts: RateLimitStageOptions): AdmissionStage {
  const { model, modelRate, keyModelRate, defaultKeyRate, store, failureMode, onLimited } = opts;
  const modelBucket: Bucket | undefined =
    modelRate === undefined ? undefined : { key: `m:${model}`, scope: 'model', rate: modelRate };
  const modelOnly: readonly Bucket[] = modelBucket === undefined ? [] : [modelBucket];
  const modelPolicy = modelBucket === undefined ? '' : policyItem(modelBucket);

  /**
   * A key's buckets and their RateLimit-Policy item list, made once per key (and rate) and kept
   * for the stage's snapshot: per request only the remaining counts are formatted. Bounded: past
   * MAX_KEYS the cache starts over.
   */
  const perKey = new Map<string, KeyBuckets>();
  const bucketsOf = (ctx: AuthFacts): KeyBuckets | undefined => {
    const id = ctx.keyId;
    if (id === undefined) return undefined;
    const keyRate = ctx.keyLimit ?? defaultKeyRate;
    if (keyRate === undefined && keyModelRate === undefined) return undefined;
    const cached = perKey.get(id);
    if (cached !== undefined && cached.keyRate === keyRate) return cached;
    const buckets = modelBucket === undefined ? [] : [modelBucket];
    if (keyRate !== undefined) buckets.push({ key: `k:${id}`, scope: 'key', rate: keyRate });
    if (keyModelRate !== undefined)
      buckets.push({ key: `km:${id}:${model}`, scope: 'key-model', rate: keyModelRate });
    const made: KeyBuckets = { keyRate, buckets, policy: buckets.map(policyItem).join(', ') };
    if (perKey.size >= MAX_KEYS) perKey.clear();
    perKey.set(id, made);
    return made;
  };

  const finish = (ctx: AuthFacts, buckets: readonly Bucket[], policy: string, d: RateDecision): Verdict => {
    if (d.unavailable === true) {
      return {
        error: new ApiError(
          GW_ERRORS.GW_ERR_RATE_LIMIT_UNAVAILABLE,
          'the rate-limit store cannot be reached and the policy says to refuse (failureMode: closed)',
          { retryAfterSeconds: 1 },
        ),
      };
    }
    let limit = '';
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i] as Bucket;
      limit += `${i === 0 ? '' : ', '}"${b.scope}";r=${d.remaining[i]};t=${Math.ceil((d.resetMs[i] as number) / 1000)}`;
    }
    const headers = ctx.replyHeaders ?? {};
    headers['ratelimit-policy'] = policy;
    headers.ratelimit = limit;
    ctx.replyHeaders = headers;
    if (d.allowed) {
      ctx.rateCharged = buckets;
      return undefined;
    }
    let scope = '';
    for (let i = 0; i < buckets.length; i++) if (d.remaining[i] === 0) scope = (buckets[i] as Bucket).scope;
    onLimited(model, scope);
    return {
      error: new ApiError(
        GW_ERRORS.GW_ERR_RATE_LIMITED,
        `rate limit reached (${scope}${ctx.keyId === undefined ? '' : ` of '${ctx.keyId}'`} on model '${model}'); retry later`,
        { retryAfterSeconds: Math.max(1, Math.ceil(d.retryAfterMs / 1000)) },
      ),
    };
  };

  return {
    name: 'rate-limit',
    admit(ctx: AuthFacts): Verdict | Promise<Verdict> {
      const own = bucketsOf(ctx);
      const buckets = own === undefined ? modelOnly : own.buckets;
      if (buckets.length === 0) return undefined;
      const policy = own === undefined ? modelPolicy : own.policy;
      const d = store.take(buckets, failureMode);
      if (isPromise(d)) return d.then((later) => finish(ctx, buckets, policy, later));
      return finish(ctx, buckets, policy, d);
    },
    release(ctx: AuthFacts): void {
      const charged = ctx.rateCharged;
      if (charged === undefined) return;
      ctx.rateCharged = undefined;
      // Refused by a stage after this one (shed): never served, so its token goes back.
      if (ctx.refusedBy !== undefined) store.refund(charged);
    },
  };
}
