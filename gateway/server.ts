/**
 * The gateway, composed: metrics, the endpoint registry, the snapshot owner fed by the policy
 * runtime, the ingress app and the admin app. One ingress URL for every model of the policy;
 * `listen` happens in the caller (the CLI, the tests).
 */
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { checkClientLimits, type ClientLimits, DEFAULT_CLIENT_LIMITS } from '../common/client-limits.js';
import { type Clock, systemClock } from '../common/clock.js';
import { type Logger, silentLogger } from '../common/logging.js';
import { loadServerTls, type ServerTlsFiles, watchServerTls } from '../common/server-tls.js';
import type { GatewaySecurity, PolicyEvent, PolicyInForce } from './server-types.js';
import type { TracingConfig } from '../common/telemetry/config.js';
import { startTracing, type Tracing } from '../common/telemetry/tracing.js';
import { buildAdmin } from './admin.js';
import type { AdminAuth } from './admin-auth.js';
import { buildApp } from './app.js';
import { AuditLog, type AuditOptions } from './audit/log.js';
import { type EndpointSource, StaticEndpointSource } from './endpoint-source.js';
import { jwtVerifiers } from './jwt.js';
import { GatewayMetrics, type UpstreamSample } from './metrics.js';
import { formatIssue } from './policy/compile.js';
import { PolicyRuntime } from './policy/runtime.js';
import { type CanaryCoordinator, Rollouts } from './rollout/rollouts.js';
import type { PolicySource } from './policy/source.js';
import type { RandomSource } from './router.js';
import { type Snapshot, SnapshotOwner } from './snapshot.js';
import { checkUpstreamTls } from './upstream/connection.js';
import { UpstreamTlsWatch } from './upstream/tls-watch.js';
import { GatewayTracing } from './tracing.js';
import { type EndpointPoolOptions, EndpointRegistry } from './upstream/endpoint.js';

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;

export interface GatewayOptions {
  policySource: PolicySource;
  /** Where backends' endpoints come from; the policy's own lists by default. */
  endpointSource?: EndpointSource;
  /** Largest request body in bytes (413 beyond it). */
  bodyLimit?: number;
  /** Header, request and keep-alive timeouts and the connection cap of the ingress and admin servers. */
  clientLimits?: ClientLimits;
  /** TLS at the ingress: certificate and key files, watched and reloaded without dropping connections. */
  tls?: ServerTlsFiles;
  /** How often TLS files (the ingress's, the backends' of the policy) are looked at for changes (1000 ms). */
  tlsPollMs?: number;
  /** The admin port's bearer token; without it the admin port is open (bind it to loopback). */
  adminAuth?: AdminAuth;
  logger?: Logger;
  clock?: Clock;
  random?: RandomSource;
  /** Default process metrics; off in tests that run several gateways in one process. */
  processMetrics?: boolean;
  pools?: EndpointPoolOptions;
  /**
   * On shutdown, how long to keep serving (readiness false, every answer with Connection: close)
   * before the listener closes, so that load balancers and clients move away first.
   */
  drainDelayMs?: number;
  /** Keys in Redis, the JWT verifier, global rate-limit buckets (fleet mode); see docs/security.md. */
  security?: GatewaySecurity;
  /** The clock of the canary controllers (steps and their judgement); the gateway's by default. */
  rolloutClock?: Clock;
  /** Fleet mode: canary state in Redis, one leader per model (gateway/fleet/canary-fleet.ts). */
  canaryCoordinator?: CanaryCoordinator;
  /** Told of every policy applied or rejected (after the gateway's own handling). */
  onPolicyEvent?: (event: PolicyEvent) => void;
  /** OTLP tracing (from the OTEL_* variables); off when undefined. */
  tracing?: TracingConfig | undefined;
  /** The audit log (--audit-log); off when undefined. */
  audit?: AuditOptions | undefined;
}

export type { GatewaySecurity, PolicyEvent, PolicyInForce } from './server-types.js';

export interface Gateway {
  app: FastifyInstance;
  admin: FastifyInstance;
  metrics: GatewayMetrics;
  policy: PolicyRuntime;
  /** Shadow comparison and canary controllers. */
  rollouts: Rollouts;
  /** The one owner of the snapshot and of per-model and per-backend state. */
  snapshots: SnapshotOwner;
  /** The snapshot in force: the compiled policy, its endpoints and the overlay. */
  readonly snapshot: Snapshot;
  /** Readiness false, let in-flight requests finish, close upstream pools. */
  shutdown(): Promise<void>;
  readonly draining: boolean;
  readonly tracing: Tracing | undefined;
  readonly audit: AuditLog | undefined;
}

export async function buildGateway(opts: GatewayOptions): Promise<Gateway> {
  const logger = opts.logger ?? silentLogger();
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const clientLimits = checkClientLimits(opts.clientLimits ?? DEFAULT_CLIENT_LIMITS);
  // Read and checked before anything starts: a bad file stops the gateway here (TlsFileError).
  const tls = opts.tls === undefined ? undefined : loadServerTls(opts.tls);
  const endpointSource = opts.endpointSource ?? new StaticEndpointSource();
  let draining = false;
  let inForce: PolicyInForce = { origin: '', version: undefined, text: '' };

  const source = opts.policySource;
  const metrics: GatewayMetrics = new GatewayMetrics({
    processMetrics: opts.processMetrics ?? true,
    ...(source.reachable !== undefined ? { redisUp: () => source.reachable?.() ?? false } : {}),
    // Read at scrape time, once the owner below exists.
    sample: (): UpstreamSample[] => {
      if (!owner.hasSnapshot) return [];
      const now = clock.now();
      const out: UpstreamSample[] = [];
      for (const [backend, endpoints] of owner.current.endpoints) {
        for (const e of endpoints) {
          out.push({
            backend,
            endpoint: e.origin,
            outstanding: e.outstanding,
            available: e.available(now),
            breaker: e.breakerState,
          });
        }
      }
      return out;
    },
  });
  const registry = new EndpointRegistry(
    clock,
    {
      onEjected: (e, forMs) => {
        metrics.ejections.inc({ endpoint: e.origin });
        logger.warn({ endpoint: e.origin, forMs }, 'endpoint ejected after consecutive failures');
      },
      onHealthChange: (e, healthy, reason) =>
        logger.warn(
          { endpoint: e.origin, healthy, reason },
          healthy ? 'endpoint healthy' : 'endpoint unhealthy',
        ),
      onBreaker: (e, state) => logger.warn({ endpoint: e.origin, state }, `circuit ${state}`),
      onHealthCheck: (e, ok) =>
        metrics.healthChecks.inc({ endpoint: e.origin, result: ok ? 'pass' : 'fail' }),
    },
    opts.pools,
  );
  if (opts.security?.globalRates !== undefined) {
    opts.security.globalRates.onFallback = (mode) =>
      metrics.security.rateLimitFallback.inc({ failure_mode: mode });
  }
  const rollouts = new Rollouts({
    clock: opts.rolloutClock ?? clock,
    random,
    logger,
    registry: metrics.registry,
    setOverlay: (overlay) => owner.setOverlay(overlay),
    coordinator: opts.canaryCoordinator,
  });
  const owner: SnapshotOwner = new SnapshotOwner({
    clock,
    random,
    metrics,
    registry,
    endpointSource,
    rollouts,
    onShed: (model, scope, reason) => metrics.shed.inc({ model, scope, reason }),
    onBatchShed: (model) => metrics.batchShed.inc({ model }),
    security: {
      tokens: jwtVerifiers(logger),
      ...opts.security,
      onAuthRefused: (reason) => metrics.security.authRefusals.inc({ reason }),
      onRateLimited: (model, scope) => metrics.security.rateLimited.inc({ model, scope }),
    },
  });

  // A backend's tls files rotated on disk: compose again, so that its origins get new pools.
  const upstreamTls = new UpstreamTlsWatch(() => {
    if (!owner.hasSnapshot) return;
    try {
      owner.apply(owner.current.policy);
      logger.info('upstream TLS files changed; new connections to those backends use them');
    } catch (e) {
      logger.warn(
        `upstream TLS files changed but cannot be used (${(e as Error).message}); the connections made before keep serving`,
      );
    }
  }, opts.tlsPollMs);

  const policy = await PolicyRuntime.start(opts.policySource, {
    // A backend's tls files must be readable and usable on this host.
    vet: checkUpstreamTls,
    onApplied: (compiled, origin, update) => {
      owner.apply(compiled, rollouts.policyApplied(compiled));
      upstreamTls.follow(compiled);
      inForce = { origin, version: update.version, text: update.text };
      metrics.policyApplied(compiled.sha256, Date.now() / 1000, update.version ?? 0);
      // The source acknowledges the version as soon as this returns (fleet mode); the log lines
      // wait for the next turn of the loop rather than hold the acknowledgement back.
      setImmediate(() => {
        logger.info(
          { origin, version: update.version, sha256: compiled.sha256, models: [...compiled.models.keys()] },
          'policy applied',
        );
        if (compiled.rateLimit.mode === 'global' && opts.security?.globalRates === undefined)
          logger.warn('policy: rateLimit.mode is global but this gateway has no Redis; local buckets apply');
        for (const w of compiled.warnings)
          logger.warn({ origin, path: w.path }, `policy: ${w.path}: ${w.message}`);
      });
      opts.onPolicyEvent?.({ type: 'applied', sha256: compiled.sha256, origin });
    },
    onRejected: (errors, origin) => {
      metrics.reloads.inc({ result: 'rejected' });
      logger.error(
        { origin, errors: errors.map(formatIssue) },
        'policy rejected; the last good policy keeps serving',
      );
      opts.onPolicyEvent?.({ type: 'rejected', errors, origin });
    },
    onSourceError: (err) => logger.error({ err }, 'policy source error'),
  });

  const current = () => owner.current;
  const tracing = startTracing(opts.tracing);
  const audit = opts.audit === undefined ? undefined : new AuditLog(opts.audit, metrics.registry, logger);
  const app = buildApp({
    clock,
    random,
    logger,
    metrics,
    bodyLimit,
    clientLimits,
    tls,
    current,
    draining: () => draining,
    tracing: tracing === undefined ? undefined : new GatewayTracing(tracing),
    audit,
  });
  const tlsWatch =
    opts.tls === undefined
      ? undefined
      : watchServerTls(app.server as unknown as TlsServer, opts.tls, logger, {
          ...(opts.tlsPollMs === undefined ? {} : { pollMs: opts.tlsPollMs }),
        });
  const admin = buildAdmin({
    metrics,
    logger,
    clock,
    current,
    policy: () => inForce,
    clientLimits,
    auth: opts.adminAuth,
    rollouts,
  });

  return {
    app,
    admin,
    metrics,
    policy,
    rollouts,
    snapshots: owner,
    get snapshot() {
      return owner.current;
    },
    get draining() {
      return draining;
    },
    tracing,
    audit,
    async shutdown() {
      draining = true;
      await opts.policySource.close();
      const delay = opts.drainDelayMs ?? 0;
      if (delay > 0) await new Promise<void>((resolve) => clock.setTimer(resolve, delay));
      tlsWatch?.close();
      upstreamTls.close();
      await app.close();
      await audit?.close();
      await tracing?.shutdown();
      await admin.close();
      await rollouts.close();
      owner.close();
      await endpointSource.close();
      await registry.close();
    },
  };
}
