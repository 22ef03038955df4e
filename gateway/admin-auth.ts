/**
 * The admin port's bearer token: every route but (optionally) `/metrics` needs
 * `Authorization: Bearer <token>`. Only the token's SHA-256 is kept; a presented token is hashed
 * and compared in constant time, so neither its length nor its bytes leak through timing. The
 * token is never logged or answered.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../common/errors.js';
import { sendApiError } from '../common/http.js';
import { GW_ERRORS } from './errors.js';

export interface AdminAuth {
  /** The bearer token (kept only as its SHA-256). */
  readonly token: string;
  /** Leave `/metrics` open to scrapers without the token. */
  readonly metricsOpen?: boolean;
}

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Whether `header` carries the token whose SHA-256 is `expected`. */
export function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const m = header === undefined ? null : BEARER.exec(header);
  if (m === null) return false;
  return timingSafeEqual(sha256(m[1] as string), expected);
}

/** Adds the check to the admin app, before every route (and before its 404s). */
export function requireAdminToken(admin: FastifyInstance, auth: AdminAuth): void {
  const expected = sha256(auth.token);
  const open = auth.metricsOpen === true;
  admin.addHook('onRequest', (req, reply, done) => {
    if (open && req.routeOptions.url === '/metrics') return done();
    const header = req.headers.authorization;
    if (bearerMatches(header, expected)) return done();
    const missing = header === undefined || !BEARER.test(header);
    reply.header(
      'www-authenticate',
      missing ? 'Bearer realm="infergate-admin"' : 'Bearer realm="infergate-admin", error="invalid_token"',
    );
    sendApiError(
      reply,
      new ApiError(
        GW_ERRORS.GW_ERR_ADMIN_UNAUTHORIZED,
        missing
          ? 'the admin port needs Authorization: Bearer <token> (the token of --admin-token-file)'
          : 'the bearer token is not the admin token',
        { field: 'authorization' },
      ),
    );
  });
}
