// @ts-check
/**
 * One onnxruntime session in a worker thread. onnxruntime-node's `session.run` computes on the
 * calling thread, so running a heavy model on the event loop would stall every other request
 * (health checks, metrics, decoding the next batch) for the length of a batch.
 *
 * Messages in:  {type:'load', path, device, options} | {type:'run', id, feeds} | {type:'release'}
 * Messages out: {type:'loaded', provider, fallbackReason, inputs, outputs} | {type:'load-failed', message}
 *               {type:'result', id, outputs, computeMs} | {type:'error', id, message, onnxruntime?} | {type:'released'}
 */
import { parentPort } from 'node:worker_threads';
import { loadSession, runSession } from './session-core.js';

if (parentPort === null) throw new Error('session-worker must run in a worker thread');
const port = parentPort;

/** @type {import('onnxruntime-node').InferenceSession | undefined} */
let session;

const message = (/** @type {unknown} */ e) => (e instanceof Error ? e.message : String(e));

port.on('message', async (msg) => {
  if (msg.type === 'load') {
    try {
      const loaded = await loadSession(msg.path, msg.device, msg.options);
      session = loaded.session;
      const { provider, fallbackReason, inputs, outputs } = loaded;
      port.postMessage({ type: 'loaded', provider, fallbackReason, inputs, outputs });
    } catch (e) {
      port.postMessage({ type: 'load-failed', message: message(e) });
    }
  } else if (msg.type === 'run') {
    if (session === undefined) {
      port.postMessage({ type: 'error', id: msg.id, message: 'no session loaded' });
      return;
    }
    try {
      const { outputs, computeMs, transfer } = await runSession(session, msg.feeds, true);
      port.postMessage({ type: 'result', id: msg.id, outputs, computeMs }, transfer);
    } catch (e) {
      // onnxruntime's own refusal or failure of this run (see RunError in session.ts).
      port.postMessage({ type: 'error', id: msg.id, message: message(e), onnxruntime: true });
    }
  } else if (msg.type === 'release') {
    await session?.release();
    session = undefined;
    port.postMessage({ type: 'released' });
  }
});
