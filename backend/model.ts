import type * as ort from 'onnxruntime-node';
import type { Clock } from '../common/clock.js';
import { ApiError } from '../common/errors.js';
import type { Logger } from '../common/logging.js';
import { rawInput } from '../common/oip/decode-request.js';
import type { TensorData } from '../common/oip/datatypes.js';
import type { RawInput, Tensor } from '../common/oip/messages.js';
import { concatRows, splitRows } from './batch-tensors.js';
import { Batcher, ItemError, QueueFullError, type Settle } from './batcher.js';
import type { ModelConfig } from './config.js';
import { BE_ERRORS, onnxruntimeMessage } from './errors.js';
import { type LoadedSession, openSession, RunError, type SessionRunner, type WireTensor } from './session.js';
import { specOf, type TensorSpec } from './tensor-spec.js';
import type { PreparedRequest } from './validate.js';

/** Runs `fn` after two more turns of the event loop (each reads the sockets that are ready). */
function gatherTwoTurns(fn: () => void): void {
  setImmediate(setImmediate, fn);
}

/** onnxruntime messages that speak of the replica, not the request: memory, a device, a provider. */
const REPLICA_FAULT = /alloc|out of memory|CUDA|cuDNN|cuBLAS|EP_FAIL|device/i;

export type Device = 'cpu' | 'cuda' | 'webgpu';
export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu'];

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[] }[];
  parameters: Record<string, unknown>;
}

export interface BatchObserver {
  onBatch(rows: number, waitsMs: readonly number[]): void;
  onCompute(seconds: number): void;
  /** With tracing on: a batch starts; returns what to call when it ends (or undefined). */
  batchStarted?(batch: readonly PreparedRequest[]): ((error: unknown) => void) | undefined;
}

export interface LoadOptions {
  name: string;
  version: string;
  path: string;
  config: ModelConfig;
  device: Device;
  clock: Clock;
  logger: Logger;
  observer: BatchObserver;
}

/** The onnxruntime session options a model's config asks for (the benchmark uses them too). */
export function sessionOptions(
  config: Pick<ModelConfig, 'intra_op_threads' | 'inter_op_threads'>,
): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    // onnxruntime's pool threads spin after each run by default; on a small machine that spinning
    // takes the cores the event loop needs to parse and answer requests.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    ...(config.intra_op_threads > 0 ? { intraOpNumThreads: config.intra_op_threads } : {}),
    ...(config.inter_op_threads > 0 ? { interOpNumThreads: config.inter_op_threads } : {}),
  };
}

async function createSession(opts: LoadOptions): Promise<LoadedSession> {
  const options = sessionOptions(opts.config);
  const loaded = await openSession(opts.path, opts.device, options, opts.config.execution);
  if (loaded.fallbackReason !== undefined) {
    opts.logger.warn(
      { model: opts.name, version: opts.version, device: opts.device, reason: loaded.fallbackReason },
      `execution provider '${opts.device}' could not load; serving on cpu`,
    );
  }
  return loaded;
}

export class LoadedModel {
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
  /** Effective max batch size: 0 when the config or the model's shapes rule batching out. */
  readonly maxBatchSize: number;
  /** The input a raw binary body fills: undefined unless the model has one input that can take one. */
  readonly rawInput: RawInput | undefined;
  private readonly batcher: Batcher<PreparedRequest, Tensor[]>;
  /** Whether the session runs on the event loop (execution: inline), not in a worker thread. */
  private readonly inline: boolean;

  private constructor(
    readonly name: string,
    readonly version: string,
    readonly provider: Device,
    readonly config: ModelConfig,
    private readonly session: SessionRunner,
    meta: { inputs: ort.InferenceSession.ValueMetadata[]; outputs: ort.InferenceSession.ValueMetadata[] },
    opts: LoadOptions,
  ) {
    this.inputs = meta.inputs.map(specOf);
    this.outputs = meta.outputs.map(specOf);
    const only = this.inputs.length === 1 ? this.inputs[0]! : undefined;
    this.rawInput = only === undefined ? undefined : rawInput(only.name, only.datatype, only.shape);
    const batchable = [...this.inputs, ...this.outputs].every(
      (s) => s.shape.length >= 1 && s.shape[0] === -1,
    );
    if (config.max_batch_size > 0 && !batchable) {
      opts.logger.warn(
        { model: name, version },
        'max_batch_size is set but not every input and output has a dynamic dim 0; batching is off',
      );
    }
    this.maxBatchSize = batchable ? config.max_batch_size : 0;
    this.inline = config.execution === 'inline';
    this.batcher = new Batcher({
      maxBatchSize: this.maxBatchSize,
      maxQueueDelayMs: config.max_queue_delay_ms,
      maxQueueSize: config.max_queue_size,
      clock: opts.clock,
      // On the event loop, a batch that could start is taken two turns of the loop later, so
      // that what the loop reads in those turns joins it: a few microseconds buy fewer session
      // runs. At 8 connections on `simple` a batch held 2.8 requests when taken at once, 5 after
      // one turn and 7.4 after two, and the backend's CPU per request fell with each (about 60 ->
      // 50 us on the benchmark's VM at two turns; p50 and p99 fell too, and a lone client saw no
      // difference). A worker thread is not made to wait: it computes while the loop reads.
      gather: this.inline ? gatherTwoTurns : undefined,
      // The server's callbacks catch their own errors; one that escapes is a bug, logged.
      onSettleError: (e) => opts.logger.error({ model: name, version, err: e }, 'answering a request failed'),
      run:
        opts.observer.batchStarted === undefined
          ? (batch) => this.runBatch(batch, opts.observer)
          : (batch) => this.tracedBatch(batch, opts.observer),
      onBatch: (rows, waits) => opts.observer.onBatch(rows, waits),
    });
  }

  static async load(opts: LoadOptions): Promise<LoadedModel> {
    const loaded = await createSession(opts);
    return new LoadedModel(
      opts.name,
      opts.version,
      loaded.provider as Device,
      opts.config,
      loaded.session,
      loaded,
      opts,
    );
  }

  get queueDepth(): number {
    return this.batcher.depth;
  }

  metadata(versions: string[]): ModelMetadata {
    const pub = (s: TensorSpec) => ({ name: s.name, datatype: s.datatype ?? s.ortType, shape: s.shape });
    return {
      name: this.name,
      versions,
      platform: 'onnx_onnxv1',
      inputs: this.inputs.map(pub),
      outputs: this.outputs.map(pub),
      parameters: { execution_provider: this.provider, max_batch_size: this.maxBatchSize },
    };
  }

  /**
   * Queues a prepared request; `settle` is told every output of the model, in model order, or the
   * error. Throws (queueing nothing) when the queue is full: 503 BE_ERR_QUEUE_FULL.
   */
  infer(req: PreparedRequest, settle: Settle<Tensor[]>): void {
    if (this.batcher.full) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_QUEUE_FULL,
        `model '${this.name}' version ${this.version}: ${new QueueFullError(this.config.max_queue_size).message}`,
        { retryAfterSeconds: 1 },
      );
    }
    this.batcher.enqueue(req, req.rows, req.key, settle);
  }

  /** Runs a batch inside its span (tracing on). */
  private tracedBatch(
    batch: readonly PreparedRequest[],
    observer: BatchObserver,
  ): Promise<(Tensor[] | ItemError)[]> {
    const end = observer.batchStarted?.(batch);
    const run = this.runBatch(batch, observer);
    if (end === undefined) return run;
    return run.then(
      (r) => {
        end(undefined);
        return r;
      },
      (e: unknown) => {
        end(e ?? new Error('batch failed'));
        throw e;
      },
    );
  }

  /**
   * Runs a batch. When onnxruntime refuses a merged batch, each request runs again alone, so that
   * one request's data (an index out of range, say) fails only that request. Those re-runs are
   * timed in the compute histogram but are not counted as batches.
   */
  private async runBatch(
    batch: readonly PreparedRequest[],
    observer: BatchObserver,
  ): Promise<(Tensor[] | ItemError)[]> {
    try {
      return await this.runMerged(batch, observer);
    } catch (e) {
      if (batch.length === 1 || !(e instanceof RunError)) throw this.runFailure(e);
      const out: (Tensor[] | ItemError)[] = [];
      for (const r of batch) {
        try {
          out.push((await this.runMerged([r], observer))[0]!);
        } catch (alone) {
          out.push(new ItemError(this.runFailure(alone)));
        }
      }
      return out;
    }
  }

  /**
   * What a failed run answers. onnxruntime's refusal of a request that passed every check against
   * the model's metadata is the request's fault and would fail on every replica: 400, which the
   * gateway neither retries nor counts against the replica. Failures of the replica itself (memory,
   * a device, the session's thread) stay 500.
   */
  private runFailure(e: unknown): ApiError {
    if (e instanceof ApiError) return e;
    const raw = e instanceof Error ? e.message : String(e);
    const detail = onnxruntimeMessage(raw);
    if (e instanceof RunError && !REPLICA_FAULT.test(raw)) {
      return new ApiError(
        BE_ERRORS.BE_ERR_INFERENCE_REJECTED,
        `model '${this.name}' version ${this.version} cannot run on this input: ${detail}`,
        { cause: e },
      );
    }
    return new ApiError(BE_ERRORS.BE_ERR_INFERENCE_FAILED, `onnxruntime failed: ${detail}`, { cause: e });
  }

  private async runMerged(batch: readonly PreparedRequest[], observer: BatchObserver): Promise<Tensor[][]> {
    const merged = batch.length === 1 ? batch[0]!.inputs : concatRows(batch, this.inline);
    // Inputs are in the model's order (validateRequest puts them so).
    const feeds: WireTensor[] = [];
    for (let i = 0; i < merged.length; i++) {
      const t = merged[i]!;
      feeds.push({ name: t.name, type: this.inputs[i]!.ortType, dims: t.shape, data: t.data });
    }
    const result = await this.session.run(feeds);
    observer.onCompute(result.computeMs / 1000);
    const outputs: Tensor[] = [];
    for (const spec of this.outputs) {
      let t: WireTensor | undefined;
      for (const o of result.outputs) {
        if (o.name === spec.name) {
          t = o;
          break;
        }
      }
      outputs.push({
        name: spec.name,
        datatype: spec.datatype!,
        shape: t!.dims,
        data: t!.data as TensorData,
      });
    }
    return batch.length === 1 ? [outputs] : splitRows(batch, outputs);
  }

  /** Waits for queued work to finish, then frees the session. */
  async close(): Promise<void> {
    await this.batcher.idle();
    await this.session.release();
  }
}
