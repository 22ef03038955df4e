/**
 * The auth stage, first in a model's admission array when the policy has an `auth` section: the
 * request's one credential (credentials.ts), an API key looked up by its SHA-256 in the policy's
 * Map and then in the key directory (keys created with `infergate keys create`, in Redis), or a
 * JWT checked by the token verifier. 401 with `WWW-Authenticate` for a missing, malformed, unknown,
 * expired or revoked credential; 403 for a model outside its scope. The key id goes into the
 * context (`keyId`), never the key.
 */
import { ApiError } from '../../common/errors.js';
import { sha256Hex } from '../../common/hash.js';
import { GW_ERRORS } from '../errors.js';
import type { CompiledRate, KeyRecord } from '../policy/compile.js';
import { readCredential } from './credentials.js';
import type { Bucket } from './gcra.js';
import type { AdmissionFacts, AdmissionStage, Verdict } from './stage.js';

/** Keys kept outside the policy (Redis, in fleet mode), by SHA-256; read synchronously. */
export interface KeyDirectory {
  get(sha256: string): KeyRecord | undefined;
}

/** A verified token: who it names and what it may call. */
export interface TokenClaims {
  readonly subject: string;
  /** undefined: the scope claim is absent. */
  readonly models: ReadonlySet<string> | undefined;
}

/** Checks a bearer token (a JWT); rejects with a reason safe to show (never the token). */
export interface TokenVerifier {
  verify(token: string): Promise<TokenClaims>;
}

export type AuthRefusal =
  | 'missing'
  | 'malformed'
  | 'unknown_key'
  | 'expired_key'
  | 'revoked_key'
  | 'invalid_token'
  | 'forbidden';

export interface AuthStageOptions {
  /** The policy's keys by SHA-256. */
  readonly keys: ReadonlyMap<string, KeyRecord>;
  readonly directory: KeyDirectory | undefined;
  readonly tokens: TokenVerifier | undefined;
  /** true: a request without a credential passes (anonymous); a bad credential still does not. */
  readonly optional: boolean;
  /** undefined: any model (the check before a 404 for an unknown model). */
  readonly model: string | undefined;
  /** Wall-clock ms, for key expiry. */
  readonly wallClock: () => number;
  readonly onRefused: (reason: AuthRefusal) => void;
}

/** What a request that carries a key or token is allowed, for the rate-limit stage after. */
export interface AuthFacts extends AdmissionFacts {
  keyLimit?: CompiledRate | undefined;
  /** The buckets the rate-limit stage charged this request to (refunded if a later stage sheds it). */
  rateCharged?: readonly Bucket[] | undefined;
}

const CHALLENGE = 'Bearer realm="infergate"';
const INVALID = 'Bearer realm="infergate", error="invalid_token"';

export function authStage(opts: AuthStageOptions): AdmissionStage {
  const { keys, directory, tokens, optional, model, wallClock, onRefused } = opts;

  const unauthenticated = (ctx: AdmissionFacts, reason: AuthRefusal, message: string): Verdict => {
    onRefused(reason);
    ctx.replyHeaders = { 'www-authenticate': reason === 'missing' ? CHALLENGE : INVALID };
    return { error: new ApiError(GW_ERRORS.GW_ERR_UNAUTHENTICATED, message) };
  };
  const forbidden = (id: string): Verdict => {
    onRefused('forbidden');
    return {
      error: new ApiError(GW_ERRORS.GW_ERR_FORBIDDEN, `credential '${id}' may not call model '${model}'`),
    };
  };

  const byKey = (ctx: AuthFacts, value: string): Verdict => {
    const sha = sha256Hex(value);
    const rec = keys.get(sha) ?? directory?.get(sha);
    if (rec === undefined) return unauthenticated(ctx, 'unknown_key', 'unknown API key');
    if (rec.revoked) return unauthenticated(ctx, 'revoked_key', `API key '${rec.id}' was revoked`);
    if (rec.expiresAt !== undefined && wallClock() >= rec.expiresAt) {
      return unauthenticated(ctx, 'expired_key', `API key '${rec.id}' has expired`);
    }
    if (model !== undefined && rec.models !== undefined && !rec.models.has(model)) return forbidden(rec.id);
    ctx.keyId = rec.id;
    ctx.keyLimit = rec.rateLimit;
    return undefined;
  };

  const byToken = (ctx: AuthFacts, verifier: TokenVerifier, token: string): Promise<Verdict> =>
    verifier.verify(token).then(
      (claims) => {
        const id = `jwt:${claims.subject}`;
        if (model !== undefined && (claims.models === undefined || !claims.models.has(model))) {
          return forbidden(id);
        }
        ctx.keyId = id;
        return undefined;
      },
      (err: Error) => unauthenticated(ctx, 'invalid_token', `invalid token: ${err.message}`),
    );

  return {
    name: 'auth',
    admit(ctx: AuthFacts): Verdict | Promise<Verdict> {
      const c = readCredential(ctx.headers, ctx.rawHeaders);
      switch (c.kind) {
        case 'none':
          return optional
            ? undefined
            : unauthenticated(
                ctx,
                'missing',
                'a credential is required: Authorization: Bearer <key> or x-api-key',
              );
        case 'malformed':
          return unauthenticated(ctx, 'malformed', c.reason);
        case 'key':
          return byKey(ctx, c.value);
        case 'token':
          return tokens === undefined ? byKey(ctx, c.value) : byToken(ctx, tokens, c.value);
      }
    },
    release(): void {},
  };
}
