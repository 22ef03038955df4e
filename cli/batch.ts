/**
 * `infergate batch`: offline batch inference through the gateway. Each line of a JSONL file is
 * one request; each output line its answer or error, in input order (or as they finish), with a
 * checkpoint beside the output so that a run killed at any point and started again with the same
 * command completes with every line answered exactly once. Batch requests are marked
 * `x-infergate-priority: batch`: the gateway gives them only a share of each model's concurrency.
 */
import { ExitError, nonNegativeInt, parse, positiveInt, setting, UsageError } from './args.js';
import { BatchError } from './batch/checkpoint.js';
import { parseShard } from './batch/input.js';
import { type BatchControl, type BatchOptions, runBatch } from './batch/run.js';
import { formatSummary } from './batch/stats.js';

export const BATCH_HELP = `infergate batch --model M --input IN.jsonl --output OUT.jsonl [--url U] [options]
    scores a JSONL file through the gateway (--url, or INFERGATE_URL; default http://127.0.0.1:8080).
    Each input line is an OIP request body ({"inputs": [...]}) or, with --input-format rows, an object
    of named inputs ({"x": [0.1, ...]}) shaped from the model's metadata; blank lines are skipped.
    Each output line is {"line", "id", "model_version", "variant", "outputs"} or {"line", "error":
    {"code", "message"}}. OUT.ckpt beside the output records what is done: rerun the same command
    after a crash or a kill and it goes on where the output is durable; a changed input is refused.
Options:
  --input-format oip|rows   (oip)
  --concurrency N           most requests in flight (16); the window adapts to 429 and 503
  --retries N               tries after a failure (502, 504, network) before the line is an error (5);
                            back-pressure (429, 503) is retried while answers keep coming
  --max-errors N            stop once more than N lines are errors (default: never)
  --unordered               write answers as they finish, not in input order
  --pack K                  up to K lines of numeric tensors sent as one request, their rows
                            concatenated and the answer split back (1: each line alone; default 1)
  --reorder-buffer N        most lines between the oldest unfinished one and the newest read (1024)
  --shard I/N               only lines L with (L-1) mod N = I (N workers share one file)
  --timeout-ms MS           per request (30000)
  --json-tensors            send tensors as JSON numbers, not as bytes (the binary extension)
  --stall-timeout-s S       give a line up after S seconds of back-pressure with no answer at all (300)
  --api-key KEY             or INFERGATE_API_KEY; sent as Authorization: Bearer
  --overwrite               replace an output that has no checkpoint, or start over
  --progress-interval-s S   plain progress lines when stderr is not a terminal (10)
  --json                    the summary as JSON on stdout
Exit status: 0 every line answered (errors included), 1 stopped early (--max-errors) or failed,
2 usage, 130 interrupted (the checkpoint is kept; rerun to go on).`;

/** The options of `infergate batch` (read by the deploy checks too). */
export const BATCH_OPTIONS = {
  url: { type: 'string' },
  model: { type: 'string' },
  input: { type: 'string' },
  output: { type: 'string' },
  'input-format': { type: 'string' },
  concurrency: { type: 'string' },
  retries: { type: 'string' },
  'max-errors': { type: 'string' },
  unordered: { type: 'boolean' },
  'reorder-buffer': { type: 'string' },
  pack: { type: 'string' },
  shard: { type: 'string' },
  'timeout-ms': { type: 'string' },
  'json-tensors': { type: 'boolean' },
  'stall-timeout-s': { type: 'string' },
  'api-key': { type: 'string' },
  overwrite: { type: 'boolean' },
  'progress-interval-s': { type: 'string' },
  json: { type: 'boolean' },
} as const;

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}

export function batchOptions(argv: string[]): BatchOptions & { json: boolean } {
  const { values: v } = parse(argv, BATCH_OPTIONS);
  const format = v['input-format'] ?? 'oip';
  if (format !== 'oip' && format !== 'rows')
    throw new UsageError(`--input-format must be oip or rows, not '${format}'`);
  const url = setting(v.url, 'INFERGATE_URL', 'http://127.0.0.1:8080');
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new UsageError(`--url must be an http(s) URL, not '${url}'`);
  }
  let shard = { index: 0, count: 1 };
  if (v.shard !== undefined) {
    try {
      shard = parseShard(v.shard);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const input = required(v.input, '--input');
  const output = required(v.output, '--output');
  if (input === output) throw new UsageError('--output must not be the input');
  const concurrency = positiveInt(v.concurrency ?? '16', '--concurrency');
  const pack = positiveInt(v.pack ?? '1', '--pack');
  if (pack > 1 && v['json-tensors'] === true)
    throw new UsageError('--pack sends tensors as bytes: leave out --json-tensors');
  return {
    url,
    model: required(v.model, '--model'),
    input,
    output,
    format,
    concurrency,
    retries: nonNegativeInt(v.retries ?? '5', '--retries'),
    maxErrors: v['max-errors'] === undefined ? undefined : nonNegativeInt(v['max-errors'], '--max-errors'),
    ordered: v.unordered !== true,
    shard,
    pack,
    reorderBuffer: positiveInt(
      v['reorder-buffer'] ?? String(Math.max(1024, 4 * concurrency * pack)),
      '--reorder-buffer',
    ),
    timeoutMs: positiveInt(v['timeout-ms'] ?? '30000', '--timeout-ms'),
    binary: v['json-tensors'] !== true,
    stallMs: positiveInt(v['stall-timeout-s'] ?? '300', '--stall-timeout-s') * 1000,
    apiKey: setting(v['api-key'], 'INFERGATE_API_KEY'),
    overwrite: v.overwrite === true,
    progress: {
      tty: process.stderr.isTTY === true,
      stream: process.stderr,
      intervalMs: positiveInt(v['progress-interval-s'] ?? '10', '--progress-interval-s') * 1000,
    },
    json: v.json === true,
  };
}

export async function batchCommand(argv: string[]): Promise<void> {
  const opts = batchOptions(argv);
  let control: BatchControl | undefined;
  let signalled = false;
  const onSignal = () => {
    if (signalled) process.exit(130);
    signalled = true;
    process.stderr.write('batch: stopping; lines in flight finish, then the checkpoint is written\n');
    control?.stop('signal');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let summary: Awaited<ReturnType<typeof runBatch>>;
  try {
    summary = await runBatch(opts, (c) => {
      control = c;
    });
  } catch (e) {
    if (e instanceof BatchError) throw new Error(`${e.code}: ${e.message}`);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(opts.json ? `${JSON.stringify(summary)}\n` : `${formatSummary(summary)}\n`);
  if (summary.stopped === 'signal') throw new ExitError(130, 'interrupted; rerun the same command to go on');
  if (!summary.complete)
    throw new Error(`stopped before the end (${summary.stopped}); rerun the same command to go on`);
}
