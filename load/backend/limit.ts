/**
 * In-process onnxruntime, the yardsticks of bench:backend: mlp-large at its best batch with the
 * same threads (the limit of this machine), and what one session.run of `simple` costs.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { sessionOptions } from '../../backend/model.js';
import type { Bench } from './setup.js';

export interface Limit {
  /** Samples a second at `batch`, over about `ms` of back-to-back runs. */
  at(batch: number, ms: number): Promise<number>;
  release(): Promise<void>;
}

export async function openLimit(b: Bench): Promise<Limit> {
  const session = await ort.InferenceSession.create(join(b.base, 'mlp-large', '1', 'model.onnx'), {
    intraOpNumThreads: b.o.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const inputs = new Map<number, ort.Tensor>();
  return {
    async at(batch, ms) {
      let x = inputs.get(batch);
      if (x === undefined) {
        x = new ort.Tensor(
          'float32',
          Float32Array.from({ length: batch * 512 }, (_, i) => Math.sin(i)),
          [batch, 512],
        );
        inputs.set(batch, x);
        for (let i = 0; i < 3; i++) await session.run({ x });
      }
      let runs = 0;
      const started = performance.now();
      while (performance.now() - started < ms) {
        await session.run({ x });
        runs++;
      }
      return (batch * runs * 1000) / (performance.now() - started);
    },
    release: () => session.release(),
  };
}

/**
 * CPU of one onnxruntime session.run of `simple` in this process, at `batch` rows, with the
 * backend's session options for it (one thread, no spinning): the share of the backend's CPU per
 * request that is inference itself, a floor (the served run also pays for a cache that the rest
 * of the request has cooled).
 */
export async function simpleRunCost(b: Bench, batch: number): Promise<number> {
  // The options the backend gives `simple` here (variant(): one intra-op and one inter-op thread).
  const session = await ort.InferenceSession.create(join(b.base, 'simple', '1', 'model.onnx'), {
    ...sessionOptions({ intra_op_threads: 1, inter_op_threads: 1 }),
    executionProviders: ['cpu'],
  });
  try {
    const tensor = () =>
      new ort.Tensor(
        'int32',
        Int32Array.from({ length: batch * 16 }, (_, i) => i),
        [batch, 16],
      );
    const feeds = () => ({ INPUT0: tensor(), INPUT1: tensor() });
    for (let i = 0; i < 2000; i++) await session.run(feeds());
    const count = b.n(20000);
    const before = process.cpuUsage();
    for (let i = 0; i < count; i++) await session.run(feeds());
    const used = process.cpuUsage(before);
    return (used.user + used.system) / count;
  } finally {
    await session.release();
  }
}
