import type * as ort from 'onnxruntime-node';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logging.js';
import { ApiError } from '../common/errors.js';
import type { DecodedRequest, RequestedOutput, Tensor } from '../common/oip/codec.js';
import {
  allocTyped,
  allocTypedSmall,
  DATATYPE_INFO,
  type Datatype,
  datatypeFromOrt,
  type TensorData,
  type TypedArray,
} from '../common/oip/datatypes.js';
import { Batcher, ItemError, QueueFullError, type Settle } from './batcher.js';
import type { ModelConfig } from './config.js';
import { BE_ERRORS, onnxruntimeMessage } from './errors.js';
import { type LoadedSession, openSession, RunError, type SessionRunner, type WireTensor } from './session.js';

/** Runs `fn` after two more turns of the event loop (each reads the sockets that are ready). */
function gatherTwoTurns(fn: () => void): void {
  setImmediate(setImmediate, fn);
}

/** onnxruntime messages that speak of the replica, not the request: memory, a device, a provider. */
const REPLICA_FAULT = /alloc|out of memory|CUDA|cuDNN|cuBLAS|EP_FAIL|device/i;

export type Device = 'cpu' | 'cuda' | 'webgpu';
export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu'];

/** A model input or output as the protocol describes it: -1 marks a dynamic dim. */
export interface TensorSpec {
  name: string;
  /** Undefined when the protocol has no datatype for the ONNX type (the model still loads). */
  datatype: Datatype | undefined;
  ortType: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[] }[];
  parameters: Record<string, unknown>;
}

/** A validated request, ready for the batcher: inputs in the model's order. */
export interface PreparedRequest {
  inputs: Tensor[];
  rows: number;
  key: string;
}

export interface BatchObserver {
  onBatch(rows: number, waitsMs: readonly number[]): void;
  onCompute(seconds: number): void;
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

function specOf(meta: ort.InferenceSession.ValueMetadata): TensorSpec {
  if (!meta.isTensor) return { name: meta.name, datatype: undefined, ortType: 'non-tensor', shape: [] };
  return {
    name: meta.name,
    datatype: datatypeFromOrt(meta.type),
    ortType: meta.type,
    shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
  };
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

/** onnxruntime-node cuts string tensor elements at the first NUL byte: refuse them, never truncate. */
function checkBytesElements(data: readonly string[], field: string): void {
  for (let i = 0; i < data.length; i++) {
    if (data[i]!.includes('\0')) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_INVALID_DATA,
        `${field}[${i}] holds a NUL byte, which onnxruntime string tensors cannot carry`,
        { field },
      );
    }
  }
}

export class LoadedModel {
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
  /** Effective max batch size: 0 when the config or the model's shapes rule batching out. */
  readonly maxBatchSize: number;
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
      run: (batch) => this.runBatch(batch, opts.observer),
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
   * Checks a decoded request against the model: input names and count, datatypes, rank, fixed
   * dims, one batch size across inputs, and the requested outputs.
   */
  prepare(req: DecodedRequest): PreparedRequest {
    const given = req.inputs;
    // Unknown names first, in request order (the codec has already refused duplicates).
    for (let i = 0; i < given.length; i++) {
      const name = given[i]!.name;
      if (this.specIndex(this.inputs, name) === -1) {
        throw new ApiError(
          BE_ERRORS.BE_ERR_UNKNOWN_INPUT,
          `model '${this.name}' has no input '${name}' (inputs: ${this.inputs.map((s) => s.name).join(', ')})`,
          { field: `inputs[${i}].name` },
        );
      }
    }
    let rows = -1;
    let key = '';
    const inputs: Tensor[] = [];
    for (let j = 0; j < this.inputs.length; j++) {
      const spec = this.inputs[j]!;
      // Clients usually send inputs in the model's order.
      let index = given[j]?.name === spec.name ? j : -1;
      if (index === -1) {
        for (let i = 0; i < given.length; i++) {
          if (given[i]!.name === spec.name) {
            index = i;
            break;
          }
        }
      }
      if (index === -1) {
        throw new ApiError(
          BE_ERRORS.BE_ERR_MISSING_INPUT,
          `model '${this.name}' needs input '${spec.name}'`,
          {
            field: 'inputs',
          },
        );
      }
      const input = given[index]!;
      const field = `inputs[${index}]`;
      if (spec.datatype === undefined || DATATYPE_INFO[spec.datatype].ort === undefined) {
        throw new ApiError(
          BE_ERRORS.BE_ERR_UNSUPPORTED_DATATYPE,
          `input '${spec.name}' has ONNX type '${spec.ortType}', which this server cannot feed`,
          { field: `${field}.datatype` },
        );
      }
      if (input.datatype !== spec.datatype) {
        throw new ApiError(
          BE_ERRORS.BE_ERR_DATATYPE_MISMATCH,
          `input '${spec.name}' is ${spec.datatype}, not ${input.datatype}`,
          { field: `${field}.datatype` },
        );
      }
      this.checkDims(spec, input.shape, index);
      if (input.datatype === 'BYTES') checkBytesElements(input.data as string[], `${field}.data`);
      if (this.maxBatchSize > 0) {
        const n = input.shape[0]!;
        if (rows !== -1 && n !== rows) {
          throw new ApiError(
            BE_ERRORS.BE_ERR_SHAPE_MISMATCH,
            `input '${spec.name}' has batch size ${n} but an earlier input has ${rows}`,
            { field: `${field}.shape[0]` },
          );
        }
        rows = n;
        // The batching key: every input's dims but the first, 'x'-joined, '|' between inputs.
        if (j > 0) key += '|';
        for (let d = 1; d < input.shape.length; d++)
          key += d === 1 ? `${input.shape[d]}` : `x${input.shape[d]}`;
      }
      inputs.push({ name: spec.name, datatype: input.datatype, shape: input.shape, data: input.data });
    }
    if (this.maxBatchSize > 0 && rows > this.maxBatchSize) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_BATCH_TOO_LARGE,
        `batch size ${rows} is larger than max_batch_size ${this.maxBatchSize} of model '${this.name}'`,
        { field: 'inputs[0].shape[0]' },
      );
    }
    this.checkOutputs(req.outputs, req.binaryOutput);
    // Without batching, rows only feed the batch-size histogram: dim 0 of the first input.
    if (rows === -1) rows = inputs[0]?.shape[0] ?? 1;
    return { inputs, rows, key };
  }

  private specIndex(specs: readonly TensorSpec[], name: string): number {
    for (let i = 0; i < specs.length; i++) if (specs[i]!.name === name) return i;
    return -1;
  }

  private checkDims(spec: TensorSpec, shape: number[], index: number): void {
    if (spec.shape.length !== shape.length) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_SHAPE_MISMATCH,
        `input '${spec.name}' has rank ${spec.shape.length} [${spec.shape.join(',')}], not ${shape.length} [${shape.join(',')}]`,
        { field: `inputs[${index}].shape` },
      );
    }
    for (let d = 0; d < shape.length; d++) {
      const want = spec.shape[d]!;
      if (want !== -1 && want !== shape[d]) {
        throw new ApiError(
          BE_ERRORS.BE_ERR_SHAPE_MISMATCH,
          `input '${spec.name}' dim ${d} must be ${want}, not ${shape[d]} (model shape [${spec.shape.join(',')}])`,
          { field: `inputs[${index}].shape[${d}]` },
        );
      }
    }
  }

  private checkOutputs(requested: RequestedOutput[] | undefined, binaryDefault: boolean): void {
    if (requested === undefined) {
      // Every output, in the default form.
      if (binaryDefault) return;
      for (const spec of this.outputs) {
        if (spec.datatype === undefined || !DATATYPE_INFO[spec.datatype].json) {
          throw this.noJsonForm(spec, 'parameters.binary_data_output');
        }
      }
      return;
    }
    for (let i = 0; i < requested.length; i++) {
      const o = requested[i]!;
      const index = this.specIndex(this.outputs, o.name);
      if (index === -1) {
        throw new ApiError(
          BE_ERRORS.BE_ERR_UNKNOWN_OUTPUT,
          `model '${this.name}' has no output '${o.name}' (outputs: ${this.outputs.map((s) => s.name).join(', ')})`,
          { field: `outputs[${i}].name` },
        );
      }
      const spec = this.outputs[index]!;
      if (!o.binary && (spec.datatype === undefined || !DATATYPE_INFO[spec.datatype].json)) {
        throw this.noJsonForm(spec, `outputs[${i}].parameters.binary_data`);
      }
    }
  }

  private noJsonForm(spec: TensorSpec, field: string): ApiError {
    return new ApiError(
      BE_ERRORS.BE_ERR_UNSUPPORTED_DATATYPE,
      `output '${spec.name}' is ${spec.datatype ?? spec.ortType}, which has no JSON form; ask for it with binary_data`,
      { field },
    );
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
    const merged = batch.length === 1 ? batch[0]!.inputs : this.concat(batch);
    // Inputs are in the model's order (prepare puts them so).
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
    return batch.length === 1 ? [outputs] : this.split(batch, outputs);
  }

  private concat(batch: readonly PreparedRequest[]): Tensor[] {
    let rows = 0;
    for (const r of batch) rows += r.rows;
    const first = batch[0]!.inputs;
    const merged: Tensor[] = [];
    for (let i = 0; i < first.length; i++) {
      const t = first[i]!;
      const shape = t.shape.slice();
      shape[0] = rows;
      let data: TensorData;
      if (t.datatype === 'BYTES') {
        const out: string[] = [];
        for (const r of batch) for (const e of r.inputs[i]!.data as string[]) out.push(e);
        data = out;
      } else {
        let total = 0;
        for (const r of batch) total += r.inputs[i]!.data.length;
        // On the event loop the merged data stays on this thread: small ones share a slab.
        const out = this.inline ? allocTypedSmall(t.datatype, total) : allocTyped(t.datatype, total);
        let offset = 0;
        for (const r of batch) {
          const part = r.inputs[i]!.data as TypedArray;
          (out as Uint8Array).set(part as Uint8Array, offset);
          offset += part.length;
        }
        data = out;
      }
      merged.push({ name: t.name, datatype: t.datatype, shape, data });
    }
    return merged;
  }

  private split(batch: readonly PreparedRequest[], outputs: Tensor[]): Tensor[][] {
    let rows = 0;
    for (const r of batch) rows += r.rows;
    for (const o of outputs) {
      if (o.shape[0] !== rows) {
        throw new ApiError(
          BE_ERRORS.BE_ERR_INFERENCE_FAILED,
          `output '${o.name}' has ${o.shape[0]} rows for a batch of ${rows}; the model is not batch-major`,
        );
      }
    }
    const rowSizes: number[] = [];
    for (const o of outputs) {
      let size = 1;
      for (let d = 1; d < o.shape.length; d++) size *= o.shape[d]!;
      rowSizes.push(size);
    }
    const answers: Tensor[][] = [];
    let offset = 0;
    for (const r of batch) {
      const mine: Tensor[] = [];
      for (let k = 0; k < outputs.length; k++) {
        const o = outputs[k]!;
        const start = offset * rowSizes[k]!;
        const end = (offset + r.rows) * rowSizes[k]!;
        const data = Array.isArray(o.data)
          ? o.data.slice(start, end)
          : (o.data as TypedArray).subarray(start, end);
        const shape = o.shape.slice();
        shape[0] = r.rows;
        mine.push({ name: o.name, datatype: o.datatype, shape, data });
      }
      offset += r.rows;
      answers.push(mine);
    }
    return answers;
  }

  /** Waits for queued work to finish, then frees the session. */
  async close(): Promise<void> {
    await this.batcher.idle();
    await this.session.release();
  }
}
