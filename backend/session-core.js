// @ts-check
/**
 * Loading and running one onnxruntime session: shared by the worker thread (session-worker.js)
 * and by sessions that run on the event loop. Plain JavaScript so that a worker can load it
 * without the parent's module loader (tsx, compiled output, or Node's type stripping alike).
 */
import * as ort from 'onnxruntime-node';

// onnxruntime's own log lines are coloured plain text on stderr, not the replica's JSON logs; what
// they would say reaches the replica's log through the errors it throws (a provider that cannot
// load, a failed run). Read once, when the first session of this thread is made.
ort.env.logLevel = 'fatal';

/** @param {readonly ort.InferenceSession.ValueMetadata[]} list */
function describe(list) {
  return list.map((m) =>
    m.isTensor
      ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] }
      : { name: m.name, isTensor: false },
  );
}

/**
 * onnxruntime does not fall back by itself: a device whose provider fails to load is reported and
 * the session is made on cpu.
 * @param {string} path
 * @param {string} device
 * @param {ort.InferenceSession.SessionOptions} options
 */
export async function loadSession(path, device, options) {
  let fallbackReason;
  let session;
  let provider = device;
  if (device !== 'cpu') {
    try {
      session = await ort.InferenceSession.create(path, { ...options, executionProviders: [device] });
    } catch (e) {
      fallbackReason = e instanceof Error ? e.message : String(e);
    }
  }
  if (session === undefined) {
    session = await ort.InferenceSession.create(path, { ...options, executionProviders: ['cpu'] });
    provider = 'cpu';
  }
  return {
    session,
    provider,
    fallbackReason,
    inputs: describe(session.inputMetadata),
    outputs: describe(session.outputMetadata),
  };
}

/**
 * Whether a view spans its whole, unshared ArrayBuffer: only such buffers may be transferred
 * between threads without moving bytes that belong to something else.
 * @param {ArrayBufferView} view
 */
export function ownsBuffer(view) {
  const buf = view.buffer;
  return buf instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buf.byteLength;
}

/**
 * Runs one batch. With `forTransfer`, output typed arrays are made whole (copied if they are
 * views) and listed, so that they can be transferred to another thread.
 * @param {ort.InferenceSession} session
 * @param {{name: string, type: ort.Tensor.Type, dims: number[], data: any}[]} feeds
 * @param {boolean} forTransfer
 */
export async function runSession(session, feeds, forTransfer) {
  /** @type {Record<string, ort.Tensor>} */
  const inputs = {};
  for (const f of feeds) inputs[f.name] = new ort.Tensor(f.type, f.data, f.dims);
  const started = performance.now();
  const results = await session.run(inputs);
  const computeMs = performance.now() - started;
  /** @type {ArrayBuffer[]} */
  const transfer = [];
  const outputs = [];
  for (const name in results) {
    const t = /** @type {ort.Tensor} */ (results[name]);
    let data = t.data;
    if (forTransfer && ArrayBuffer.isView(data)) {
      if (!ownsBuffer(data)) data = data.slice();
      transfer.push(/** @type {ArrayBuffer} */ (data.buffer));
    }
    outputs.push({ name, type: t.type, dims: [...t.dims], data });
  }
  return { outputs, computeMs, transfer };
}
