/**
 * One attempt of one line against the gateway: a POST of the body to the model's infer route,
 * marked `x-infergate-priority: batch`, and its answer sorted into what the run does next:
 * written (an answer, or an error that retrying cannot fix), retried after back-pressure (429,
 * 503: `Retry-After` honoured, the window cut), or retried after a failure (502, 504, the network).
 */
import { Pool } from 'undici';
import type { WireBody } from './binary.js';
import type { ModelInput } from './input.js';

export type Attempt =
  | {
      readonly kind: 'ok';
      readonly doc: Record<string, unknown>;
      readonly id: string | undefined;
      readonly variant: string | undefined;
    }
  | {
      readonly kind: 'backpressure';
      readonly retryAfter: string | undefined;
      readonly code: string;
      readonly message: string;
    }
  | { readonly kind: 'retry'; readonly code: string; readonly message: string }
  | { readonly kind: 'fail'; readonly code: string; readonly message: string };

/** Statuses retried as back-pressure, and as failures; any other non-2xx is written as an error. */
const BACKPRESSURE = new Set([429, 503]);
const RETRIED = new Set([502, 504]);

export interface ClientOptions {
  readonly url: string;
  readonly model: string;
  readonly apiKey: string | undefined;
  readonly connections: number;
  readonly timeoutMs: number;
}

function text(v: unknown, max = 500): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

export class GatewayClient {
  private readonly pool: Pool;
  /** The model's route under the URL's path: metadata; with `/infer`, inference. */
  private readonly modelPath: string;
  private readonly path: string;
  private readonly headers: Record<string, string>;

  constructor(private readonly opts: ClientOptions) {
    const u = new URL(opts.url);
    this.pool = new Pool(u.origin, { connections: opts.connections, pipelining: 1 });
    this.modelPath = `${u.pathname.replace(/\/$/, '')}/v2/models/${encodeURIComponent(opts.model)}`;
    this.path = `${this.modelPath}/infer`;
    this.headers = { 'content-type': 'application/json', 'x-infergate-priority': 'batch' };
    if (opts.apiKey !== undefined) this.headers.authorization = `Bearer ${opts.apiKey}`;
  }

  /** The model's inputs from its metadata (`--input-format rows`). */
  async inputs(): Promise<ModelInput[]> {
    const res = await this.pool.request({
      method: 'GET',
      path: this.modelPath,
      headers: this.headers,
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
    });
    const body = (await res.body.json().catch(() => ({}))) as { inputs?: ModelInput[]; error?: string };
    if (res.statusCode !== 200 || !Array.isArray(body.inputs))
      throw new Error(
        `cannot read the metadata of model '${this.opts.model}' (${res.statusCode}${body.error ? `: ${body.error}` : ''})`,
      );
    return body.inputs;
  }

  /** Sends one request (a line, or a pack of lines). */
  async attempt(body: WireBody): Promise<Attempt> {
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      res = await this.pool.request({
        method: 'POST',
        path: this.path,
        headers:
          body.headerLength === undefined
            ? this.headers
            : { ...this.headers, 'inference-header-content-length': String(body.headerLength) },
        body: body.data,
        headersTimeout: this.opts.timeoutMs,
        bodyTimeout: this.opts.timeoutMs,
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return { kind: 'retry', code: err.code ?? 'BATCH_ERR_NETWORK', message: err.message };
    }
    let doc: Record<string, unknown>;
    try {
      doc = (await res.body.json()) as Record<string, unknown>;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (res.statusCode === 200 || RETRIED.has(res.statusCode) || BACKPRESSURE.has(res.statusCode))
        return {
          kind: 'retry',
          code: err.code ?? 'BATCH_ERR_BAD_ANSWER',
          message: `the answer broke off or is not JSON: ${err.message}`,
        };
      return {
        kind: 'fail',
        code: `HTTP_${res.statusCode}`,
        message: 'the gateway answered without a JSON body',
      };
    }
    const header = (name: string) => {
      const v = res.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    if (res.statusCode === 200) {
      const id = header('x-request-id') ?? (typeof doc.id === 'string' ? doc.id : undefined);
      return { kind: 'ok', doc, id, variant: header('x-infergate-variant') };
    }
    const code = typeof doc.code === 'string' ? doc.code : `HTTP_${res.statusCode}`;
    const message = text(doc.error ?? `status ${res.statusCode}`);
    if (BACKPRESSURE.has(res.statusCode))
      return { kind: 'backpressure', retryAfter: header('retry-after'), code, message };
    if (RETRIED.has(res.statusCode)) return { kind: 'retry', code, message };
    return { kind: 'fail', code, message };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** The output line of an answered line: `outputs` its own (a share of a pack's answer). */
export function answerLine(
  line: number,
  id: string | undefined,
  doc: Record<string, unknown>,
  variant: string | undefined,
  outputs: unknown,
): string {
  const out: Record<string, unknown> = { line, id };
  if (doc.model_version !== undefined) out.model_version = doc.model_version;
  if (variant !== undefined) out.variant = variant;
  out.outputs = outputs;
  return JSON.stringify(out);
}

/** The output line of a line that could not be answered. */
export function errorLine(line: number, code: string, message: string): string {
  return JSON.stringify({ line, error: { code, message } });
}
