/** bench:backend as a function (load/bench-backend.ts is its CLI; load/bench-all.ts calls it too). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModelRepository } from '../../models/build.js';
import { type BackendReport, measure } from './measure.js';
import { profile } from './profile.js';
import { Bench, type BackendOptions } from './setup.js';

/** Runs bench:backend; returns its JSON and file name (undefined with --profile, which writes its own). */
export async function benchBackend(options: BackendOptions): Promise<BackendReport | undefined> {
  const work = await mkdtemp(join(tmpdir(), 'infergate-bench-'));
  try {
    const base = join(work, 'base');
    await buildModelRepository(base);
    const bench = new Bench(options, work, base);
    if (options.profile) {
      await profile(bench, await bench.variant('simple-overhead', 64));
      return undefined;
    }
    return await measure(bench);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
