/**
 * The security stages of a model, compiled with its snapshot: auth (when the policy has an `auth`
 * section) and the rate limit (when the model, the policy or a key can carry a limit). A policy with
 * neither gets neither stage: no per-request cost at all. Also the gate that an unknown model's
 * request passes before its 404, so that names are not revealed to callers without a credential.
 */
import type { CompiledJwt, CompiledModel, CompiledPolicy } from '../policy/compile.js';
import { type AuthRefusal, authStage, type KeyDirectory, type TokenVerifier } from './auth.js';
import type { RateLimitStore } from './gcra.js';
import { rateLimitStage } from './rate-limit.js';
import type { AdmissionStage } from './stage.js';

export interface SecurityDeps {
  /** Keys outside the policy (Redis): consulted after the policy's own. */
  readonly keys?: KeyDirectory | undefined;
  /** A verifier for the policy's JWT settings (kept while the settings stay). */
  readonly tokens?: ((jwt: CompiledJwt) => TokenVerifier) | undefined;
  /** Buckets of this gateway: `rateLimit.mode: local` (the default). */
  readonly localRates: RateLimitStore;
  /** Buckets in Redis: `rateLimit.mode: global`; without it, global policies use local buckets. */
  readonly globalRates?: RateLimitStore | undefined;
  readonly wallClock: () => number;
  readonly onAuthRefused: (reason: AuthRefusal) => void;
  readonly onRateLimited: (model: string, scope: string) => void;
}

function tokensFor(policy: CompiledPolicy, deps: SecurityDeps): TokenVerifier | undefined {
  const jwt = policy.auth?.jwt;
  return jwt === undefined || deps.tokens === undefined ? undefined : deps.tokens(jwt);
}

/** The stages that go before the concurrency stages of `model`, in order (often none). */
export function securityStages(
  policy: CompiledPolicy,
  model: CompiledModel,
  deps: SecurityDeps,
  tokens: TokenVerifier | undefined = tokensFor(policy, deps),
): AdmissionStage[] {
  const stages: AdmissionStage[] = [];
  const auth = policy.auth;
  if (auth !== undefined) {
    stages.push(
      authStage({
        keys: auth.keys,
        directory: deps.keys,
        tokens,
        optional: !auth.required || model.public,
        model: model.name,
        wallClock: deps.wallClock,
        onRefused: deps.onAuthRefused,
      }),
    );
  }
  const keysMayCarryLimits =
    auth !== undefined &&
    (policy.rateLimit.perKey !== undefined ||
      deps.keys !== undefined ||
      [...auth.keys.values()].some((k) => k.rateLimit !== undefined));
  if (model.rateLimit !== undefined || model.keyRateLimit !== undefined || keysMayCarryLimits) {
    const store =
      policy.rateLimit.mode === 'global' && deps.globalRates !== undefined
        ? deps.globalRates
        : deps.localRates;
    stages.push(
      rateLimitStage({
        model: model.name,
        modelRate: model.rateLimit,
        keyModelRate: model.keyRateLimit,
        defaultKeyRate: policy.rateLimit.perKey,
        store,
        failureMode: policy.rateLimit.failureMode,
        onLimited: deps.onRateLimited,
      }),
    );
  }
  return stages;
}

/** The check an unknown model's request passes before its 404 (auth required), or undefined. */
export function unknownModelGate(
  policy: CompiledPolicy,
  deps: SecurityDeps,
  tokens: TokenVerifier | undefined = tokensFor(policy, deps),
): AdmissionStage | undefined {
  const auth = policy.auth;
  if (auth === undefined || !auth.required) return undefined;
  return authStage({
    keys: auth.keys,
    directory: deps.keys,
    tokens,
    optional: false,
    model: undefined,
    wallClock: deps.wallClock,
    onRefused: deps.onAuthRefused,
  });
}
