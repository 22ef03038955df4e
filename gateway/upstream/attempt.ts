/** One attempt of a request on an endpoint's dispatcher: undici's handler that collects the answer. */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { AttemptResult } from './outcome.js';

/** What an attempt sends: the request's bytes, never parsed. */
export interface AttemptRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer | null;
}

/**
 * Sends `req` to `origin` through `dispatcher`; `done` is called once, with the answer or the error.
 * The returned attempt can be aborted (deadline, per-try timeout, the client gone).
 */
export function dispatchAttempt(
  dispatcher: Dispatcher,
  origin: string,
  req: AttemptRequest,
  done: (r: AttemptResult) => void,
): Attempt {
  const attempt = new Attempt(done);
  try {
    dispatcher.dispatch(
      { origin, method: req.method, path: req.path, headers: req.headers, body: req.body },
      attempt,
    );
  } catch (e) {
    done({ error: e as Error });
  }
  return attempt;
}

/** Collects one upstream answer; resolves once, with the response or the error. */
export class Attempt implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private abortReason: Error | undefined;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private readonly chunks: Buffer[] = [];
  private settled = false;

  constructor(private readonly done: (r: AttemptResult) => void) {}

  abort(reason: Error): void {
    if (this.settled) return;
    this.abortReason = reason;
    if (this.controller !== undefined) {
      this.controller.abort(reason);
    } else {
      // Still queued in the pool (no connection yet): settle now, so that a deadline holds even
      // then; when undici starts it later, onRequestStart aborts it before anything is sent.
      this.settled = true;
      this.done({ error: reason });
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason !== undefined) controller.abort(this.abortReason);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settled) return;
    this.settled = true;
    const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.done({ status: this.status, headers: this.headers, body });
  }

  onResponseError(_c: Dispatcher.DispatchController, error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.done({ error: this.abortReason ?? error });
  }
}
