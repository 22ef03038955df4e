import { readTextIfExists } from '../common/files.js';
import { parse as parseYaml } from 'yaml';
import type { Execution } from './session.js';

/** Per-model settings from the optional `<repository>/<model>/config.yaml`. */
export interface ModelConfig {
  /** Largest merged batch along dim 0; 0 turns dynamic batching off. */
  readonly max_batch_size: number;
  /** How long the oldest queued request may wait for others to join its batch. */
  readonly max_queue_delay_ms: number;
  /** Requests that may wait in the queue; beyond it, 503 with Retry-After. */
  readonly max_queue_size: number;
  /** onnxruntime intra-op threads; 0 lets onnxruntime choose. */
  readonly intra_op_threads: number;
  readonly inter_op_threads: number;
  /**
   * `worker` (default): the session runs in its own thread, so a long batch never blocks the
   * event loop. `inline`: it runs on the event loop, saving the thread hop for models that take
   * microseconds.
   */
  readonly execution: Execution;
}

export const DEFAULT_MODEL_CONFIG: ModelConfig = Object.freeze({
  max_batch_size: 0,
  max_queue_delay_ms: 0,
  max_queue_size: 1024,
  intra_op_threads: 0,
  inter_op_threads: 0,
  execution: 'worker',
});

const EXECUTIONS: readonly Execution[] = ['worker', 'inline'];

const LIMITS: Record<Exclude<keyof ModelConfig, 'execution'>, readonly [number, number]> = {
  max_batch_size: [0, 1 << 20],
  max_queue_delay_ms: [0, 60_000],
  max_queue_size: [1, 1 << 20],
  intra_op_threads: [0, 1024],
  inter_op_threads: [0, 1024],
};

export class ModelConfigError extends Error {}

/** Validates a parsed config document; every problem is reported with its key. */
export function parseModelConfig(doc: unknown, where: string): ModelConfig {
  if (doc === null || doc === undefined) return DEFAULT_MODEL_CONFIG;
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ModelConfigError(`${where}: must be a mapping of settings`);
  }
  const out: Record<string, number | string> = { ...DEFAULT_MODEL_CONFIG };
  const errors: string[] = [];
  for (const [key, value] of Object.entries(doc)) {
    if (key === 'execution') {
      if (EXECUTIONS.includes(value as Execution)) out.execution = value as Execution;
      else errors.push(`execution: must be one of ${EXECUTIONS.join(', ')}`);
      continue;
    }
    const limits = Object.hasOwn(LIMITS, key) ? LIMITS[key as keyof typeof LIMITS] : undefined;
    if (limits === undefined) {
      errors.push(`${key}: unknown setting (known: ${[...Object.keys(LIMITS), 'execution'].join(', ')})`);
      continue;
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < limits[0] || value > limits[1]) {
      errors.push(`${key}: must be an integer in [${limits[0]}, ${limits[1]}]`);
      continue;
    }
    out[key] = value;
  }
  if (errors.length > 0) throw new ModelConfigError(`${where}: ${errors.join('; ')}`);
  return Object.freeze(out as unknown as ModelConfig);
}

export async function readModelConfig(path: string): Promise<ModelConfig> {
  const text = await readTextIfExists(path);
  if (text === undefined) return DEFAULT_MODEL_CONFIG;
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ModelConfigError(`${path}: not valid YAML: ${(e as Error).message}`);
  }
  return parseModelConfig(doc, path);
}
