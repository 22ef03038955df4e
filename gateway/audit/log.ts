/**
 * The audit log: one JSON line per model request, saying who asked (request id, trace id, key
 * id), what answered (variant, backend model and version, endpoint), how (status, outcome,
 * attempts, latency) and, with `hash`, the sha256 of the request body and of the answer. A
 * request costs a push onto a bounded queue; lines are made and written off the request's path,
 * every `flushMs` or once `batchSize` are waiting, one write in flight at a time. A full queue
 * drops the record and counts it (`infergate_audit_dropped_total`).
 */
import { sha256Hex } from '../../common/hash.js';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../common/logging.js';
import type { RequestContext } from '../context.js';
import type { ProxyResult } from '../proxy.js';
import type { AuditSink } from './sink.js';

export interface AuditOptions {
  sink: AuditSink;
  /** sha256 of the request body and of the answer's body. */
  hash?: boolean;
  /** Records waiting to be written, at most (default 8192); more are dropped and counted. */
  maxPending?: number;
  flushMs?: number;
  batchSize?: number;
  /** Clock time (ms) to Unix ms: performance.timeOrigin for the system clock. */
  timeOrigin?: number;
}

/** One line's fields, as docs/observability.md lists them. */
export interface AuditLine {
  time: string;
  requestId: string;
  traceId?: string;
  keyId?: string;
  model: string;
  variant?: string;
  backend?: string;
  backendModel?: string;
  backendVersion?: string;
  endpoint?: string;
  status: number;
  outcome?: string;
  refusedBy?: string;
  latencyMs: number;
  attempts: number;
  inputSha256?: string;
  outputSha256?: string;
}

interface Pending {
  ctx: RequestContext;
  input: Buffer | null;
  output: Buffer | undefined;
}

export class AuditLog {
  private pending: Pending[] = [];
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly hash: boolean;
  private readonly maxPending: number;
  private readonly flushMs: number;
  private readonly batchSize: number;
  private readonly timeOrigin: number;
  private readonly lines: Counter;
  private readonly dropped: Counter;
  private readonly failed: Counter;
  private closed = false;

  constructor(
    private readonly opts: AuditOptions,
    registry: Registry,
    private readonly logger: Logger,
  ) {
    this.hash = opts.hash ?? false;
    this.maxPending = opts.maxPending ?? 8192;
    this.flushMs = opts.flushMs ?? 200;
    this.batchSize = opts.batchSize ?? 512;
    this.timeOrigin = opts.timeOrigin ?? performance.timeOrigin;
    const registers = [registry];
    this.lines = new Counter({
      name: 'infergate_audit_lines_total',
      help: 'Audit lines written.',
      registers,
    });
    this.dropped = new Counter({
      name: 'infergate_audit_dropped_total',
      help: 'Audit records dropped because the queue of lines waiting to be written was full.',
      registers,
    });
    this.failed = new Counter({
      name: 'infergate_audit_write_errors_total',
      help: 'Writes of audit lines that failed (those lines are lost).',
      registers,
    });
  }

  /** Queues the record of an answered request; never blocks, never throws. */
  record(ctx: RequestContext, input: Buffer | null, result: ProxyResult | undefined): void {
    if (this.pending.length >= this.maxPending || this.closed) {
      this.dropped.inc();
      return;
    }
    const output = result !== undefined && result.kind === 'response' ? result.body : undefined;
    this.pending.push({ ctx, input: this.hash ? input : null, output });
    if (this.pending.length >= this.batchSize) {
      if (this.writing === undefined) setImmediate(this.flushNow);
    } else if (this.timer === undefined) {
      this.timer = setTimeout(this.flushNow, this.flushMs);
      this.timer.unref();
    }
  }

  private readonly flushNow = (): void => {
    void this.flush();
  };

  /** Writes every waiting record; resolves once they are written (or failed). */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.writing !== undefined) await this.writing;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    let text = '';
    for (const p of batch) text += `${JSON.stringify(this.line(p))}\n`;
    this.writing = this.opts.sink.write(text).then(
      () => this.lines.inc(batch.length),
      (e: unknown) => {
        this.failed.inc();
        this.logger.error({ err: e, lines: batch.length }, 'audit log write failed');
      },
    );
    await this.writing;
    this.writing = undefined;
    if (this.pending.length > 0 && this.timer === undefined) {
      this.timer = setTimeout(this.flushNow, this.flushMs);
      this.timer.unref();
    }
  }

  line(p: Pending): AuditLine {
    const { ctx } = p;
    const v = ctx.variant?.variant;
    const line: AuditLine = {
      time: new Date(this.timeOrigin + ctx.arrivedAt).toISOString(),
      requestId: ctx.id,
      model: ctx.modelName,
      status: ctx.status,
      latencyMs: Math.round((ctx.answeredAt - ctx.arrivedAt) * 1000) / 1000,
      attempts: ctx.attempts,
    };
    if (ctx.trace !== undefined) line.traceId = ctx.trace.traceId;
    if (ctx.keyId !== undefined) line.keyId = ctx.keyId;
    if (v !== undefined) {
      line.variant = v.name;
      line.backend = v.backend.name;
      line.backendModel = v.model;
      const answered = p.output === undefined ? undefined : answeredVersion(p.output);
      const version = answered ?? v.version;
      if (version !== undefined) line.backendVersion = version;
    }
    if (ctx.endpoint !== undefined) line.endpoint = ctx.endpoint;
    if (ctx.outcome !== undefined) line.outcome = ctx.outcome;
    if (ctx.refusedBy !== undefined) line.refusedBy = ctx.refusedBy;
    if (this.hash) {
      if (p.input !== null) line.inputSha256 = sha256Hex(p.input);
      if (p.output !== undefined) line.outputSha256 = sha256Hex(p.output);
    }
    return line;
  }

  /** Writes what is waiting and closes the sink; later records are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    await this.opts.sink.close();
  }
}

const VERSION = /"model_version"\s*:\s*"([^"\\]{1,64})"/;

/** The `model_version` a backend's answer names (its JSON, or a binary answer's JSON header). */
function answeredVersion(body: Buffer): string | undefined {
  const head = body.subarray(0, 256).toString('latin1');
  return VERSION.exec(head)?.[1];
}
