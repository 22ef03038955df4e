/**
 * Admission: the ordered stages a request passes before routing (auth, rate limit, concurrency,
 * batch share). The stages of a model are compiled once per snapshot into a plain array that the
 * proxy walks; a stage answers at once when it can, and returns a promise only when it must wait
 * (a concurrency slot). Stages import neither fastify, undici nor ioredis: their stores sit behind
 * small interfaces.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ApiError } from '../../common/errors.js';

/**
 * What stages read and write of a request: the request context (gateway/context.ts) is one. Kept
 * here so that the stages depend on no other gateway module.
 */
export interface AdmissionFacts {
  readonly id: string;
  readonly modelName: string;
  readonly headers: IncomingHttpHeaders;
  /** Set by the auth stage. */
  keyId: string | undefined;
  /** Stages passed so far (the runner's count). */
  admitted: number;
  refusedBy: string | undefined;
  /** node's rawHeaders, when the request came over HTTP: the auth stage sees repeated headers. */
  rawHeaders?: readonly string[] | undefined;
  /** Set by the batch-share stage while the request holds one of the model's batch slots. */
  batch?: boolean;
  /** Headers a stage adds to the answer (`WWW-Authenticate`, `RateLimit`, ...). */
  replyHeaders?: Record<string, string> | undefined;
}

/** Why a stage turned the request away: the error the client gets. */
export interface Refusal {
  readonly error: ApiError;
}

export type Verdict = Refusal | undefined;

export interface AdmissionStage {
  /** For logs and the context's `refusedBy`: `gateway-concurrency`, `model-concurrency`, ... */
  readonly name: string;
  /**
   * undefined: admitted (and `release` is owed when the request ends); a Refusal: turned away,
   * with nothing owed. A promise only when the stage has to wait.
   */
  admit(ctx: AdmissionFacts): Verdict | Promise<Verdict>;
  /** Gives back what `admit` took (a slot); called once per admitted request, in reverse order. */
  release(ctx: AdmissionFacts): void;
}

function isPromise(v: Verdict | Promise<Verdict>): v is Promise<Verdict> {
  return v !== undefined && typeof (v as Promise<Verdict>).then === 'function';
}

/**
 * Runs the stages in order from `ctx.admitted`. Resolves (synchronously when no stage waits) with
 * undefined when every stage admitted the request, or with the refusal; on a refusal the stages
 * passed so far are already released.
 */
export function admit(stages: readonly AdmissionStage[], ctx: AdmissionFacts): Verdict | Promise<Verdict> {
  while (ctx.admitted < stages.length) {
    const stage = stages[ctx.admitted] as AdmissionStage;
    const v = stage.admit(ctx);
    if (isPromise(v)) return v.then((later) => settle(stages, ctx, stage, later));
    if (v !== undefined) return refuse(stages, ctx, stage, v);
    ctx.admitted += 1;
  }
  return undefined;
}

function settle(
  stages: readonly AdmissionStage[],
  ctx: AdmissionFacts,
  stage: AdmissionStage,
  v: Verdict,
): Verdict | Promise<Verdict> {
  if (v !== undefined) return refuse(stages, ctx, stage, v);
  ctx.admitted += 1;
  return admit(stages, ctx);
}

function refuse(
  stages: readonly AdmissionStage[],
  ctx: AdmissionFacts,
  stage: AdmissionStage,
  v: Refusal,
): Refusal {
  ctx.refusedBy = stage.name;
  release(stages, ctx);
  return v;
}

/** Releases the stages the request passed, last first. Safe to call twice. */
export function release(stages: readonly AdmissionStage[], ctx: AdmissionFacts): void {
  while (ctx.admitted > 0) {
    ctx.admitted -= 1;
    (stages[ctx.admitted] as AdmissionStage).release(ctx);
  }
}
