/**
 * One run of `infergate batch`: resume from the checkpoint, read the input as a stream, send its
 * lines through the adaptive window (retrying back-pressure and failures), write every answer
 * through the reorder buffer, and keep the checkpoint in step with the output.
 */
import { type Checkpoint, checkpointPath, type JobKey, resume } from './checkpoint.js';
import { type WireBody, wireBody } from './binary.js';
import { Dispatcher } from './dispatch.js';
import {
  inShard,
  isBlank,
  LineError,
  MAX_LINE_BYTES,
  type ModelInput,
  type RequestDoc,
  readLines,
  requestBody,
} from './input.js';
import { type PackInfo, packBody, packInfo, splitOutputs } from './pack.js';
import { Gate } from './gate.js';
import { OutputWriter } from './output.js';
import { startProgress } from './progress.js';
import { Sequencer } from './reorder.js';
import { answerLine, errorLine, GatewayClient } from './send.js';
import { copyCounts, emptyCounts, errorCount, LatencyHistogram, type Summary } from './stats.js';
import type { BatchControl, BatchOptions } from './options.js';
import { AdaptiveWindow } from './window.js';

export type { BatchControl, BatchOptions } from './options.js';

/** A line on its way: its sequence number, its request, and its pack facts when it may share one. */
interface Item {
  readonly s: number;
  readonly line: number;
  readonly req: RequestDoc;
  readonly info: PackInfo | undefined;
}
type Packed = Item & { readonly info: PackInfo };

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
  let active = 0;
  const gate = new Gate();
  const notify = () => gate.notify();
  const until = (ready: () => boolean) => gate.until(ready);
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
  const dispatcher = new Dispatcher({
    client,
    window,
    gate,
    hist,
    retries: opts.retries,
    stallMs: opts.stallMs,
    now,
    stopping: () => stopping !== undefined,
    stats: runStats,
  });

  /** Sends a line, or a pack of lines, and writes each line's answer or error. */
  const send = async (group: readonly Item[]): Promise<void> => {
    const one = group.length === 1 ? (group[0] as Item) : undefined;
    const body: WireBody =
      one === undefined
        ? packBody(group as Packed[])
        : opts.binary
          ? wireBody(one.req.doc, one.req.text)
          : { data: one.req.text, headerLength: undefined };
    const r = await dispatcher.send(body);
    if (r.kind === 'abandoned') return;
    const alone = () => Promise.all(group.map((g) => send([g]))).then(() => {});
    if (r.kind === 'ok') {
      const parts =
        one === undefined
          ? splitOutputs(
              r.doc.outputs,
              group.map((g) => (g.info as PackInfo).rows),
            )
          : [r.doc.outputs];
      if (parts === undefined) return alone();
      group.forEach((g, i) => {
        finish(g.s, answerLine(g.line, r.id, r.doc, r.variant, parts[i]), undefined, r.variant);
      });
      return;
    }
    if (r.kind === 'fail' && one === undefined) return alone();
    for (const g of group) finish(g.s, errorLine(g.line, r.code, r.message), r.code);
  };
  const launch = (group: readonly Item[]) => {
    active += 1;
    send(group)
      .catch((e) => {
        failure ??= e;
        stop(`failed: ${(e as Error).message}`);
      })
      .finally(() => {
        active -= 1;
        notify();
      });
  };
  let packing: Packed[] = [];
  const launchPack = () => {
    if (packing.length > 0) launch(packing);
    packing = [];
  };

  let failure: unknown;
  const start = ckpt?.watermark ?? { line: 1, offset: 0 };
  const ready = () =>
    stopping !== undefined || (active < window.max && seq.hasRoom && writer.buffered < 4 * CHUNK_BYTES);
  try {
    for await (const l of readLines(opts.input, start.offset, start.line)) {
      if (stopping !== undefined) break;
      if (!l.tooLong && isBlank(l.text)) continue;
      if (!inShard(l.line, opts.shard.index, opts.shard.count) || seq.alreadyDone(l.line)) continue;
      // Lines held for a pack must go before waiting: the oldest of them may be what frees room.
      if (!ready()) launchPack();
      await until(ready);
      if (stopping !== undefined) break;
      const s = seq.add(l.line, l.end);
      let req: RequestDoc;
      try {
        if (l.tooLong) throw new LineError('BATCH_ERR_LINE_TOO_LONG', `longer than ${MAX_LINE_BYTES} bytes`);
        req = requestBody(l.text, opts.format, inputs);
      } catch (e) {
        if (!(e instanceof LineError)) throw e;
        finish(s, errorLine(l.line, e.code, e.message), e.code);
        continue;
      }
      const info = opts.pack > 1 ? packInfo(req) : undefined;
      if (info === undefined) {
        launchPack();
        launch([{ s, line: l.line, req, info }]);
        continue;
      }
      if (packing.length > 0 && (packing[0] as Packed).info.key !== info.key) launchPack();
      packing.push({ s, line: l.line, req, info });
      if (packing.length >= opts.pack) launchPack();
    }
    if (stopping === undefined) launchPack();
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
