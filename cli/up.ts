import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildBackend } from '../backend/server.js';
import { createLogger } from '../common/logging.js';
import { buildModelRepository, missingSampleModelFiles } from '../models/build.js';
import { parse, port, setting } from './args.js';
import { onShutdownSignal } from './signals.js';

export const UP_HELP = `infergate up [--model-repository DIR] [--port P]

The local stack on the embedded default: builds the sample models into DIR if any is missing
(default models/repository), then serves them from a backend replica (default 127.0.0.1:8001) and
prints a curl example. Ctrl-C stops it cleanly.`;

export async function upCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, { 'model-repository': { type: 'string' }, port: { type: 'string' } });
  const repo = resolve(
    setting(values['model-repository'], 'INFERGATE_MODEL_REPOSITORY', 'models/repository'),
  );
  const listenPort = port(setting(values.port, 'INFERGATE_PORT', '8001'), '--port');
  const logger = createLogger({
    name: 'infergate',
    level: setting(undefined, 'INFERGATE_LOG_LEVEL', 'info'),
  });

  const missing = await access(repo).then(
    () => missingSampleModelFiles(repo),
    () => ['(repository)'],
  );
  if (missing.length > 0) {
    logger.info({ repo }, 'building the sample model repository');
    await buildModelRepository(repo);
  }
  const backend = await buildBackend({ modelRepository: repo, logger });
  const address = await backend.app.listen({ host: '127.0.0.1', port: listenPort });
  const body = JSON.stringify({
    inputs: [
      { name: 'x', shape: [1, 64], datatype: 'FP32', data: Array.from({ length: 64 }, (_, i) => i / 64) },
    ],
  });
  process.stdout.write(
    [
      '',
      `infergate is up: backend replica at ${address} serving ${join(repo)}`,
      `models: ${(await backend.repository.index(true)).map((m) => `${m.name}/${m.version}`).join(' ')}`,
      '',
      'try:',
      `  curl -s ${address}/v2/models/mlp`,
      `  curl -s ${address}/v2/models/mlp/infer -H 'content-type: application/json' -d '${body}'`,
      '',
      'Ctrl-C stops it.',
      '',
    ].join('\n'),
  );
  onShutdownSignal(logger, 30_000, () => backend.shutdown());
}
