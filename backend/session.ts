import { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import { loadSession, ownsBuffer, runSession } from './session-core.js';

/** Where a model's session runs: its own worker thread (default), or the event loop. */
export type Execution = 'worker' | 'inline';

/** One loaded onnxruntime session, wherever it runs. */
export interface SessionRunner {
  run(feeds: WireTensor[]): Promise<{ outputs: WireTensor[]; computeMs: number }>;
  release(): Promise<void>;
}

/** A tensor crossing the thread boundary: plain data, typed arrays transferred where possible. */
export interface WireTensor {
  name: string;
  type: string;
  dims: number[];
  data: ArrayBufferView | string[];
}

export interface LoadedSession {
  session: SessionRunner;
  provider: string;
  /** Why the asked device could not be used, when the session fell back to cpu. */
  fallbackReason: string | undefined;
  inputs: ort.InferenceSession.ValueMetadata[];
  outputs: ort.InferenceSession.ValueMetadata[];
}

/**
 * onnxruntime's own exception from one run: it refused the feeds (a dim a kernel cannot take, an
 * index out of range) or failed while computing. Anything else that fails a run (the session's
 * thread gone) is a plain Error.
 */
export class RunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunError';
  }
}

interface Pending {
  resolve: (r: { outputs: WireTensor[]; computeMs: number }) => void;
  reject: (e: Error) => void;
}

const WORKER_URL = new URL('./session-worker.js', import.meta.url);

function transferList(feeds: readonly WireTensor[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const f of feeds) {
    const d = f.data;
    if (!ArrayBuffer.isView(d)) continue;
    // Only whole, unshared buffers move; a view into a larger buffer is copied by the clone.
    if (ownsBuffer(d) && !out.includes(d.buffer as ArrayBuffer)) out.push(d.buffer as ArrayBuffer);
  }
  return out;
}

/** An onnxruntime session that runs in its own worker thread (see session-worker.js). */
export class WorkerSession implements SessionRunner {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on(
      'message',
      (msg: {
        type: string;
        id?: number;
        outputs?: WireTensor[];
        computeMs?: number;
        message?: string;
        onnxruntime?: boolean;
      }) => {
        if (msg.id === undefined) return;
        const p = this.pending.get(msg.id);
        if (p === undefined) return;
        this.pending.delete(msg.id);
        if (msg.type === 'result') p.resolve({ outputs: msg.outputs!, computeMs: msg.computeMs! });
        else {
          const message = msg.message ?? 'inference failed';
          p.reject(msg.onnxruntime === true ? new RunError(message) : new Error(message));
        }
      },
    );
    const fail = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`session worker exited with code ${code}`)));
  }

  static create(
    path: string,
    device: string,
    options: ort.InferenceSession.SessionOptions,
  ): Promise<LoadedSession> {
    const worker = new Worker(WORKER_URL);
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      worker.once('error', onError);
      worker.once('message', (msg: { type: string; message?: string } & Omit<LoadedSession, 'session'>) => {
        worker.off('error', onError);
        if (msg.type !== 'loaded') {
          void worker.terminate();
          reject(new Error(msg.message ?? 'model failed to load'));
          return;
        }
        resolve({
          session: new WorkerSession(worker),
          provider: msg.provider,
          fallbackReason: msg.fallbackReason ?? undefined,
          inputs: msg.inputs,
          outputs: msg.outputs,
        });
      });
      worker.postMessage({ type: 'load', path, device, options });
    });
  }

  run(feeds: WireTensor[]): Promise<{ outputs: WireTensor[]; computeMs: number }> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'run', id, feeds }, transferList(feeds));
    });
  }

  async release(): Promise<void> {
    if (this.failure === undefined) {
      await new Promise<void>((resolve) => {
        const onMessage = (msg: { type: string }) => {
          if (msg.type === 'released') {
            this.worker.off('message', onMessage);
            resolve();
          }
        };
        this.worker.on('message', onMessage);
        this.worker.once('exit', () => resolve());
        this.worker.postMessage({ type: 'release' });
      });
    }
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/**
 * A session on the event loop: no thread hop, for models that run in microseconds, where the hop
 * would cost more than the run and a blocked loop is not noticed.
 */
class InlineSession implements SessionRunner {
  constructor(private readonly session: ort.InferenceSession) {}

  run(feeds: WireTensor[]): Promise<{ outputs: WireTensor[]; computeMs: number }> {
    // runSession's answer has the fields asked for (and an empty transfer list): no extra hop.
    return (
      runSession(this.session, feeds as Parameters<typeof runSession>[1], false) as Promise<{
        outputs: WireTensor[];
        computeMs: number;
      }>
    ).catch((e: unknown) => {
      throw new RunError(e instanceof Error ? e.message : String(e));
    });
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export async function openSession(
  path: string,
  device: string,
  options: ort.InferenceSession.SessionOptions,
  execution: Execution,
): Promise<LoadedSession> {
  if (execution === 'worker') return WorkerSession.create(path, device, options);
  const loaded = await loadSession(path, device, options);
  return {
    session: new InlineSession(loaded.session),
    provider: loaded.provider,
    fallbackReason: loaded.fallbackReason,
    inputs: loaded.inputs as ort.InferenceSession.ValueMetadata[],
    outputs: loaded.outputs as ort.InferenceSession.ValueMetadata[],
  };
}
