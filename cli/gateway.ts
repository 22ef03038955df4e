import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { createLogger } from '../common/logging.js';
import { TlsFileError } from '../common/server-tls.js';
import { RedisLink } from '../common/redis/link.js';
import type { EndpointSource } from '../gateway/endpoint-source.js';
import { CanaryStateFile } from '../gateway/rollout/canary-file.js';
import type { CanaryCoordinator } from '../gateway/rollout/rollouts.js';
import { CanaryFleet } from '../gateway/fleet/canary-fleet.js';
import { RedisPolicySource, RedisUnavailableError } from '../gateway/fleet/redis-source.js';
import { RegisteredEndpointSource } from '../gateway/registered-endpoints.js';
import type { PolicySource } from '../gateway/policy/source.js';
import { formatIssue } from '../gateway/policy/compile.js';
import { PolicyRejectedError } from '../gateway/policy/runtime.js';
import { FilePolicySource } from '../gateway/policy/file-source.js';
import { fleetSecurity } from '../gateway/fleet/security.js';
import { buildGateway, type GatewaySecurity } from '../gateway/server.js';
import { EXIT, ExitError, nonNegativeInt, parse, port, serverLimits, setting, UsageError } from './args.js';
import { CLIENT_ENV_HELP, CLIENT_FLAGS, CLIENT_FLAGS_HELP, clientLimits } from './client-flags.js';
import {
  ADMIN_FLAGS,
  ADMIN_FLAGS_HELP,
  adminAuth,
  serverTlsFiles,
  TLS_FLAGS,
  TLS_FLAGS_HELP,
  tlsFileExit,
} from './edge-flags.js';
import { FLEET_FLAGS, fleetTarget, REDIS_TLS_FLAGS, REDIS_TLS_HELP } from './fleet.js';
import { auditOptions, AUDIT_FLAGS } from './audit.js';
import { logOutput } from './log-output.js';
import { tracingFromEnv } from './otel-env.js';
import { onShutdownSignal } from './signals.js';

export const GATEWAY_HELP = `infergate gateway (--policy FILE | --redis URL) [--host H] [--port P] [--admin-port A]
                  [--body-limit BYTES] [--drain-delay-ms MS] [--drain-timeout-ms MS]
                  [--redis-prefix P] [--gateway-id ID] [--policy-cache FILE] [--canary-state FILE]
                  [--headers-timeout-ms MS] [--request-timeout-ms MS] [--keep-alive-timeout-ms MS]
                  [--max-connections N] [--admin-host H] [--admin-token-file FILE] [--admin-metrics-open]
                  [--tls-cert FILE --tls-key FILE] [--redis-tls-ca FILE [--redis-tls-cert FILE --redis-tls-key FILE]]
                  [--audit-log FILE|-] [--audit-hash] [--audit-max-bytes BYTES]

One gateway: every model of the policy at one URL (Open Inference Protocol v2). The policy file
is watched: a valid edit takes effect within a second, an invalid one is logged and ignored.
Fleet mode (--redis redis://[user:password@]host[:port][/db], or rediss:// for TLS): the policy
comes from Redis (infergate policy apply), every version is acknowledged (ACK or NACK), replicas
that register themselves join their backend, and --policy FILE only seeds an empty store.
--policy-cache FILE keeps the last good version on disk, served when Redis is down at start.
--gateway-id names this gateway in 'infergate policy status' (default: host name and pid).
--canary-state FILE (file mode): canary rollouts written there at each step, taken up at restart;
in fleet mode their state lives in Redis, one gateway per model leading (docs/rollouts.md).
Admin port: /metrics, /admin/policy, /admin/upstreams, /admin/shadow, /admin/canary.
${ADMIN_FLAGS_HELP}
${TLS_FLAGS_HELP}
Backends over TLS (mTLS): an https:// endpoint, and a backend's tls: { ca, cert, key, serverName } in the policy.
${REDIS_TLS_HELP}
${CLIENT_FLAGS_HELP}
--audit-log FILE writes one JSON line per model request (- for stdout; logs then go to stderr),
rotated past --audit-max-bytes (104857600) to FILE.1 .. FILE.5; --audit-hash adds the sha256 of
each request body and answer. Tracing: OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/HTTP), OTEL_SERVICE_NAME
(infergate-gateway), OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; none set: no tracing.
On SIGTERM: readiness false, answers carry Connection: close for --drain-delay-ms (1000), then the
listener closes and in-flight requests finish (at most --drain-timeout-ms, 30000).
Environment: INFERGATE_POLICY, INFERGATE_HOST (127.0.0.1), INFERGATE_PORT (8080),
INFERGATE_ADMIN_HOST (127.0.0.1), INFERGATE_ADMIN_PORT (9901), INFERGATE_BODY_LIMIT (67108864),
INFERGATE_DRAIN_DELAY_MS (1000), INFERGATE_DRAIN_TIMEOUT_MS (30000),
INFERGATE_REDIS_URL, INFERGATE_REDIS_PREFIX (infergate:), INFERGATE_GATEWAY_ID,
INFERGATE_POLICY_CACHE, INFERGATE_CANARY_STATE, INFERGATE_ADMIN_TOKEN_FILE, INFERGATE_ADMIN_METRICS_OPEN, INFERGATE_TLS_CERT, INFERGATE_TLS_KEY,
INFERGATE_REDIS_TLS_CA, INFERGATE_REDIS_TLS_CERT, INFERGATE_REDIS_TLS_KEY, ${CLIENT_ENV_HELP}, INFERGATE_LOG_LEVEL (info), INFERGATE_AUDIT_LOG,
INFERGATE_AUDIT_MAX_BYTES.`;

/** The option table of `infergate gateway` (the deployment tests check manifests against it). */
export const GATEWAY_OPTIONS = {
  policy: { type: 'string' },
  ...FLEET_FLAGS,
  'gateway-id': { type: 'string' },
  'policy-cache': { type: 'string' },
  'canary-state': { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'admin-host': { type: 'string' },
  'admin-port': { type: 'string' },
  'body-limit': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  'drain-delay-ms': { type: 'string' },
  ...CLIENT_FLAGS,
  ...ADMIN_FLAGS,
  ...TLS_FLAGS,
  ...REDIS_TLS_FLAGS,
  ...AUDIT_FLAGS,
} as const;

export async function gatewayCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, GATEWAY_OPTIONS);
  const fleet = fleetTarget(values);
  const policyPath = setting(values.policy, 'INFERGATE_POLICY');
  if (policyPath === undefined && fleet === undefined)
    throw new UsageError('--policy FILE is required (or --redis URL: fleet mode)');
  const cachePath = setting(values['policy-cache'], 'INFERGATE_POLICY_CACHE');
  if (cachePath !== undefined && fleet === undefined) throw new UsageError('--policy-cache needs --redis');
  const canaryState = setting(values['canary-state'], 'INFERGATE_CANARY_STATE');
  if (canaryState !== undefined && fleet !== undefined)
    throw new UsageError('--canary-state is for file mode; with --redis the canary state lives in Redis');
  const host = setting(values.host, 'INFERGATE_HOST', '127.0.0.1');
  const listenPort = port(setting(values.port, 'INFERGATE_PORT', '8080'), '--port');
  const adminHost = setting(values['admin-host'], 'INFERGATE_ADMIN_HOST', '127.0.0.1');
  const adminPort = port(setting(values['admin-port'], 'INFERGATE_ADMIN_PORT', '9901'), '--admin-port');
  const { bodyLimit, drainTimeoutMs } = serverLimits(values);
  const limits = clientLimits(values);
  const admin = adminAuth(values, adminHost);
  const tls = serverTlsFiles(values);
  const drainDelayMs = nonNegativeInt(
    setting(values['drain-delay-ms'], 'INFERGATE_DRAIN_DELAY_MS', '1000'),
    '--drain-delay-ms',
  );
  const audit = auditOptions(values);
  const tracing = tracingFromEnv(process.env, 'infergate-gateway');
  const logger = createLogger({
    name: 'infergate-gateway',
    level: setting(undefined, 'INFERGATE_LOG_LEVEL', 'info'),
    // With the audit log on stdout, the log lines go to stderr.
    ...logOutput(audit?.toStdout === true ? 2 : 1),
  });

  let link: RedisLink | undefined;
  let sources: {
    policySource: PolicySource;
    endpointSource?: EndpointSource;
    security?: GatewaySecurity;
    canaryCoordinator?: CanaryCoordinator;
  };
  if (fleet === undefined) {
    sources = {
      policySource: new FilePolicySource(policyPath as string),
      ...(canaryState === undefined ? {} : { canaryCoordinator: new CanaryStateFile(canaryState, logger) }),
    };
  } else {
    const gatewayId = setting(values['gateway-id'], 'INFERGATE_GATEWAY_ID', `${hostname()}-${process.pid}`);
    if (!/^[A-Za-z0-9._:@-]{1,128}$/.test(gatewayId)) {
      throw new UsageError(`--gateway-id takes up to 128 of A-Z a-z 0-9 . _ : @ -, not '${gatewayId}'`);
    }
    link = new RedisLink(fleet.target, logger, `infergate-gateway:${gatewayId}`);
    const reachable = await link.start(3000);
    const endpointSource = new RegisteredEndpointSource({ link, keys: fleet.keys, logger });
    await endpointSource.start();
    if (!reachable) logger.warn(`${link.lastProblem}; still trying`);
    const security = await fleetSecurity(link, fleet.keys, logger);
    sources = {
      policySource: new RedisPolicySource({
        link,
        keys: fleet.keys,
        gatewayId,
        host: hostname(),
        pid: process.pid,
        logger,
        ...(policyPath !== undefined
          ? { seed: { text: await readPolicyFile(policyPath), origin: policyPath } }
          : {}),
        ...(cachePath !== undefined ? { cachePath } : {}),
      }),
      endpointSource,
      security,
      canaryCoordinator: new CanaryFleet({ link, keys: fleet.keys, gatewayId, logger }),
    };
  }

  let gateway: Awaited<ReturnType<typeof buildGateway>>;
  try {
    gateway = await buildGateway({
      ...sources,
      bodyLimit,
      clientLimits: limits,
      ...(admin === undefined ? {} : { adminAuth: admin }),
      ...(tls === undefined ? {} : { tls }),
      drainDelayMs,
      logger,
      tracing,
      ...(audit === undefined ? {} : { audit: audit.options }),
    });
  } catch (e) {
    await link?.close();
    if (e instanceof TlsFileError) throw tlsFileExit(e);
    if (e instanceof RedisUnavailableError) throw new ExitError(EXIT.redisUnreachable, e.message);
    if (e instanceof PolicyRejectedError) {
      throw new Error(
        `policy ${e.origin} is invalid:\n${e.errors.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
      );
    }
    throw e;
  }
  const adminAddress = await gateway.admin.listen({ host: adminHost, port: adminPort });
  const address = await gateway.app.listen({ host, port: listenPort });
  logger.info(
    {
      address,
      admin: adminAddress,
      adminAuth: admin === undefined ? 'none' : admin.metricsOpen ? 'bearer (metrics open)' : 'bearer',
      models: [...gateway.snapshot.policy.models.keys()],
    },
    `gateway listening on ${address}`,
  );
  onShutdownSignal(logger, drainTimeoutMs, async () => {
    await gateway.shutdown();
    await link?.close();
  });
}

async function readPolicyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
