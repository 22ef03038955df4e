import { resolve } from 'node:path';
import { buildModelRepository } from '../models/build.js';
import { UsageError } from './args.js';

export const MODELS_HELP = `infergate models build DIR

Writes the sample model repository (simple, mlp v1 and v2, mlp-large, text-direction) into DIR,
deterministically: DIR/<model>/<version>/model.onnx and DIR/<model>/config.yaml.`;

export async function modelsCommand(argv: string[]): Promise<void> {
  const [sub, dir, ...extra] = argv;
  if (sub !== 'build' || dir === undefined || extra.length > 0)
    throw new UsageError('expected: models build DIR');
  const started = performance.now();
  const built = await buildModelRepository(resolve(dir));
  for (const m of built) process.stdout.write(`${m.name}/${m.version}  ${m.path}\n`);
  process.stdout.write(
    `built ${built.length} model versions in ${Math.round(performance.now() - started)} ms\n`,
  );
}
