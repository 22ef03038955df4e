import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import ort from 'onnxruntime-node';
import YAML from 'yaml';
import { parseModelConfig } from '../../backend/config.js';
import {
  type BuiltModel,
  buildModelRepository,
  missingSampleModelFiles,
  SAMPLE_MODELS,
} from '../../models/build.js';
import {
  type MlpVersion,
  mlpLargeReference,
  mlpReference,
  mulberry32,
  simpleReference,
} from '../../models/reference.js';

const TOLERANCE = 1e-5;
const tempDirs: string[] = [];
let repo: string;
let built: BuiltModel[];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'infergate-models-'));
  tempDirs.push(dir);
  return dir;
}

before(async () => {
  repo = await tempDir();
  built = await buildModelRepository(repo);
});

after(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

function modelPath(name: string, version: string): string {
  const entry = built.find((m) => m.name === name && m.version === version);
  assert.ok(entry, `${name} v${version} was not built`);
  return entry.path;
}

async function runModel(
  name: string,
  version: string,
  feeds: Record<string, ort.Tensor>,
): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(modelPath(name, version));
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

function outputOf(results: ort.InferenceSession.OnnxValueMapType, name: string): ort.Tensor {
  const value = results[name];
  assert.ok(value instanceof ort.Tensor, `missing output ${name}`);
  return value;
}

function randomFloats(seed: number, count: number, scale = 1): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: count }, () => (next() * 2 - 1) * scale);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

test('repository layout matches SAMPLE_MODELS and configs carry the batching keys', async () => {
  const expected = SAMPLE_MODELS.flatMap((m) => m.versions.map((v) => `${m.name}/${v}`));
  assert.deepEqual(
    built.map((m) => `${m.name}/${m.version}`),
    expected,
  );
  for (const m of built) assert.equal(m.path, path.join(repo, m.name, m.version, 'model.onnx'));
  assert.deepEqual(await missingSampleModelFiles(repo), []);

  for (const { name } of SAMPLE_MODELS) {
    const config = YAML.parse(await readFile(path.join(repo, name, 'config.yaml'), 'utf8'));
    assert.deepEqual(Object.keys(config).sort(), [
      'execution',
      'inter_op_threads',
      'intra_op_threads',
      'max_batch_size',
      'max_queue_delay_ms',
      'max_queue_size',
    ]);
    assert.equal(config.max_batch_size, 64, name);
    // The config the backend reads back is valid and keeps every setting written.
    assert.deepEqual(Object.keys(parseModelConfig(config, name)).sort(), Object.keys(config).sort());
  }
});

test('missingSampleModelFiles reports an incomplete repository', async () => {
  const empty = await tempDir();
  const missing = await missingSampleModelFiles(empty);
  assert.ok(missing.includes(path.join(empty, 'mlp', '2', 'model.onnx')));
  assert.ok(missing.includes(path.join(empty, 'simple', 'config.yaml')));
});

test('simple computes int32 sum and difference with wrap-around', async () => {
  const batch = 3;
  const next = mulberry32(7);
  const a = Int32Array.from({ length: batch * 16 }, () => Math.floor((next() - 0.5) * 2000));
  const b = Int32Array.from({ length: batch * 16 }, () => Math.floor((next() - 0.5) * 2000));
  a[0] = 2147483647;
  b[0] = 1;
  a[1] = -2147483648;
  b[1] = 1;
  const results = await runModel('simple', '1', {
    INPUT0: new ort.Tensor('int32', a, [batch, 16]),
    INPUT1: new ort.Tensor('int32', b, [batch, 16]),
  });
  const expected = simpleReference(a, b);
  const sum = outputOf(results, 'OUTPUT0');
  const diff = outputOf(results, 'OUTPUT1');
  assert.deepEqual(sum.dims, [batch, 16]);
  assert.equal(sum.type, 'int32');
  assert.deepEqual(sum.data, expected.sum);
  assert.deepEqual(diff.data, expected.diff);
  assert.equal(expected.sum[0], -2147483648);
  assert.equal(expected.diff[1], 2147483647);
});

async function runMlp(version: MlpVersion, x: Float32Array, batch: number): Promise<ort.Tensor> {
  return outputOf(await runModel('mlp', version, { x: new ort.Tensor('float32', x, [batch, 64]) }), 'y');
}

test('mlp versions match the reference and differ from each other', async () => {
  const batch = 5;
  const x = randomFloats(11, batch * 64);
  const outputs: Float32Array[] = [];
  for (const version of ['1', '2'] as const) {
    const y = await runMlp(version, x, batch);
    assert.deepEqual(y.dims, [batch, 10]);
    const data = y.data as Float32Array;
    assert.ok(maxAbsDiff(data, mlpReference(version, x, batch)) <= TOLERANCE, `mlp v${version}`);
    const peak = Math.max(...data.map(Math.abs));
    assert.ok(peak > 0.1 && peak < 10, `mlp v${version} outputs should be O(1), peak ${peak}`);
    outputs.push(data);
  }
  assert.ok(maxAbsDiff(outputs[0]!, outputs[1]!) > 0.01, 'v1 and v2 must give different outputs');
});

test('mlp-large matches the reference', async () => {
  const batch = 3;
  const x = randomFloats(13, batch * 512);
  const results = await runModel('mlp-large', '1', { x: new ort.Tensor('float32', x, [batch, 512]) });
  const y = outputOf(results, 'y');
  assert.deepEqual(y.dims, [batch, 10]);
  const data = y.data as Float32Array;
  assert.ok(maxAbsDiff(data, mlpLargeReference(x, batch)) <= TOLERANCE);
  const peak = Math.max(...data.map(Math.abs));
  assert.ok(peak > 0.1 && peak < 10, `outputs should be O(1), peak ${peak}`);
});

test('text-direction (real PaddleOCR classifier) runs batched and per item alike', async () => {
  const session = await ort.InferenceSession.create(modelPath('text-direction', '1'));
  try {
    assert.deepEqual(session.inputNames, ['x']);
    assert.deepEqual(session.outputNames, ['softmax_0.tmp_0']);
    const item = 3 * 48 * 192;
    const batch = 2;
    const x = randomFloats(17, batch * item);
    const run = async (data: Float32Array, n: number) => {
      const out = await session.run({ x: new ort.Tensor('float32', data, [n, 3, 48, 192]) });
      return outputOf(out, 'softmax_0.tmp_0');
    };
    const batched = await run(x, batch);
    assert.deepEqual(batched.dims, [batch, 2]);
    const probs = batched.data as Float32Array;
    for (let i = 0; i < batch; i++) assert.ok(Math.abs(probs[2 * i]! + probs[2 * i + 1]! - 1) < 1e-5);
    for (let i = 0; i < batch; i++) {
      const single = await run(x.subarray(i * item, (i + 1) * item), 1);
      assert.ok(maxAbsDiff(single.data as Float32Array, probs.subarray(2 * i, 2 * i + 2)) <= TOLERANCE);
    }
  } finally {
    await session.release();
  }
});

test('building is deterministic and idempotent', async () => {
  const other = await tempDir();
  await buildModelRepository(other);
  const files = await listFiles(repo);
  assert.deepEqual(await listFiles(other), files);
  for (const file of files) {
    const [a, b] = await Promise.all([readFile(path.join(repo, file)), readFile(path.join(other, file))]);
    assert.ok(a.equals(b), `${file} differs between builds`);
  }

  // Rebuilding in place restores a damaged file and leaves unchanged files untouched.
  const damaged = path.join(other, 'mlp', '1', 'model.onnx');
  const untouched = path.join(other, 'mlp-large', '1', 'model.onnx');
  const mtimeBefore = (await stat(untouched)).mtimeMs;
  await writeFile(damaged, 'garbage');
  await buildModelRepository(other);
  assert.ok((await readFile(damaged)).equals(await readFile(path.join(repo, 'mlp', '1', 'model.onnx'))));
  assert.equal((await stat(untouched)).mtimeMs, mtimeBefore);
  assert.deepEqual(await listFiles(other), files);
});
