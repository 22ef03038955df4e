// The input of `infergate batch`: lines read as a stream with their numbers and byte offsets
// (resumable from any line's offset), OIP and row lines turned into request bodies with clear
// errors, row shapes from the model's metadata, and --shard.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type InputLine,
  inShard,
  isBlank,
  LineError,
  parseShard,
  readLines,
  requestBody,
  rowShape,
} from '../../cli/batch/input.js';
import { wireBody } from '../../cli/batch/binary.js';
import { removeTempDirs, tempDir } from '../helpers/backend.js';

after(removeTempDirs);

async function collect(file: string, offset = 0, line = 1): Promise<InputLine[]> {
  const out: InputLine[] = [];
  for await (const l of readLines(file, offset, line)) out.push(l);
  return out;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof LineError, String(e));
    return `${e.code}: ${e.message}`;
  }
  return 'no error';
}

describe('batch input', () => {
  test('lines with numbers and byte offsets (multi-byte text, CRLF, a last line without newline)', async () => {
    const file = path.join(await tempDir('infergate-in-'), 'in.jsonl');
    await writeFile(file, 'a\n\u00e9t\u00e9\r\n\n  \nlast');
    const lines = await collect(file);
    assert.deepEqual(
      lines.map((l) => [l.line, l.start, l.end, l.text]),
      [
        [1, 0, 2, 'a'],
        [2, 2, 9, '\u00e9t\u00e9'],
        [3, 9, 10, ''],
        [4, 10, 13, '  '],
        [5, 13, 17, 'last'],
      ],
    );
    assert.deepEqual(
      lines.map((l) => isBlank(l.text)),
      [false, false, true, true, false],
    );
    // From a line's offset the rest reads the same.
    const rest = await collect(file, 9, 3);
    assert.deepEqual(rest, lines.slice(2));
  });

  test('a large file streams with exact offsets across chunk boundaries', async () => {
    const file = path.join(await tempDir('infergate-in-'), 'big.jsonl');
    const texts = Array.from({ length: 5000 }, (_, i) => `{"i":${i},"pad":"${'x'.repeat(i % 300)}"}`);
    await writeFile(file, `${texts.join('\n')}\n`);
    let offset = 0;
    let n = 0;
    for await (const l of readLines(file, 0, 1)) {
      assert.equal(l.start, offset);
      assert.equal(l.text, texts[n]);
      offset = l.end;
      n += 1;
    }
    assert.equal(n, texts.length);
  });

  test('OIP lines are sent as written; what is not one is a LineError with its code', () => {
    const oip = '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}';
    assert.equal(requestBody(oip, 'oip', undefined).text, oip);
    assert.match(
      codeOf(() => requestBody('{"inputs": [', 'oip', undefined)),
      /^BATCH_ERR_BAD_JSON: not JSON/,
    );
    assert.equal(
      codeOf(() => requestBody('[1]', 'oip', undefined)),
      'BATCH_ERR_BAD_LINE: must be a JSON object',
    );
    assert.equal(
      codeOf(() => requestBody('{"x":[1]}', 'oip', undefined)),
      "BATCH_ERR_BAD_LINE: an OIP request needs an 'inputs' array",
    );
  });

  test('rows: named inputs shaped and typed from the metadata', () => {
    const inputs = [
      { name: 'x', datatype: 'FP32', shape: [-1, 4] },
      { name: 'k', datatype: 'INT32', shape: [-1] },
    ];
    const body = JSON.parse(requestBody('{"x":[[1,2],[3,4]],"k":[7]}', 'rows', inputs).text);
    assert.deepEqual(body, {
      inputs: [
        { name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] },
        { name: 'k', shape: [1], datatype: 'INT32', data: [7] },
      ],
    });
    assert.equal(
      codeOf(() => requestBody('{"x":[1,2,3,4]}', 'rows', inputs)),
      "BATCH_ERR_BAD_LINE: input 'k' is missing",
    );
    assert.equal(
      codeOf(() => requestBody('{"x":[1,2,3,4],"k":[1],"z":1}', 'rows', inputs)),
      "BATCH_ERR_BAD_LINE: the model has no input 'z'",
    );
    assert.equal(
      codeOf(() => requestBody('{"x":[1,2,3],"k":[1]}', 'rows', inputs)),
      "BATCH_ERR_BAD_LINE: input 'x' has 3 values; its shape [-1, 4] needs 4 a row",
    );
  });

  test('row shapes: a variable batch dimension is 1, one other variable dimension takes the rest', () => {
    assert.deepEqual(rowShape({ name: 'a', datatype: 'FP32', shape: [-1, 3, -1] }, 12), [1, 3, 4]);
    assert.deepEqual(rowShape({ name: 'a', datatype: 'FP32', shape: [2, 3] }, 6), [2, 3]);
    assert.deepEqual(rowShape({ name: 'a', datatype: 'FP32', shape: [8, 3] }, 3), [1, 3]);
    assert.deepEqual(rowShape({ name: 'a', datatype: 'FP32', shape: [] }, 5), [5]);
    assert.throws(() => rowShape({ name: 'a', datatype: 'FP32', shape: [-1, -1, -1] }, 4), /do not fit/);
  });

  test('--shard I/N: every line in exactly one shard; bad values refused', () => {
    const counts = [0, 0, 0];
    for (let line = 1; line <= 30; line++) {
      const owners = [0, 1, 2].filter((i) => inShard(line, i, 3));
      assert.equal(owners.length, 1);
      const i = owners[0] as number;
      counts[i] = (counts[i] as number) + 1;
    }
    assert.deepEqual(counts, [10, 10, 10]);
    assert.deepEqual(parseShard('2/4'), { index: 2, count: 4 });
    for (const bad of ['4/4', '1/0', 'a/b', '-1/3', '1'])
      assert.throws(() => parseShard(bad), /--shard must be I\/N with 0 <= I < N/);
  });
});

describe('batch binary bodies', () => {
  test('numeric inputs go as bytes after a JSON header that gives their sizes', () => {
    const text = JSON.stringify({
      id: 'q',
      inputs: [
        { name: 'x', shape: [1, 2], datatype: 'FP32', data: [1.5, -2] },
        { name: 'k', shape: [1], datatype: 'INT32', data: [7] },
      ],
    });
    const { doc } = requestBody(text, 'oip', undefined);
    const w = wireBody(doc, text);
    assert.ok(Buffer.isBuffer(w.data) && w.headerLength !== undefined);
    const header = JSON.parse(w.data.subarray(0, w.headerLength).toString('utf8'));
    assert.deepEqual(header, {
      id: 'q',
      inputs: [
        { name: 'x', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
        { name: 'k', shape: [1], datatype: 'INT32', parameters: { binary_data_size: 4 } },
      ],
    });
    const bytes = w.data.subarray(w.headerLength);
    assert.deepEqual(
      Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 8))),
      [1.5, -2],
    );
    assert.equal(bytes.readInt32LE(8), 7);
  });

  test('anything else is sent as written: BYTES, a value out of range, nested data', () => {
    for (const input of [
      { name: 's', shape: [1], datatype: 'BYTES', data: ['a'] },
      { name: 'i', shape: [1], datatype: 'INT8', data: [300] },
      { name: 'f', shape: [1, 2], datatype: 'FP32', data: [[1, 2]] },
      { name: 'f', shape: [1], datatype: 'FP32', data: ['1'] },
    ]) {
      const text = JSON.stringify({ inputs: [input] });
      assert.deepEqual(wireBody(requestBody(text, 'oip', undefined).doc, text), {
        data: text,
        headerLength: undefined,
      });
    }
  });
});
