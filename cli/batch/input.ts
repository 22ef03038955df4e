/**
 * The input of `infergate batch`: a JSONL file read as a stream from a byte offset, one line at a
 * time with its number and byte range (memory holds one chunk and one line), and each line turned
 * into the request body it stands for: an OIP request (`--input-format oip`) or a row of named
 * inputs (`--input-format rows`) shaped from the model's metadata.
 */
import { createReadStream } from 'node:fs';

export interface InputLine {
  /** 1-based line number in the file. */
  readonly line: number;
  /** Byte offsets of the line in the file; `end` is past its newline. */
  readonly start: number;
  readonly end: number;
  readonly text: string;
  /** Longer than MAX_LINE_BYTES: `text` is empty, and the line is answered with an error. */
  readonly tooLong: boolean;
}

/** Lines longer than this are reported as errors, not held in memory. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

/** The lines of `path` from byte `offset`, which starts line `firstLine`. */
export async function* readLines(path: string, offset: number, firstLine: number): AsyncGenerator<InputLine> {
  const stream = createReadStream(path, { start: offset, highWaterMark: 256 * 1024 });
  let parts: Buffer[] = [];
  let partBytes = 0;
  let tooLong = false;
  let lineStart = offset;
  let pos = offset;
  let line = firstLine;
  const take = (end: number): InputLine => {
    const buf = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, partBytes);
    let text = tooLong ? '' : buf.toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    const out = { line, start: lineStart, end, text, tooLong };
    parts = [];
    partBytes = 0;
    tooLong = false;
    line += 1;
    lineStart = end;
    return out;
  };
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let from = 0;
    while (from < chunk.length) {
      const nl = chunk.indexOf(10, from);
      const stop = nl === -1 ? chunk.length : nl;
      if (!tooLong) {
        if (partBytes + (stop - from) > MAX_LINE_BYTES) {
          tooLong = true;
          parts = [];
          partBytes = 0;
        } else if (stop > from) {
          parts.push(chunk.subarray(from, stop));
          partBytes += stop - from;
        }
      }
      pos += stop - from;
      if (nl === -1) break;
      pos += 1;
      from = nl + 1;
      yield take(pos);
    }
  }
  if (partBytes > 0 || tooLong) yield take(pos);
}

/** Whether a line holds nothing but white space (skipped: not a request, not answered). */
export function isBlank(text: string): boolean {
  return text.trim() === '';
}

/** A line that cannot be sent: reported in the output with this code and message. */
export class LineError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ModelInput {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

function flatten(value: unknown, out: unknown[]): void {
  if (Array.isArray(value)) for (const v of value) flatten(v, out);
  else out.push(value);
}

/** An OIP request: the parsed document and its JSON text. */
export interface RequestDoc {
  readonly doc: { inputs: unknown[]; [k: string]: unknown };
  readonly text: string;
}

/** The request one line stands for. Throws LineError for a line that is not one. */
export function requestBody(
  text: string,
  format: 'oip' | 'rows',
  inputs: readonly ModelInput[] | undefined,
): RequestDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new LineError('BATCH_ERR_BAD_JSON', `not JSON: ${(e as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new LineError('BATCH_ERR_BAD_LINE', 'must be a JSON object');
  if (format === 'oip') {
    if (!Array.isArray((doc as { inputs?: unknown }).inputs))
      throw new LineError('BATCH_ERR_BAD_LINE', "an OIP request needs an 'inputs' array");
    return { doc: doc as RequestDoc['doc'], text };
  }
  const row = { inputs: rowInputs(doc as Record<string, unknown>, inputs ?? []) };
  return { doc: row, text: JSON.stringify(row) };
}

/** A row `{name: value, ...}` as OIP inputs: the datatype from the metadata, one batch row. */
export function rowInputs(row: Record<string, unknown>, inputs: readonly ModelInput[]) {
  for (const key of Object.keys(row)) {
    if (!inputs.some((i) => i.name === key))
      throw new LineError('BATCH_ERR_BAD_LINE', `the model has no input '${key}'`);
  }
  return inputs.map((input) => {
    if (!Object.hasOwn(row, input.name))
      throw new LineError('BATCH_ERR_BAD_LINE', `input '${input.name}' is missing`);
    const data: unknown[] = [];
    flatten(row[input.name], data);
    return { name: input.name, shape: rowShape(input, data.length), datatype: input.datatype, data };
  });
}

/** The model's shape for one row: a variable batch dimension is 1, another variable one takes the rest. */
export function rowShape(input: ModelInput, elements: number): number[] {
  const dims = input.shape.length === 0 ? [elements] : [...input.shape];
  if (dims.length > 1 && dims[0] === -1) dims[0] = 1;
  const free = dims.filter((d) => d < 0).length;
  const fixed = dims.reduce((n, d) => (d < 0 ? n : n * d), 1);
  if (free === 0) {
    if (fixed === elements) return dims;
    if (dims.length > 1 && fixed / (dims[0] as number) === elements) return [1, ...dims.slice(1)];
    throw new LineError(
      'BATCH_ERR_BAD_LINE',
      `input '${input.name}' has ${elements} values; its shape [${input.shape.join(', ')}] needs ${fixed} a row`,
    );
  }
  if (free > 1 || fixed === 0 || elements % fixed !== 0)
    throw new LineError(
      'BATCH_ERR_BAD_LINE',
      `input '${input.name}' has ${elements} values, which do not fit its shape [${input.shape.join(', ')}]`,
    );
  return dims.map((d) => (d < 0 ? elements / fixed : d));
}

/** `--shard I/N`: whether line `line` (1-based) belongs to shard `index` of `count`. */
export function inShard(line: number, index: number, count: number): boolean {
  return (line - 1) % count === index;
}

/** Parses `I/N` (0 <= I < N). */
export function parseShard(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (m === null || !Number.isSafeInteger(count) || count < 1 || index >= count)
    throw new Error(`--shard must be I/N with 0 <= I < N, not '${value}'`);
  return { index, count };
}
