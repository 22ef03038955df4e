// `infergate backend --models LIST`: a replica that loads only some models (or versions) of a
// repository, as a replica of a multi-replica stack does. The real command in a child process.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ModelSelectionError } from '../../backend/repository-layout.js';
import { mlpReference, simpleReference } from '../../models/reference.js';
import {
  assertClose,
  assertErrorBody,
  getJson,
  infer,
  okInfer,
  output,
  randomFloats,
  removeTempDirs,
  request,
  sampleRepository,
  startBackend,
  xDoc,
  repositoryIndex,
} from '../helpers/backend.js';
import { type CliProcess, runCli, startCliBackend } from '../helpers/cli.js';

const TOL = 1e-5;
let sample: string;
const procs: CliProcess[] = [];

before(async () => {
  sample = await sampleRepository();
});

after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await removeTempDirs();
});

async function servesMlp(base: string, version: '1' | '2' | undefined, want: '1' | '2'): Promise<void> {
  const x = randomFloats(40 + Number(want), 64);
  const doc = okInfer(await infer(base, 'mlp', xDoc(x), version));
  assert.equal(doc.model_version, want);
  assertClose(output(doc, 'y').data as number[], mlpReference(want, x, 1), TOL, `mlp v${want}`);
}

async function servesSimple(base: string): Promise<void> {
  const a = Int32Array.from({ length: 16 }, (_, i) => i * 3);
  const b = Int32Array.from({ length: 16 }, (_, i) => 7 - i);
  const doc = okInfer(
    await infer(base, 'simple', {
      inputs: [
        { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from(a) },
        { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from(b) },
      ],
    }),
  );
  const want = simpleReference(a, b);
  assert.deepEqual(output(doc, 'OUTPUT0').data, Array.from(want.sum));
  assert.deepEqual(output(doc, 'OUTPUT1').data, Array.from(want.diff));
}

describe('infergate backend --models', () => {
  test('--models mlp:2,simple serves mlp v2 and simple only; the load API loads the rest later', async () => {
    const { proc, url } = await startCliBackend(sample, ['--models', 'mlp:2,simple']);
    procs.push(proc);

    await servesMlp(url, '2', '2');
    await servesMlp(url, undefined, '2'); // no version: the highest loaded one
    await servesSimple(url);

    const v1 = assertErrorBody(
      await infer(url, 'mlp', xDoc(randomFloats(1, 64)), '1'),
      404,
      'BE_ERR_VERSION_NOT_FOUND',
    );
    assert.equal(v1.field, 'version');
    const td = assertErrorBody(
      await infer(url, 'text-direction', {
        inputs: [
          { name: 'x', shape: [1, 3, 48, 192], datatype: 'FP32', data: new Array(3 * 48 * 192).fill(0) },
        ],
      }),
      404,
      'BE_ERR_MODEL_NOT_FOUND',
    );
    assert.match(td.error, /text-direction/);
    assert.equal((await getJson(url, '/v2/models/mlp/versions/1')).status, 404);
    assert.deepEqual(
      ((await getJson(url, '/v2/models/mlp')).json as { versions: string[] }).versions,
      ['2'],
      'metadata lists the versions this replica serves',
    );

    // The index lists what was left out the way it lists any model that is not loaded.
    const all = await repositoryIndex(url, {});
    assert.deepEqual(all, [
      { name: 'mlp', version: '1', state: 'UNAVAILABLE', reason: 'not loaded' },
      { name: 'mlp', version: '2', state: 'READY', reason: '' },
      { name: 'mlp-large', version: '', state: 'UNAVAILABLE', reason: 'not loaded' },
      { name: 'simple', version: '1', state: 'READY', reason: '' },
      { name: 'text-direction', version: '', state: 'UNAVAILABLE', reason: 'not loaded' },
    ]);
    assert.deepEqual(
      (await repositoryIndex(url, { ready: true })).map((e) => `${e.name}/${e.version}`),
      ['mlp/2', 'simple/1'],
    );

    // The load API loads every version of a model, whatever the startup selection was.
    assert.equal((await request(`${url}/v2/repository/models/mlp/load`, { method: 'POST' })).status, 200);
    await servesMlp(url, '1', '1');
    await servesMlp(url, '2', '2');
    assert.deepEqual(
      (await repositoryIndex(url, {})).filter((e) => e.name === 'mlp').map((e) => [e.version, e.state]),
      [
        ['1', 'READY'],
        ['2', 'READY'],
      ],
    );
    assert.equal(
      (await request(`${url}/v2/repository/models/mlp-large/load`, { method: 'POST' })).status,
      200,
    );
    assert.equal((await getJson(url, '/v2/models/mlp-large/ready')).status, 200);
  });

  test('INFERGATE_MODELS selects like --models; an empty one selects everything', async () => {
    const selected = runCli(['backend', '--model-repository', sample, '--port', '0'], {
      INFERGATE_MODELS: 'simple',
    });
    procs.push(selected);
    const line = await selected.waitForLog('listening', (r) => r.msg.startsWith('backend listening on'));
    const url = line.address as string;
    assert.deepEqual(
      (await repositoryIndex(url, { ready: true })).map((e) => e.name),
      ['simple'],
    );
    assert.equal(line.models, 1, 'the listening line counts ready versions');

    const everything = runCli(['backend', '--model-repository', sample, '--port', '0'], {
      INFERGATE_MODELS: '',
    });
    procs.push(everything);
    const all = await everything.waitForLog('listening', (r) => r.msg.startsWith('backend listening on'));
    assert.ok(
      (await repositoryIndex(all.address as string, { ready: true })).some((e) => e.name === 'mlp-large'),
      'every model loads',
    );
  });

  test('entries naming a model or version that is not in the repository exit 2 and name the entry', async () => {
    const cases: [string, RegExp][] = [
      ['mlp:3', /--models: entry 'mlp:3': model 'mlp' has no version '3' \(versions: 1, 2\)/],
      ['simple,nope', /--models: entry 'nope': no model 'nope' in the model repository/],
      ['mlp:x', /--models entry 'mlp:x': the version must be a positive integer/],
      ['mlp:0', /--models entry 'mlp:0': the version must be a positive integer/],
      ['../mlp', /--models entry '\.\.\/mlp': '\.\.\/mlp' is not a model name/],
      ['simple,,mlp', /--models 'simple,,mlp' has an empty entry/],
      [',', /--models must name at least one model/],
    ];
    const runs = cases.map(([list]) => {
      const p = runCli(['backend', '--model-repository', sample, '--port', '0', '--models', list]);
      procs.push(p);
      return p;
    });
    const exits = await Promise.all(runs.map((p) => p.exited));
    exits.forEach((exit, i) => {
      const [list, message] = cases[i]!;
      assert.deepEqual(exit, { code: 2, signal: null }, `--models ${list}: ${runs[i]!.stderr()}`);
      assert.match(runs[i]!.stderr(), message);
      assert.ok(!runs[i]!.logs.some((r) => r.msg.startsWith('backend listening')), 'never listened');
    });
  });

  test('buildBackend: the models option, and ModelSelectionError listing every bad entry', async () => {
    const server = await startBackend({ modelRepository: sample, models: [{ name: 'mlp', version: '1' }] });
    try {
      await servesMlp(server.url, undefined, '1');
      assertErrorBody(await infer(server.url, 'simple', {}), 404, 'BE_ERR_MODEL_NOT_FOUND');
    } finally {
      await server.close();
    }
    await assert.rejects(
      startBackend({
        modelRepository: sample,
        models: [{ name: 'mlp', version: '9' }, { name: 'simple' }, { name: 'gone' }],
      }),
      (e: unknown) => {
        assert.ok(e instanceof ModelSelectionError, String(e));
        assert.match(e.message, /entry 'mlp:9'/);
        assert.match(e.message, /entry 'gone'/);
        assert.doesNotMatch(e.message, /'simple'/);
        return true;
      },
    );
  });
});
