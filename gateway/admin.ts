/**
 * The admin app, on its own port: Prometheus metrics, the policy in force, the standing of every
 * upstream endpoint, and the rollouts (canary and shadow, gateway/rollout/admin-routes.ts).
 */
import { sha256Hex } from '../common/hash.js';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Clock } from '../common/clock.js';
import { applyClientLimits, type ClientLimits, clientErrorHandler } from '../common/client-limits.js';
import { ApiError } from '../common/errors.js';
import { sendApiError } from '../common/http.js';
import type { Logger } from '../common/logging.js';
import { type AdminAuth, requireAdminToken } from './admin-auth.js';
import { GW_CLIENT_ERRORS, GW_ERRORS } from './errors.js';
import type { GatewayMetrics } from './metrics.js';
import { rolloutRoutes } from './rollout/admin-routes.js';
import type { Rollouts } from './rollout/rollouts.js';
import type { Snapshot } from './snapshot.js';

export interface AdminDeps {
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly current: () => Snapshot;
  readonly clientLimits: ClientLimits;
  /** A bearer token for every route (but /metrics, if left open); none: the port is open. */
  readonly auth?: AdminAuth | undefined;
  readonly policy: () => {
    readonly origin: string;
    readonly version: number | undefined;
    readonly text: string;
  };
  readonly rollouts?: Rollouts;
}

export function buildAdmin(deps: AdminDeps): FastifyInstance {
  const admin = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    clientErrorHandler: clientErrorHandler(GW_CLIENT_ERRORS, deps.clientLimits),
  });
  applyClientLimits(admin.server, deps.clientLimits);
  if (deps.auth !== undefined) requireAdminToken(admin, deps.auth);
  admin.get('/metrics', async (_req, reply) => {
    reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  admin.get('/admin/policy', async () => {
    const s = deps.current();
    const p = deps.policy();
    return {
      version: p.version ?? null,
      origin: p.origin,
      sha256: s.policy.sha256,
      sourceSha256: sha256Hex(p.text),
      appliedAt: new Date(s.appliedAt).toISOString(),
      warnings: s.policy.warnings,
      policy: s.policy.document,
      source: p.text,
    };
  });
  admin.get('/admin/upstreams', async () => {
    const s = deps.current();
    const now = deps.clock.now();
    return {
      backends: [...s.endpoints].map(([name, endpoints]) => ({
        name,
        endpoints: endpoints.map((e) => {
          const recent = e.recent;
          return {
            url: e.origin,
            // From the policy's list, or registered by the replica itself (fleet mode).
            source: s.policy.backends.get(name)?.endpoints.includes(e.origin) ? 'policy' : 'registered',
            state: e.state(now),
            healthy: e.healthy,
            breaker: e.breakerState,
            ejectedForMs: Math.max(0, Math.round(e.ejectedUntil - now)),
            outstanding: e.outstanding,
            recentRequests: recent.requests,
            recentErrorRate: recent.requests === 0 ? 0 : recent.failures / recent.requests,
          };
        }),
      })),
    };
  });
  if (deps.rollouts !== undefined) rolloutRoutes(admin, deps.rollouts);
  admin.setNotFoundHandler((req, reply) =>
    sendApiError(
      reply,
      new ApiError(GW_ERRORS.GW_ERR_NOT_FOUND, `no route ${req.method} ${req.url.slice(0, 256)}`),
    ),
  );
  return admin;
}
