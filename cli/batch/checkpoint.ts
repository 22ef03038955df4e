/**
 * The checkpoint of `infergate batch`, beside the output (`OUT.ckpt`): the input's fingerprint,
 * the job's settings, the watermark (the first line not done with all before it, and its byte
 * offset), the lines written beyond it (--unordered), the length of the output that holds them,
 * and the counts so far. It is replaced whole (written aside, synced, renamed) only after the
 * output bytes it counts are synced, so a run killed at any point restarts from a durable state:
 * the output is cut back to that length and reading resumes at the watermark, and every line ends
 * up answered exactly once.
 */
import { createHash } from 'node:crypto';
import { open, rename, stat, truncate, writeFile } from 'node:fs/promises';
import { readTextIfExists } from '../../common/files.js';
import type { Watermark } from './reorder.js';
import { type Counts, emptyCounts } from './stats.js';

/** Bytes of the input's head that the fingerprint hashes. */
export const HEAD_BYTES = 1024 * 1024;

export interface Fingerprint {
  readonly size: number;
  readonly mtimeMs: number;
  readonly headSha256: string;
}

/** What must stay the same between a run and its restart. */
export interface JobKey {
  readonly model: string;
  readonly format: 'oip' | 'rows';
  readonly shard: string;
  readonly ordered: boolean;
}

export interface Checkpoint {
  readonly version: 1;
  readonly input: Fingerprint;
  readonly job: JobKey;
  readonly watermark: Watermark;
  readonly doneAbove: readonly number[];
  readonly outputBytes: number;
  readonly complete: boolean;
  readonly counts: Counts;
}

/** A batch job that cannot start or go on: a stable code, and what to do about it. */
export class BatchError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function checkpointPath(output: string): string {
  return `${output}.ckpt`;
}

export async function fingerprint(path: string): Promise<Fingerprint> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (e) {
    throw new BatchError('BATCH_ERR_INPUT', `cannot read the input ${path}: ${(e as Error).message}`);
  }
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(Math.min(HEAD_BYTES, st.size));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return {
      size: st.size,
      mtimeMs: Math.trunc(st.mtimeMs),
      headSha256: createHash('sha256').update(head.subarray(0, bytesRead)).digest('hex'),
    };
  } finally {
    await fh.close();
  }
}

export async function saveCheckpoint(path: string, ckpt: Checkpoint): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(`${JSON.stringify(ckpt)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

async function loadCheckpoint(path: string): Promise<Checkpoint | undefined> {
  const text = await readTextIfExists(path);
  if (text === undefined) return undefined;
  try {
    const c = JSON.parse(text) as Checkpoint;
    if (c.version !== 1 || typeof c.outputBytes !== 'number' || c.watermark === undefined)
      throw new Error('shape');
    return c;
  } catch {
    throw new BatchError(
      'BATCH_ERR_CHECKPOINT',
      `the checkpoint ${path} is not one this version wrote; remove it and the output to start over`,
    );
  }
}

function describeChange(was: Fingerprint, now: Fingerprint): string {
  if (was.size !== now.size) return `its size went from ${was.size} to ${now.size} bytes`;
  if (was.headSha256 !== now.headSha256) return 'its first bytes differ';
  return `its modification time changed (${new Date(was.mtimeMs).toISOString()} -> ${new Date(now.mtimeMs).toISOString()})`;
}

export interface Resumed {
  readonly checkpoint: Checkpoint;
  readonly input: Fingerprint;
}

/**
 * Checks the checkpoint beside `output` against the input and the job, and cuts the output back
 * to what it counts; with none, starts an empty output (refusing to overwrite one unless told).
 */
export async function resume(
  inputPath: string,
  output: string,
  job: JobKey,
  overwrite: boolean,
): Promise<Resumed> {
  const input = await fingerprint(inputPath);
  const ckptPath = checkpointPath(output);
  const ckpt = overwrite ? undefined : await loadCheckpoint(ckptPath);
  if (ckpt === undefined) {
    if (!overwrite) {
      const existing = await stat(output).catch(() => undefined);
      if (existing !== undefined && existing.size > 0)
        throw new BatchError(
          'BATCH_ERR_OUTPUT_EXISTS',
          `the output ${output} exists and has no checkpoint beside it; pass --overwrite to replace it`,
        );
    }
    await writeFile(output, '');
    // Written at once: from here on a restart finds this job's checkpoint, never a bare output.
    const fresh: Checkpoint = {
      version: 1,
      input,
      job,
      watermark: { line: 1, offset: 0 },
      doneAbove: [],
      outputBytes: 0,
      complete: false,
      counts: emptyCounts(),
    };
    await saveCheckpoint(ckptPath, fresh);
    return { checkpoint: fresh, input };
  }
  const same =
    ckpt.input.size === input.size &&
    ckpt.input.mtimeMs === input.mtimeMs &&
    ckpt.input.headSha256 === input.headSha256;
  if (!same)
    throw new BatchError(
      'BATCH_ERR_INPUT_CHANGED',
      `the input ${inputPath} changed since the checkpoint ${ckptPath} was written (${describeChange(ckpt.input, input)}); ` +
        'remove the output and its checkpoint to score it afresh',
    );
  for (const k of ['model', 'format', 'shard', 'ordered'] as const) {
    if (ckpt.job[k] !== job[k])
      throw new BatchError(
        'BATCH_ERR_JOB_CHANGED',
        `the checkpoint ${ckptPath} is of a job with ${k} ${JSON.stringify(ckpt.job[k])}, not ${JSON.stringify(job[k])}; rerun with the same options, or remove the output and its checkpoint`,
      );
  }
  const out = await stat(output).catch(() => undefined);
  if (out === undefined || out.size < ckpt.outputBytes)
    throw new BatchError(
      'BATCH_ERR_CHECKPOINT',
      `the output ${output} is shorter than its checkpoint says (${out?.size ?? 0} < ${ckpt.outputBytes} bytes); remove both to start over`,
    );
  if (out.size > ckpt.outputBytes) await truncate(output, ckpt.outputBytes);
  return { checkpoint: ckpt, input };
}
