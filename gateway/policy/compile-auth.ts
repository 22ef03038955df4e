/**
 * The `auth` section (API keys by their SHA-256, JWT settings) and the rate limits: keys indexed by
 * hash in a Map, expiry times parsed, duplicate ids and hashes refused, a model scope naming an
 * unknown model refused, every limit given its burst.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { at } from './compile-issues.js';
import type {
  CompiledAuth,
  CompiledJwt,
  CompiledRate,
  CompiledRateSettings,
  KeyRecord,
  PolicyIssue,
} from './compiled.js';
import { JWT_ALGORITHMS } from './schema-auth.js';
import type { AuthDocument, RateLimitDocument, RateLimitSettingsDocument } from './schema.js';

export const DEFAULT_JWT_CLOCK_SKEW_SECONDS = 30;
export const DEFAULT_JWT_MODELS_CLAIM = 'models';
export const DEFAULT_JWKS_REFRESH_SECONDS = 300;

/** A limit with its burst: one second of the rate (at least 1) when the policy sets none. */
export function compileRate(doc: RateLimitDocument | undefined): CompiledRate | undefined {
  if (doc === undefined) return undefined;
  return Object.freeze({
    requestsPerSecond: doc.requestsPerSecond,
    burst: doc.burst ?? Math.max(1, Math.ceil(doc.requestsPerSecond)),
  });
}

export function compileRateSettings(doc: RateLimitSettingsDocument | undefined): CompiledRateSettings {
  return Object.freeze({
    mode: doc?.mode ?? 'local',
    failureMode: doc?.failureMode ?? 'open',
    perKey: compileRate(doc?.perKey),
  });
}

export function compileAuth(
  doc: AuthDocument,
  models: ReadonlySet<string>,
  errors: PolicyIssue[],
): CompiledAuth {
  const keys = new Map<string, KeyRecord>();
  const ids = new Set<string>();
  (doc.apiKeys ?? []).forEach((k, i) => {
    const path = (...rest: string[]) => at('auth', 'apiKeys', i, ...rest);
    if (ids.has(k.id)) errors.push({ path: path('id'), message: `key id '${k.id}' is listed twice` });
    ids.add(k.id);
    if (keys.has(k.sha256)) errors.push({ path: path('sha256'), message: 'the same key is listed twice' });
    (k.models ?? []).forEach((m, j) => {
      if (!models.has(m))
        errors.push({ path: at('auth', 'apiKeys', i, 'models', j), message: `unknown model '${m}'` });
    });
    let expiresAt: number | undefined;
    if (k.expiresAt !== undefined) {
      expiresAt = parseTime(k.expiresAt);
      if (expiresAt === undefined) errors.push({ path: path('expiresAt'), message: 'is not a real date' });
    }
    keys.set(
      k.sha256,
      Object.freeze({
        id: k.id,
        models: k.models === undefined ? undefined : new Set(k.models),
        rateLimit: compileRate(k.rateLimit),
        expiresAt,
        revoked: false,
      }),
    );
  });
  let jwt: CompiledJwt | undefined;
  if (doc.jwt !== undefined) {
    const j = doc.jwt;
    if ((j.jwksFile === undefined) === (j.jwksUrl === undefined)) {
      errors.push({ path: at('auth', 'jwt'), message: 'needs exactly one of jwksFile and jwksUrl' });
    }
    jwt = Object.freeze({
      jwksFile: j.jwksFile,
      jwksUrl: j.jwksUrl,
      issuer: j.issuer,
      audience: j.audience,
      algorithms: Object.freeze([...(j.algorithms ?? JWT_ALGORITHMS)]),
      clockSkewSeconds: j.clockSkewSeconds ?? DEFAULT_JWT_CLOCK_SKEW_SECONDS,
      modelsClaim: j.modelsClaim ?? DEFAULT_JWT_MODELS_CLAIM,
      refreshSeconds: j.refreshSeconds ?? DEFAULT_JWKS_REFRESH_SECONDS,
    });
  }
  return Object.freeze({ required: doc.required, keys, jwt });
}

/** An RFC 3339 time (the schema checked its shape) as ms since the epoch; undefined: no such day. */
export function parseTime(text: string): number | undefined {
  const [y, m, d] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const days = new Date(Date.UTC(y, m, 0)).getUTCDate();
  if (m < 1 || m > 12 || d < 1 || d > days) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}
