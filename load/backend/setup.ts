/**
 * The options of `npm run bench:backend`, checked once, and the model repositories it serves:
 * the sample models built into a temporary folder, and variants of mlp-large and simple with
 * batching on or off.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { root } from '../common.js';

export interface BackendOptions {
  quick: boolean;
  threads: number;
  delayMs: number;
  overheadOnly: boolean;
  runs: number;
  compiled: boolean;
  warmup: number;
  profile: boolean;
  profileTarget: 'backend' | 'bare';
}

export function parseBackendOptions(argv: readonly string[]): BackendOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      // One core is left to the backend's event loop and, here, the load client on the same machine.
      threads: { type: 'string', default: String(Math.max(1, availableParallelism() - 1)) },
      'delay-ms': { type: 'string', default: '1' },
      only: { type: 'string' },
      runs: { type: 'string', default: '9' },
      compiled: { type: 'boolean', default: false },
      warmup: { type: 'string', default: '20000' },
      profile: { type: 'boolean', default: false },
      'profile-target': { type: 'string', default: 'backend' },
    },
  });
  if (values.only !== undefined && values.only !== 'overhead') {
    throw new Error(`--only takes 'overhead', not '${values.only}'`);
  }
  const profileTarget = values['profile-target'];
  if (profileTarget !== 'backend' && profileTarget !== 'bare') {
    throw new Error(`--profile-target takes backend or bare, not '${profileTarget}'`);
  }
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer`);
  const warmup = Number(values.warmup);
  if (!Number.isSafeInteger(warmup) || warmup < 0) throw new Error(`--warmup must be a whole number`);
  return {
    quick: values.quick,
    threads: Number(values.threads),
    delayMs: Number(values['delay-ms']),
    overheadOnly: values.only === 'overhead',
    runs,
    compiled: values.compiled,
    warmup,
    profile: values.profile,
    profileTarget,
  };
}

/** What every part is given: the options, the sample repository, and the request scale. */
export class Bench {
  readonly scale: number;

  constructor(
    readonly o: BackendOptions,
    readonly work: string,
    /** The sample models, built afresh. */
    readonly base: string,
  ) {
    this.scale = o.quick ? 0.25 : 1;
  }

  /** A request count, scaled for --quick. */
  n(count: number): number {
    return Math.max(200, Math.round(count * this.scale));
  }

  /** A repository holding mlp-large (with the given batching) and simple. */
  async variant(name: string, maxBatchSize: number): Promise<string> {
    const dir = join(this.work, name);
    const models: [string, string][] = [
      [
        'mlp-large',
        `max_batch_size: ${maxBatchSize}\nmax_queue_delay_ms: ${this.o.delayMs}\nmax_queue_size: 4096\n`,
      ],
      [
        'simple',
        `max_batch_size: ${maxBatchSize}\nmax_queue_delay_ms: 0\nmax_queue_size: 4096\nexecution: inline\n`,
      ],
    ];
    for (const [model, config] of models) {
      await mkdir(join(dir, model, '1'), { recursive: true });
      await symlink(join(this.base, model, '1', 'model.onnx'), join(dir, model, '1', 'model.onnx'));
      await writeFile(
        join(dir, model, 'config.yaml'),
        `${config}intra_op_threads: ${model === 'simple' ? 1 : this.o.threads}\ninter_op_threads: 1\n`,
      );
    }
    return dir;
  }

  backendArgs(repo: string): string[] {
    const cli = this.o.compiled ? join(root, 'dist', 'cli', 'main.js') : join(root, 'bin', 'infergate.js');
    return [cli, 'backend', '--model-repository', repo, '--port', '0'];
  }
}

/** The bare fastify route that part 2 compares the backend with. */
export const bareArgs = ['--import', 'tsx', join(root, 'load', 'bare-fastify.ts')];
