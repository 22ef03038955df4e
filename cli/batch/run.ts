/**
 * One run of `infergate batch`: resume from the checkpoint, read the input as a stream, send its
 * lines through the adaptive window (retrying back-pressure and failures), write every answer
 * through the reorder buffer, and keep the checkpoint in step with the output.
 */
import { type Checkpoint, checkpointPath, type JobKey, resume } from './checkpoint.js';
import {
  type InputLine,
  inShard,
  isBlank,
  LineError,
  MAX_LINE_BYTES,
  type ModelInput,
  readLines,
  requestBody,
} from './input.js';
import { type WireBody, wireBody } from './binary.js';
import { Gate } from './gate.js';
import { OutputWriter } from './output.js';
import { startProgress } from './progress.js';
import { Sequencer } from './reorder.js';
import { errorLine, GatewayClient } from './send.js';
import { copyCounts, emptyCounts, errorCount, LatencyHistogram, type Summary } from './stats.js';
import { AdaptiveWindow, backoffMs, retryAfterMs } from './window.js';

export interface BatchOptions {
  readonly url: string;
  readonly model: string;
  readonly input: string;
  readonly output: string;
  readonly format: 'oip' | 'rows';
  readonly concurrency: number;
  readonly retries: number;
  /** Stop once more lines than this are answered with errors; undefined: never. */
  readonly maxErrors: number | undefined;
  readonly ordered: boolean;
  readonly shard: { readonly index: number; readonly count: number };
  readonly reorderBuffer: number;
  readonly timeoutMs: number;
  /** Numeric tensors sent as bytes (the binary extension) instead of JSON numbers. */
  readonly binary: boolean;
  readonly apiKey: string | undefined;
  readonly overwrite: boolean;
  /** Back-pressure retried for this long without any answer before a line is given up. */
  readonly stallMs: number;
  readonly progress: {
    readonly tty: boolean;
    readonly stream: NodeJS.WritableStream;
    readonly intervalMs: number;
  };
}

/** How a caller stops a run early (a signal): it drains what is in flight and checkpoints. */
export interface BatchControl {
  stop(reason: string): void;
}

interface Emitted {
  readonly text: string;
  readonly code: string | undefined;
  readonly variant: string | undefined;
}

/** Output chunks are cut at this size, and reading pauses while this much waits to be written. */
const CHUNK_BYTES = 1 << 20;
const FLUSH_MS = 250;

export async function runBatch(
  opts: BatchOptions,
  control: (c: BatchControl) => void = () => {},
): Promise<Summary> {
  const now = () => performance.now();
  const started = now();
  const cpuStart = process.cpuUsage();
  const job: JobKey = {
    model: opts.model,
    format: opts.format,
    shard: `${opts.shard.index}/${opts.shard.count}`,
    ordered: opts.ordered,
  };
  const { checkpoint: ckpt, input } = await resume(opts.input, opts.output, job, opts.overwrite);
  const counts = ckpt === undefined ? emptyCounts() : copyCounts(ckpt.counts);
  const hist = new LatencyHistogram();
  const runStats = { lines: 0, retries: 0, backpressure: 0 };
  const summary = (complete: boolean, stopped: string | undefined): Summary => {
    const seconds = (now() - started) / 1000;
    return {
      complete,
      stopped,
      counts,
      run: {
        ...runStats,
        seconds,
        cpuSeconds: (() => {
          const u = process.cpuUsage(cpuStart);
          return (u.user + u.system) / 1e6;
        })(),
        linesPerSecond: seconds > 0 ? runStats.lines / seconds : 0,
        p50Ms: hist.quantile(0.5),
        p99Ms: hist.quantile(0.99),
      },
    };
  };
  if (ckpt?.complete === true) return summary(true, undefined);

  const client = new GatewayClient({
    url: opts.url,
    model: opts.model,
    apiKey: opts.apiKey,
    connections: opts.concurrency,
    timeoutMs: opts.timeoutMs,
  });
  const inputs: ModelInput[] | undefined = opts.format === 'rows' ? await client.inputs() : undefined;
  const ckptPath = checkpointPath(opts.output);
  const writer = await OutputWriter.open(opts.output, ckpt?.outputBytes ?? 0, ckptPath);
  const window = new AdaptiveWindow(opts.concurrency);
  let stopping: string | undefined;
  let sending = 0;
  let active = 0;
  let lastAnswer = now();
  const gate = new Gate();
  const notify = () => gate.notify();
  const until = (ready: () => boolean) => gate.until(ready);
  const sleep = (ms: number) => gate.sleep(ms);
  const stop = (reason: string) => {
    if (stopping === undefined) stopping = reason;
    gate.wakeAll();
  };
  control({ stop });

  let flushQueued = false;
  const state =
    (complete: boolean) =>
    (outputBytes: number): Checkpoint => ({
      version: 1,
      input,
      job,
      watermark: seq.watermark,
      doneAbove: seq.doneAbove(),
      outputBytes,
      complete,
      counts: copyCounts(counts),
    });
  const flushSoon = () => {
    if (flushQueued) return;
    flushQueued = true;
    // After the sequencer's release loop: the watermark then counts what was just written.
    queueMicrotask(() => {
      flushQueued = false;
      writer.flush(state(false)).then(notify, (e: Error) => stop(`writing failed: ${e.message}`));
    });
  };
  const seq = new Sequencer<Emitted>(
    opts.reorderBuffer,
    opts.ordered,
    ckpt?.watermark ?? { line: 1, offset: 0 },
    (e) => {
      writer.append(e.text);
      counts.lines += 1;
      if (e.code === undefined) counts.ok += 1;
      else counts.errors[e.code] = (counts.errors[e.code] ?? 0) + 1;
      if (e.variant !== undefined) counts.variants[e.variant] = (counts.variants[e.variant] ?? 0) + 1;
      if (opts.maxErrors !== undefined && e.code !== undefined && errorCount(counts) > opts.maxErrors)
        stop('max-errors');
      if (writer.buffered >= CHUNK_BYTES) flushSoon();
    },
    ckpt?.doneAbove ?? [],
  );
  const progress = startProgress({ ...opts.progress, startBytes: ckpt?.watermark.offset ?? 0, now });
  const tick = () =>
    progress.update({
      bytes: seq.watermark.offset,
      totalBytes: input.size,
      lines: counts.lines,
      errors: errorCount(counts),
      rate: runStats.lines / Math.max(0.001, (now() - started) / 1000),
      window: window.limit,
    });
  const timer = setInterval(() => {
    flushSoon();
    tick();
  }, FLUSH_MS);

  const finish = (s: number, text: string, code?: string, variant?: string) => {
    runStats.lines += 1;
    seq.complete(s, { text, code, variant });
  };
  /** Waits for a slot of the window (and the end of a Retry-After hold); false when stopping. */
  const acquire = async (): Promise<boolean> => {
    for (;;) {
      if (stopping !== undefined) return false;
      const wait = window.pausedUntil - now();
      if (wait > 0) await sleep(wait);
      else if (sending < window.limit) break;
      else await until(() => stopping !== undefined || sending < window.limit);
    }
    sending += 1;
    return true;
  };

  const handle = async (l: InputLine, s: number): Promise<void> => {
    let body: WireBody;
    try {
      if (l.tooLong) throw new LineError('BATCH_ERR_LINE_TOO_LONG', `longer than ${MAX_LINE_BYTES} bytes`);
      const req = requestBody(l.text, opts.format, inputs);
      body = opts.binary ? wireBody(req.doc, req.text) : { data: req.text, headerLength: undefined };
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      finish(s, errorLine(l.line, e.code, e.message), e.code);
      return;
    }
    let failures = 0;
    for (;;) {
      if (!(await acquire())) return;
      const epoch = window.epoch;
      const t0 = now();
      const a = await client.attempt(l.line, body);
      sending -= 1;
      notify();
      if (a.kind === 'ok') {
        window.onSuccess();
        hist.observe(now() - t0);
        lastAnswer = now();
        finish(s, a.line, undefined, a.variant);
        return;
      }
      if (a.kind === 'fail') {
        finish(s, errorLine(l.line, a.code, a.message), a.code);
        return;
      }
      if (stopping !== undefined) return;
      if (a.kind === 'backpressure') {
        runStats.backpressure += 1;
        const ra = retryAfterMs(a.retryAfter, Date.now());
        const atFloor = window.limit <= window.min;
        window.onBackpressure(epoch, now(), ra);
        if (now() - lastAnswer > opts.stallMs) {
          finish(
            s,
            errorLine(l.line, a.code, `${a.message} (no line answered for ${opts.stallMs / 1000} s)`),
            a.code,
          );
          return;
        }
        // Above the floor the cut window paces the retry (it waits for a slot to free); at the
        // floor the line, and with the hold every line, waits out Retry-After.
        await sleep(
          atFloor ? (ra ?? backoffMs(1, Math.random, 100, 1000)) : backoffMs(1, Math.random, 20, 20),
        );
        continue;
      }
      failures += 1;
      if (failures > opts.retries) {
        finish(s, errorLine(l.line, a.code, `${a.message} (after ${failures} tries)`), a.code);
        return;
      }
      runStats.retries += 1;
      await sleep(backoffMs(failures, Math.random));
    }
  };

  let failure: unknown;
  const start = ckpt?.watermark ?? { line: 1, offset: 0 };
  try {
    for await (const l of readLines(opts.input, start.offset, start.line)) {
      if (stopping !== undefined) break;
      if (!l.tooLong && isBlank(l.text)) continue;
      if (!inShard(l.line, opts.shard.index, opts.shard.count) || seq.alreadyDone(l.line)) continue;
      await until(
        () =>
          stopping !== undefined || (active < window.max && seq.hasRoom && writer.buffered < 4 * CHUNK_BYTES),
      );
      if (stopping !== undefined) break;
      const s = seq.add(l.line, l.end);
      active += 1;
      handle(l, s)
        .catch((e) => {
          failure ??= e;
          stop(`failed: ${(e as Error).message}`);
        })
        .finally(() => {
          active -= 1;
          notify();
        });
    }
  } catch (e) {
    failure ??= e;
    stop(`reading failed: ${(e as Error).message}`);
  }
  await until(() => active === 0);
  clearInterval(timer);
  const complete = stopping === undefined;
  try {
    await writer.flush(state(complete));
  } finally {
    await writer.close();
    tick();
    progress.stop();
    await client.close();
  }
  if (failure !== undefined) throw failure;
  return summary(complete, stopping);
}
