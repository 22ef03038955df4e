import { createLogger } from '../common/logging.js';
import { formatIssue } from '../gateway/policy/compile.js';
import { PolicyRejectedError } from '../gateway/policy/runtime.js';
import { FilePolicySource } from '../gateway/policy/file-source.js';
import { buildGateway } from '../gateway/server.js';
import { nonNegativeInt, parse, port, serverLimits, setting, UsageError } from './args.js';
import { onShutdownSignal } from './signals.js';

export const GATEWAY_HELP = `infergate gateway --policy FILE [--host H] [--port P] [--admin-port A]
                  [--body-limit BYTES] [--drain-delay-ms MS] [--drain-timeout-ms MS]

One gateway: every model of the policy at one URL (Open Inference Protocol v2). The policy file
is watched: a valid edit takes effect within a second, an invalid one is logged and ignored.
Admin port: /metrics, /admin/policy, /admin/upstreams.
On SIGTERM: readiness false, answers carry Connection: close for --drain-delay-ms (1000), then the
listener closes and in-flight requests finish (at most --drain-timeout-ms, 30000).
Environment: INFERGATE_POLICY, INFERGATE_HOST (127.0.0.1), INFERGATE_PORT (8080),
INFERGATE_ADMIN_HOST (127.0.0.1), INFERGATE_ADMIN_PORT (9901), INFERGATE_BODY_LIMIT (67108864),
INFERGATE_DRAIN_DELAY_MS (1000), INFERGATE_DRAIN_TIMEOUT_MS (30000),
INFERGATE_LOG_LEVEL (info).`;

export async function gatewayCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    policy: { type: 'string' },
    redis: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'admin-host': { type: 'string' },
    'admin-port': { type: 'string' },
    'body-limit': { type: 'string' },
    'drain-timeout-ms': { type: 'string' },
    'drain-delay-ms': { type: 'string' },
  });
  if (setting(values.redis, 'INFERGATE_REDIS_URL') !== undefined) {
    throw new UsageError('--redis (fleet mode) is not supported by this version yet; use --policy FILE');
  }
  const policyPath = setting(values.policy, 'INFERGATE_POLICY');
  if (policyPath === undefined) throw new UsageError('--policy FILE is required');
  const host = setting(values.host, 'INFERGATE_HOST', '127.0.0.1');
  const listenPort = port(setting(values.port, 'INFERGATE_PORT', '8080'), '--port');
  const adminHost = setting(values['admin-host'], 'INFERGATE_ADMIN_HOST', '127.0.0.1');
  const adminPort = port(setting(values['admin-port'], 'INFERGATE_ADMIN_PORT', '9901'), '--admin-port');
  const { bodyLimit, drainTimeoutMs } = serverLimits(values);
  const drainDelayMs = nonNegativeInt(
    setting(values['drain-delay-ms'], 'INFERGATE_DRAIN_DELAY_MS', '1000'),
    '--drain-delay-ms',
  );
  const logger = createLogger({
    name: 'infergate-gateway',
    level: setting(undefined, 'INFERGATE_LOG_LEVEL', 'info'),
  });

  let gateway: Awaited<ReturnType<typeof buildGateway>>;
  try {
    gateway = await buildGateway({
      policySource: new FilePolicySource(policyPath),
      bodyLimit,
      drainDelayMs,
      logger,
    });
  } catch (e) {
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
    { address, admin: adminAddress, models: [...gateway.snapshot.policy.models.keys()] },
    `gateway listening on ${address}`,
  );
  onShutdownSignal(logger, drainTimeoutMs, () => gateway.shutdown());
}
