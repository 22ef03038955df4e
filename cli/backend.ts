import { DEVICES, type Device } from '../backend/model.js';
import {
  isModelName,
  isVersion,
  ModelSelectionError,
  type ModelSelector,
} from '../backend/repository-layout.js';
import { type Backend, buildBackend } from '../backend/server.js';
import { createLogger } from '../common/logging.js';
import { logOutput } from './log-output.js';
import { tracingFromEnv } from './otel-env.js';
import { Registrar } from '../backend/register.js';
import { parse, port, positiveInt, serverLimits, setting, UsageError } from './args.js';
import { CLIENT_ENV_HELP, CLIENT_FLAGS, CLIENT_FLAGS_HELP, clientLimits } from './client-flags.js';
import { serverTlsFiles, TLS_CLIENT_CA_FLAG, TLS_FLAGS, TLS_FLAGS_HELP, tlsFileExit } from './edge-flags.js';
import { fleetTarget, REDIS_TLS_FLAGS, REDIS_TLS_HELP } from './fleet.js';
import { onShutdownSignal } from './signals.js';

export const BACKEND_HELP = `infergate backend --model-repository DIR [--host H] [--port P] [--device cpu|cuda|webgpu]
                  [--models NAME[:VERSION],...] [--body-limit BYTES] [--drain-timeout-ms MS]
                  [--register REDIS_URL --backend NAME --advertise URL [--register-ttl-ms MS]]
                  [--headers-timeout-ms MS] [--request-timeout-ms MS] [--keep-alive-timeout-ms MS]
                  [--max-connections N] [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
                  [--redis-tls-ca FILE [--redis-tls-cert FILE --redis-tls-key FILE]]

One backend replica: the Open Inference Protocol v2 REST API over onnxruntime-node.
--models loads only the listed models at startup (NAME: every version, NAME:VERSION: that one);
the others are listed as not loaded and POST /v2/repository/models/NAME/load still loads them.
--register (fleet mode): heartbeat this replica's --advertise URL under the policy's backend NAME
in Redis (TTL --register-ttl-ms, 10000, refreshed every third of it), so that gateways started
with --redis send it traffic; on SIGTERM it deregisters before it drains. --redis-prefix P.
${CLIENT_FLAGS_HELP}
${TLS_FLAGS_HELP}
--tls-client-ca FILE requires every client (the gateways) to present a certificate signed by that CA (mTLS).
${REDIS_TLS_HELP}
Environment: INFERGATE_MODEL_REPOSITORY, INFERGATE_HOST (127.0.0.1), INFERGATE_PORT (8001),
INFERGATE_DEVICE (cpu), INFERGATE_MODELS (all), INFERGATE_BODY_LIMIT (67108864),
INFERGATE_DRAIN_TIMEOUT_MS (30000), INFERGATE_REGISTER, INFERGATE_BACKEND, INFERGATE_ADVERTISE,
INFERGATE_REDIS_PREFIX (infergate:), INFERGATE_TLS_CERT, INFERGATE_TLS_KEY, INFERGATE_TLS_CLIENT_CA,
INFERGATE_REDIS_TLS_CA, INFERGATE_REDIS_TLS_CERT, INFERGATE_REDIS_TLS_KEY, ${CLIENT_ENV_HELP}, INFERGATE_LOG_LEVEL (info).`;

/**
 * `--models`: comma-separated `name` or `name:version` entries (spaces around entries are
 * ignored). Checks the form only; buildBackend checks that each entry is in the repository.
 */
export function parseModelList(text: string): ModelSelector[] {
  const entries = text.split(',').map((e) => e.trim());
  if (entries.every((e) => e === '')) throw new UsageError('--models must name at least one model');
  return entries.map((entry) => {
    if (entry === '') throw new UsageError(`--models '${text.slice(0, 200)}' has an empty entry`);
    const colon = entry.indexOf(':');
    const name = colon === -1 ? entry : entry.slice(0, colon);
    const version = colon === -1 ? undefined : entry.slice(colon + 1);
    if (!isModelName(name)) {
      throw new UsageError(
        `--models entry '${entry.slice(0, 160)}': '${name.slice(0, 128)}' is not a model name`,
      );
    }
    if (version !== undefined && !isVersion(version)) {
      throw new UsageError(
        `--models entry '${entry.slice(0, 160)}': the version must be a positive integer, not '${version.slice(0, 32)}'`,
      );
    }
    return version === undefined ? { name } : { name, version };
  });
}

/** The option table of `infergate backend` (the deployment tests check manifests against it). */
export const BACKEND_OPTIONS = {
  'model-repository': { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  device: { type: 'string' },
  models: { type: 'string' },
  'body-limit': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  register: { type: 'string' },
  backend: { type: 'string' },
  advertise: { type: 'string' },
  'register-ttl-ms': { type: 'string' },
  'redis-prefix': { type: 'string' },
  ...CLIENT_FLAGS,
  ...TLS_FLAGS,
  ...TLS_CLIENT_CA_FLAG,
  ...REDIS_TLS_FLAGS,
} as const;

export async function backendCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, BACKEND_OPTIONS);
  const registerUrl = setting(values.register, 'INFERGATE_REGISTER');
  const fleet = registerUrl === undefined ? undefined : fleetTarget({ ...values, redis: registerUrl });
  const backendName = setting(values.backend, 'INFERGATE_BACKEND');
  const advertise = setting(values.advertise, 'INFERGATE_ADVERTISE');
  if (fleet !== undefined) {
    if (backendName === undefined || !/^[A-Za-z0-9._-]{1,128}$/.test(backendName)) {
      throw new UsageError("--register needs --backend NAME (the policy's backend name)");
    }
    if (advertise === undefined || !/^https?:\/\/[^/]+$/.test(advertise)) {
      throw new UsageError(
        '--register needs --advertise http://HOST:PORT (where gateways reach this replica)',
      );
    }
  } else if (backendName !== undefined || advertise !== undefined) {
    throw new UsageError('--backend and --advertise go with --register REDIS_URL');
  }
  const ttlMs = positiveInt(
    setting(values['register-ttl-ms'], 'INFERGATE_REGISTER_TTL_MS', '10000'),
    '--register-ttl-ms',
  );
  const root = setting(values['model-repository'], 'INFERGATE_MODEL_REPOSITORY');
  if (root === undefined) throw new UsageError('--model-repository DIR is required');
  const device = setting(values.device, 'INFERGATE_DEVICE', 'cpu');
  if (!DEVICES.includes(device as Device)) {
    throw new UsageError(`--device must be one of ${DEVICES.join(', ')}, not '${device}'`);
  }
  const host = setting(values.host, 'INFERGATE_HOST', '127.0.0.1');
  const listenPort = port(setting(values.port, 'INFERGATE_PORT', '8001'), '--port');
  const { bodyLimit, drainTimeoutMs } = serverLimits(values);
  const limits = clientLimits(values);
  const tls = serverTlsFiles(values);
  const modelList = setting(values.models, 'INFERGATE_MODELS');
  const models = modelList === undefined ? undefined : parseModelList(modelList);
  const logger = createLogger({
    name: 'infergate-backend',
    level: setting(undefined, 'INFERGATE_LOG_LEVEL', 'info'),
    ...logOutput(),
  });

  let backend: Backend;
  try {
    backend = await buildBackend({
      modelRepository: root,
      device: device as Device,
      bodyLimit,
      clientLimits: limits,
      ...(tls === undefined ? {} : { tls }),
      logger,
      models,
      tracing: tracingFromEnv(process.env, 'infergate-backend'),
    });
  } catch (e) {
    if (e instanceof ModelSelectionError) throw new UsageError(`--models: ${e.message}`);
    throw tlsFileExit(e);
  }
  const address = await backend.app.listen({ host, port: listenPort });
  logger.info(
    { address, models: (await backend.repository.index(true)).length },
    `backend listening on ${address}`,
  );
  const registrar =
    fleet === undefined
      ? undefined
      : new Registrar({
          ...fleet,
          backend: backendName as string,
          advertise: new URL(advertise as string).origin,
          ttlMs,
          logger,
          repository: backend.repository,
          draining: () => backend.draining,
        });
  registrar?.start();
  onShutdownSignal(logger, drainTimeoutMs, async () => {
    await registrar?.stop();
    await backend.shutdown();
  });
}
