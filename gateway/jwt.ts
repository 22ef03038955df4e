/**
 * Bearer JWTs, verified with `jose` against the policy's JWKS: RS256, ES256 and EdDSA only (the
 * policy may narrow the list), so `alg: none` and HS256 signed with a public key are refused by
 * the algorithm check before any key is used. `iss` and `aud` must match, `exp` and `sub` must be
 * present, `exp` and `nbf` are checked with the policy's bounded clock skew, and the models come
 * from a configurable claim (an array, or a space-separated string as OAuth scopes are).
 *
 * The JWKS: a URL is fetched and cached by jose (kept for `refreshSeconds`, fetched again at most
 * once a second when a token names a `kid` it does not hold: key rotation); a file is read at
 * start, re-read every `refreshSeconds`, and at once when a token names an unknown `kid` and the
 * file changed. Errors say what failed, never the token.
 */
import { readFile, stat } from 'node:fs/promises';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { Logger } from '../common/logging.js';
import type { TokenClaims, TokenVerifier } from './admission/auth.js';
import type { CompiledJwt } from './policy/compile.js';

type KeyResolver = JWTVerifyGetKey;

/** A JWKS file, re-read when it changed (checked on an unknown kid and every `refreshMs`). */
class JwksFile {
  private resolver: KeyResolver | undefined;
  private loading: Promise<void>;
  private version = '';
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly path: string,
    refreshMs: number,
    private readonly logger: Logger,
  ) {
    this.loading = this.reload();
    this.timer = setInterval(() => void this.reloadIfChanged(), refreshMs);
    this.timer.unref();
  }

  readonly resolve: KeyResolver = async (header, token) => {
    await this.loading;
    if (this.resolver === undefined) throw new Error(`the JWKS file ${this.path} could not be read`);
    try {
      return await this.resolver(header, token);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY') throw e;
      // Key rotation: the file may hold the new key already.
      if (!(await this.reloadIfChanged())) throw e;
      return this.resolver(header, token);
    }
  };

  close(): void {
    clearInterval(this.timer);
  }

  private async reloadIfChanged(): Promise<boolean> {
    try {
      const s = await stat(this.path);
      if (`${s.mtimeMs}:${s.size}` === this.version) return false;
    } catch {
      return false;
    }
    this.loading = this.reload();
    await this.loading;
    return true;
  }

  private async reload(): Promise<void> {
    try {
      const s = await stat(this.path);
      const jwks = JSON.parse(await readFile(this.path, 'utf8')) as JSONWebKeySet;
      this.resolver = createLocalJWKSet(jwks);
      this.version = `${s.mtimeMs}:${s.size}`;
    } catch (e) {
      // The keys last read stay in use.
      this.logger.error({ path: this.path, err: (e as Error).message }, 'JWKS file not loaded');
    }
  }
}

/** Why a token was refused, in words safe to show (jose's messages never carry the token). */
export function describeJwtError(e: unknown): string {
  const err = e as { code?: string; message?: string; claim?: string };
  switch (err.code) {
    case 'ERR_JWT_EXPIRED':
      return 'the token has expired';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'the token is signed with an algorithm this gateway does not accept';
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'the token uses a form or algorithm that is not supported';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return "no key of the JWKS matches the token's kid";
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return "several keys of the JWKS match the token's kid";
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'the signature does not verify';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return err.claim === 'nbf'
        ? 'the token is not valid yet (nbf)'
        : `claim '${err.claim}' is missing or does not match`;
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'the token is not a well-formed JWT';
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return 'the JWKS could not be fetched';
    default:
      return (err.message ?? 'the token could not be verified').slice(0, 200);
  }
}

function modelsOf(value: unknown): ReadonlySet<string> | undefined {
  if (typeof value === 'string') return new Set(value.split(' ').filter((s) => s !== ''));
  if (Array.isArray(value)) return new Set(value.filter((v): v is string => typeof v === 'string'));
  return undefined;
}

export class JwtVerifier implements TokenVerifier {
  private readonly keys: KeyResolver;
  private readonly file: JwksFile | undefined;

  constructor(
    private readonly cfg: CompiledJwt,
    logger: Logger,
  ) {
    if (cfg.jwksUrl !== undefined) {
      this.keys = createRemoteJWKSet(new URL(cfg.jwksUrl), {
        cacheMaxAge: cfg.refreshSeconds * 1000,
        cooldownDuration: 1000,
        timeoutDuration: 5000,
      });
    } else {
      this.file = new JwksFile(cfg.jwksFile as string, cfg.refreshSeconds * 1000, logger);
      this.keys = this.file.resolve;
    }
  }

  async verify(token: string): Promise<TokenClaims> {
    try {
      const { payload } = await jwtVerify(token, this.keys, {
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        algorithms: [...this.cfg.algorithms],
        clockTolerance: this.cfg.clockSkewSeconds,
        requiredClaims: ['exp', 'sub'],
      });
      return { subject: String(payload.sub), models: modelsOf(payload[this.cfg.modelsClaim]) };
    } catch (e) {
      throw new Error(describeJwtError(e));
    }
  }

  close(): void {
    this.file?.close();
  }
}

/**
 * The verifier of the policy's JWT settings, kept while they stay the same across reloads (its
 * JWKS cache with it), replaced when they change.
 */
export function jwtVerifiers(logger: Logger): (cfg: CompiledJwt) => TokenVerifier {
  let current: { key: string; verifier: JwtVerifier } | undefined;
  return (cfg) => {
    const key = JSON.stringify(cfg);
    if (current?.key === key) return current.verifier;
    current?.verifier.close();
    current = { key, verifier: new JwtVerifier(cfg, logger) };
    return current.verifier;
  };
}
