// The checkpoint of `infergate batch` on real files: a fresh job writes one at once, an output
// without one is not overwritten unless asked, a restart cuts the output back to what the
// checkpoint counts, and a changed input or different options are refused with their codes.
import assert from 'node:assert/strict';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { BatchError, checkpointPath, type JobKey, resume } from '../../cli/batch/checkpoint.js';
import { OutputWriter } from '../../cli/batch/output.js';
import { emptyCounts } from '../../cli/batch/stats.js';
import { removeTempDirs, tempDir } from '../helpers/backend.js';

after(removeTempDirs);

const JOB: JobKey = { model: 'm', format: 'oip', shard: '0/1', ordered: true };

async function files() {
  const dir = await tempDir('infergate-ckpt-');
  const input = path.join(dir, 'in.jsonl');
  await writeFile(input, '{"inputs":[]}\n{"inputs":[]}\n{"inputs":[]}\n');
  return { dir, input, output: path.join(dir, 'out.jsonl') };
}

async function refusal(p: Promise<unknown>): Promise<BatchError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof BatchError, String(e));
    return e;
  }
  assert.fail('expected a refusal');
}

describe('batch checkpoint', () => {
  test('a fresh job: an empty output and a checkpoint at line 1, written at once', async () => {
    const f = await files();
    const r = await resume(f.input, f.output, JOB, false);
    assert.equal(r.checkpoint.complete, false);
    assert.deepEqual(r.checkpoint.watermark, { line: 1, offset: 0 });
    assert.equal((await stat(f.output)).size, 0);
    const saved = JSON.parse(await readFile(checkpointPath(f.output), 'utf8'));
    assert.deepEqual(saved.input, r.input);
    assert.equal(r.input.size, 42);
  });

  test('an output without a checkpoint is refused, and replaced with --overwrite', async () => {
    const f = await files();
    await writeFile(f.output, 'something\n');
    const e = await refusal(resume(f.input, f.output, JOB, false));
    assert.equal(e.code, 'BATCH_ERR_OUTPUT_EXISTS');
    assert.match(e.message, /--overwrite/);
    await resume(f.input, f.output, JOB, true);
    assert.equal((await stat(f.output)).size, 0);
  });

  test('a restart cuts the output back to the length the checkpoint counts', async () => {
    const f = await files();
    const r = await resume(f.input, f.output, JOB, false);
    const w = await OutputWriter.open(f.output, 0, checkpointPath(f.output));
    w.append('{"line":1}');
    await w.flush((outputBytes) => ({
      ...r.checkpoint,
      watermark: { line: 2, offset: 14 },
      outputBytes,
      counts: { ...emptyCounts(), lines: 1, ok: 1 },
    }));
    // Gathered but never flushed (the process dies): and a torn write past the durable point.
    w.append('{"line":2}');
    await w.close();
    await writeFile(f.output, '{"line":1}\n{"line":2}\n{"li', { flag: 'w' });
    const again = await resume(f.input, f.output, JOB, false);
    assert.deepEqual(again.checkpoint.watermark, { line: 2, offset: 14 });
    assert.equal(again.checkpoint.counts.ok, 1);
    assert.equal(await readFile(f.output, 'utf8'), '{"line":1}\n');
  });

  test('a changed input is refused: its size, its first bytes, its modification time', async () => {
    const f = await files();
    const when = 1_700_000_000; // whole seconds: set back exactly below
    await utimes(f.input, when, when);
    await resume(f.input, f.output, JOB, false);
    const original = await readFile(f.input);

    await writeFile(f.input, Buffer.concat([original, Buffer.from('{"inputs":[]}\n')]));
    let e = await refusal(resume(f.input, f.output, JOB, false));
    assert.equal(e.code, 'BATCH_ERR_INPUT_CHANGED');
    assert.match(e.message, /size went from 42 to 56 bytes/);

    const same = Buffer.from(original);
    same[2] = 'I'.charCodeAt(0);
    await writeFile(f.input, same);
    await utimes(f.input, when, when);
    e = await refusal(resume(f.input, f.output, JOB, false));
    assert.match(e.message, /first bytes differ/);

    await writeFile(f.input, original);
    await utimes(f.input, when, when + 5);
    e = await refusal(resume(f.input, f.output, JOB, false));
    assert.match(e.message, /modification time changed/);

    await utimes(f.input, when, when);
    await resume(f.input, f.output, JOB, false);
  });

  test('other options than the checkpoint was written with are refused, naming the option', async () => {
    const f = await files();
    await resume(f.input, f.output, JOB, false);
    const e = await refusal(resume(f.input, f.output, { ...JOB, shard: '1/2' }, false));
    assert.equal(e.code, 'BATCH_ERR_JOB_CHANGED');
    assert.match(e.message, /shard "0\/1", not "1\/2"/);
    const o = await refusal(resume(f.input, f.output, { ...JOB, ordered: false }, false));
    assert.match(o.message, /ordered true, not false/);
  });

  test('a checkpoint that is not one, and an output shorter than it counts, are refused', async () => {
    const f = await files();
    await resume(f.input, f.output, JOB, false);
    const ckpt = JSON.parse(await readFile(checkpointPath(f.output), 'utf8'));
    await writeFile(checkpointPath(f.output), JSON.stringify({ ...ckpt, outputBytes: 100 }));
    let e = await refusal(resume(f.input, f.output, JOB, false));
    assert.equal(e.code, 'BATCH_ERR_CHECKPOINT');
    assert.match(e.message, /shorter than its checkpoint says \(0 < 100 bytes\)/);
    await writeFile(checkpointPath(f.output), 'not json');
    e = await refusal(resume(f.input, f.output, JOB, false));
    assert.equal(e.code, 'BATCH_ERR_CHECKPOINT');
  });
});
