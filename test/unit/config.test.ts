import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_MODEL_CONFIG,
  type ModelConfig,
  ModelConfigError,
  parseModelConfig,
  readModelConfig,
} from '../../backend/config.js';
import { setting, UsageError } from '../../cli/args.js';
import { parseModelList } from '../../cli/backend.js';

const WHERE = 'models/m/config.yaml';

const EXPECTED_DEFAULTS: ModelConfig = {
  max_batch_size: 0,
  max_queue_delay_ms: 0,
  max_queue_size: 1024,
  intra_op_threads: 0,
  inter_op_threads: 0,
  execution: 'worker',
};

function assertConfigError(fn: () => unknown, ...mustMention: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ModelConfigError, `expected ModelConfigError, got ${String(e)}`);
    for (const s of mustMention)
      assert.ok(e.message.includes(s), `message ${JSON.stringify(e.message)} lacks ${s}`);
    return true;
  });
}

describe('parseModelConfig: defaults and values', () => {
  test('the documented defaults', () => {
    assert.deepEqual({ ...DEFAULT_MODEL_CONFIG }, EXPECTED_DEFAULTS);
    assert.ok(Object.isFrozen(DEFAULT_MODEL_CONFIG));
  });

  for (const [label, doc] of [
    ['null (empty YAML file)', null],
    ['undefined', undefined],
    ['an empty mapping', {}],
  ] as const) {
    test(`${label} gives the defaults`, () => {
      assert.deepEqual({ ...parseModelConfig(doc, WHERE) }, EXPECTED_DEFAULTS);
    });
  }

  const keyCases: { key: keyof ModelConfig; value: number }[] = [
    { key: 'max_batch_size', value: 32 },
    { key: 'max_batch_size', value: 1 << 20 },
    { key: 'max_queue_delay_ms', value: 5 },
    { key: 'max_queue_delay_ms', value: 60_000 },
    { key: 'max_queue_size', value: 1 },
    { key: 'max_queue_size', value: 1 << 20 },
    { key: 'intra_op_threads', value: 4 },
    { key: 'intra_op_threads', value: 1024 },
    { key: 'inter_op_threads', value: 2 },
    { key: 'inter_op_threads', value: 1024 },
  ];
  for (const { key, value } of keyCases) {
    test(`${key}: ${value} is taken, the other keys keep their defaults`, () => {
      const cfg = parseModelConfig({ [key]: value }, WHERE);
      assert.deepEqual({ ...cfg }, { ...EXPECTED_DEFAULTS, [key]: value });
    });
  }

  test('every key at once, from YAML', () => {
    const doc = parseYaml(
      [
        'max_batch_size: 8',
        'max_queue_delay_ms: 3',
        'max_queue_size: 16',
        'intra_op_threads: 2',
        'inter_op_threads: 1',
        'execution: inline',
      ].join('\n'),
    );
    assert.deepEqual(
      { ...parseModelConfig(doc, WHERE) },
      {
        max_batch_size: 8,
        max_queue_delay_ms: 3,
        max_queue_size: 16,
        intra_op_threads: 2,
        inter_op_threads: 1,
        execution: 'inline',
      },
    );
  });

  test('lower bounds are accepted (0 turns batching off)', () => {
    const cfg = parseModelConfig(
      {
        max_batch_size: 0,
        max_queue_delay_ms: 0,
        max_queue_size: 1,
        intra_op_threads: 0,
        inter_op_threads: 0,
      },
      WHERE,
    );
    assert.equal(cfg.max_batch_size, 0);
    assert.equal(cfg.max_queue_size, 1);
  });

  test('a YAML 1.0 (integral float) counts as an integer', () => {
    assert.equal(parseModelConfig(parseYaml('max_batch_size: 4.0'), WHERE).max_batch_size, 4);
  });

  test('the result is frozen and the defaults are not modified', () => {
    const cfg = parseModelConfig({ max_batch_size: 7 }, WHERE);
    assert.ok(Object.isFrozen(cfg));
    assert.equal(DEFAULT_MODEL_CONFIG.max_batch_size, 0);
    assert.throws(() => {
      (cfg as { max_batch_size: number }).max_batch_size = 9;
    }, TypeError);
  });
});

describe('parseModelConfig: errors', () => {
  test('an unknown key is named, with the where prefix and the known keys', () => {
    assertConfigError(
      () => parseModelConfig({ max_batch: 4 }, WHERE),
      WHERE,
      'max_batch',
      'unknown setting',
      'max_batch_size',
      'inter_op_threads',
    );
  });

  test('every problem is reported at once', () => {
    assertConfigError(
      () => parseModelConfig({ nope: 1, max_queue_size: 0, intra_op_threads: 'x', max_batch_size: 4 }, WHERE),
      'nope',
      'max_queue_size',
      'intra_op_threads',
    );
    assert.throws(
      () => parseModelConfig({ nope: 1, max_queue_size: 0 }, WHERE),
      (e: unknown) => e instanceof ModelConfigError && !e.message.includes('max_batch_size:'),
    );
  });

  const bad: { key: keyof ModelConfig; value: unknown; range: string }[] = [
    { key: 'max_batch_size', value: -1, range: '[0, 1048576]' },
    { key: 'max_batch_size', value: (1 << 20) + 1, range: '[0, 1048576]' },
    { key: 'max_batch_size', value: 2.5, range: '[0, 1048576]' },
    { key: 'max_batch_size', value: '8', range: '[0, 1048576]' },
    { key: 'max_batch_size', value: true, range: '[0, 1048576]' },
    { key: 'max_batch_size', value: null, range: '[0, 1048576]' },
    { key: 'max_batch_size', value: [4], range: '[0, 1048576]' },
    { key: 'max_queue_delay_ms', value: -5, range: '[0, 60000]' },
    { key: 'max_queue_delay_ms', value: 60_001, range: '[0, 60000]' },
    { key: 'max_queue_delay_ms', value: 0.5, range: '[0, 60000]' },
    { key: 'max_queue_delay_ms', value: Number.NaN, range: '[0, 60000]' },
    { key: 'max_queue_size', value: 0, range: '[1, 1048576]' },
    { key: 'max_queue_size', value: Number.POSITIVE_INFINITY, range: '[1, 1048576]' },
    { key: 'max_queue_size', value: 2 ** 21, range: '[1, 1048576]' },
    { key: 'intra_op_threads', value: 1025, range: '[0, 1024]' },
    { key: 'intra_op_threads', value: -1, range: '[0, 1024]' },
    { key: 'inter_op_threads', value: 1025, range: '[0, 1024]' },
    { key: 'inter_op_threads', value: 1.1, range: '[0, 1024]' },
    { key: 'inter_op_threads', value: { n: 1 }, range: '[0, 1024]' },
  ];
  for (const c of bad) {
    test(`${c.key}: ${String(c.value)} is rejected, naming the key and its range`, () => {
      assertConfigError(
        () => parseModelConfig({ [c.key]: c.value }, WHERE),
        WHERE,
        `${c.key}:`,
        'integer',
        c.range,
      );
    });
  }

  for (const [label, doc] of [
    ['a list', [1, 2]],
    ['a string', 'max_batch_size'],
    ['a number', 4],
    ['a boolean', true],
  ] as const) {
    test(`a document that is ${label} is not a mapping`, () => {
      assertConfigError(() => parseModelConfig(doc, WHERE), WHERE, 'mapping');
    });
  }

  test('Object.prototype member names (constructor, toString, hasOwnProperty, __proto__) are unknown settings', {}, () => {
    for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      assertConfigError(() => parseModelConfig(parseYaml(`${key}: 1`), WHERE), key, 'unknown setting');
    }
  });
});

describe('readModelConfig', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'infergate-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const write = async (name: string, text: string): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, text, 'utf8');
    return file;
  };

  test('a missing file gives the defaults', async () => {
    const cfg = await readModelConfig(path.join(dir, 'does-not-exist.yaml'));
    assert.deepEqual({ ...cfg }, EXPECTED_DEFAULTS);
  });

  test('a file inside a missing directory gives the defaults', async () => {
    const cfg = await readModelConfig(path.join(dir, 'no-such-model', 'config.yaml'));
    assert.deepEqual({ ...cfg }, EXPECTED_DEFAULTS);
  });

  test('an empty file and a comment-only file give the defaults', async () => {
    assert.deepEqual({ ...(await readModelConfig(await write('empty.yaml', ''))) }, EXPECTED_DEFAULTS);
    assert.deepEqual(
      { ...(await readModelConfig(await write('comment.yaml', '# nothing set\n'))) },
      EXPECTED_DEFAULTS,
    );
  });

  test('a valid file is read', async () => {
    const file = await write(
      'ok.yaml',
      'max_batch_size: 16\nmax_queue_delay_ms: 2 # ms\nmax_queue_size: 64\n',
    );
    assert.deepEqual(
      { ...(await readModelConfig(file)) },
      { ...EXPECTED_DEFAULTS, max_batch_size: 16, max_queue_delay_ms: 2, max_queue_size: 64 },
    );
  });

  for (const [name, text] of [
    ['unclosed-flow.yaml', 'max_batch_size: [1, 2\n'],
    ['compact-nested.yaml', 'max_batch_size: 4: 5\n'],
    ['duplicate-keys.yaml', 'max_batch_size: 4\nmax_batch_size: 8\n'],
    ['tab-indent.yaml', '\tmax_batch_size: 1\n'],
  ] as const) {
    test(`invalid YAML (${name}) is a ModelConfigError naming the file`, async () => {
      const file = await write(name, text);
      await assert.rejects(readModelConfig(file), (e: unknown) => {
        assert.ok(e instanceof ModelConfigError, String(e));
        assert.ok(e.message.includes(file), e.message);
        assert.ok(e.message.includes('not valid YAML'), e.message);
        return true;
      });
    });
  }

  test('valid YAML with a bad value is a ModelConfigError naming the file and key', async () => {
    const file = await write('bad-value.yaml', 'max_queue_size: 0\n');
    await assert.rejects(readModelConfig(file), (e: unknown) => {
      assert.ok(e instanceof ModelConfigError);
      assert.ok(e.message.includes(file) && e.message.includes('max_queue_size'), e.message);
      return true;
    });
  });

  test('valid YAML with an unknown key is a ModelConfigError naming it', async () => {
    const file = await write('unknown.yaml', 'max_batch_size: 4\nbatch_timeout: 3\n');
    await assert.rejects(readModelConfig(file), (e: unknown) => {
      assert.ok(e instanceof ModelConfigError);
      assert.ok(e.message.includes('batch_timeout'), e.message);
      return true;
    });
  });

  test('a YAML list is not a mapping', async () => {
    const file = await write('list.yaml', '- max_batch_size: 4\n');
    await assert.rejects(
      readModelConfig(file),
      (e: unknown) => e instanceof ModelConfigError && e.message.includes('mapping'),
    );
  });

  test('errors other than a missing file are not swallowed (a directory)', async () => {
    const sub = path.join(dir, 'a-directory.yaml');
    await mkdir(sub);
    await assert.rejects(readModelConfig(sub), (e: unknown) => {
      assert.ok(!(e instanceof ModelConfigError));
      assert.equal((e as NodeJS.ErrnoException).code, 'EISDIR');
      return true;
    });
  });
});

test('execution accepts worker and inline and rejects anything else', () => {
  assert.equal(parseModelConfig({ execution: 'inline' }, WHERE).execution, 'inline');
  assert.equal(parseModelConfig({ execution: 'worker' }, WHERE).execution, 'worker');
  assertConfigError(() => parseModelConfig({ execution: 'gpu' }, WHERE), 'execution', 'worker, inline');
});

// ---------------------------------------------------------------------------------------------
// Command-line settings (cli/args.ts): a flag, else its environment variable, else the default.

describe('setting: flag, environment, default', () => {
  const ENV = 'INFERGATE_TEST_SETTING';
  after(() => {
    delete process.env[ENV];
  });

  test('an empty environment variable counts as unset', () => {
    process.env[ENV] = '';
    assert.equal(setting(undefined, ENV, 'fallback'), 'fallback');
    assert.equal(setting(undefined, ENV), undefined);
  });

  test('a set environment variable beats the default; a flag beats both', () => {
    process.env[ENV] = 'from-env';
    assert.equal(setting(undefined, ENV, 'fallback'), 'from-env');
    assert.equal(setting('from-flag', ENV, 'fallback'), 'from-flag');
    delete process.env[ENV];
    assert.equal(setting(undefined, ENV, 'fallback'), 'fallback');
    assert.equal(setting(undefined, ENV), undefined);
  });

  test('an explicit empty flag is kept (and then judged by the flag check)', () => {
    process.env[ENV] = 'from-env';
    assert.equal(setting('', ENV, 'fallback'), '');
  });
});

describe('parseModelList (--models)', () => {
  test('names and name:version entries, spaces around entries ignored', () => {
    assert.deepEqual(parseModelList('mlp:2, simple ,mlp-large'), [
      { name: 'mlp', version: '2' },
      { name: 'simple' },
      { name: 'mlp-large' },
    ]);
    assert.deepEqual(parseModelList('mlp:1,mlp:2'), [
      { name: 'mlp', version: '1' },
      { name: 'mlp', version: '2' },
    ]);
  });

  for (const [text, message] of [
    ['', /at least one model/],
    [' , ', /at least one model/],
    ['a,,b', /has an empty entry/],
    ['a,', /has an empty entry/],
    ['mlp:', /entry 'mlp:': the version must be a positive integer/],
    ['mlp:01', /entry 'mlp:01': the version must be a positive integer/],
    ['mlp:1:2', /entry 'mlp:1:2': the version must be a positive integer/],
    [':1', /entry ':1': '' is not a model name/],
    ['../x', /entry '\.\.\/x': '\.\.\/x' is not a model name/],
  ] as const) {
    test(`'${text}' is a usage error: ${message.source}`, () => {
      assert.throws(
        () => parseModelList(text),
        (e: unknown) => e instanceof UsageError && message.test(e.message),
      );
    });
  }
});
