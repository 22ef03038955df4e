import { buildBackend } from '../backend/server.js';
import { DEVICES, type Device } from '../backend/model.js';
import { createLogger } from '../common/logging.js';
import { parse, port, positiveInt, setting, UsageError } from './args.js';
import { onShutdownSignal } from './signals.js';

export const BACKEND_HELP = `infergate backend --model-repository DIR [--host H] [--port P] [--device cpu|cuda|webgpu]
                  [--body-limit BYTES] [--drain-timeout-ms MS]

One backend replica: the Open Inference Protocol v2 REST API over onnxruntime-node.
Environment: INFERGATE_MODEL_REPOSITORY, INFERGATE_HOST (127.0.0.1), INFERGATE_PORT (8001),
INFERGATE_DEVICE (cpu), INFERGATE_BODY_LIMIT (67108864), INFERGATE_LOG_LEVEL (info).`;

export async function backendCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    'model-repository': { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    device: { type: 'string' },
    'body-limit': { type: 'string' },
    'drain-timeout-ms': { type: 'string' },
  });
  const root = setting(values['model-repository'], 'INFERGATE_MODEL_REPOSITORY');
  if (root === undefined) throw new UsageError('--model-repository DIR is required');
  const device = setting(values.device, 'INFERGATE_DEVICE', 'cpu');
  if (!DEVICES.includes(device as Device)) {
    throw new UsageError(`--device must be one of ${DEVICES.join(', ')}, not '${device}'`);
  }
  const host = setting(values.host, 'INFERGATE_HOST', '127.0.0.1');
  const listenPort = port(setting(values.port, 'INFERGATE_PORT', '8001'), '--port');
  const bodyLimit = positiveInt(
    setting(values['body-limit'], 'INFERGATE_BODY_LIMIT', String(64 * 1024 * 1024)),
    '--body-limit',
  );
  const drainTimeoutMs = positiveInt(
    setting(values['drain-timeout-ms'], 'INFERGATE_DRAIN_TIMEOUT_MS', '30000'),
    '--drain-timeout-ms',
  );
  const logger = createLogger({
    name: 'infergate-backend',
    level: setting(undefined, 'INFERGATE_LOG_LEVEL', 'info'),
  });

  const backend = await buildBackend({ modelRepository: root, device: device as Device, bodyLimit, logger });
  const address = await backend.app.listen({ host, port: listenPort });
  logger.info(
    { address, models: (await backend.repository.index(true)).length },
    `backend listening on ${address}`,
  );
  onShutdownSignal(logger, drainTimeoutMs, () => backend.shutdown());
}
