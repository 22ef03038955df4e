// One source of truth: policies/policy.schema.json is exactly what `infergate policy schema`
// prints from the TypeBox definition the compiler validates with, a JSON Schema validator agrees
// with the compiler on every fixture, and `infergate policy validate` (the real CLI) prints every
// error with its path and exits 1, or exits 0 for every policy in policies/.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import ajv2020 from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { compilePolicy, formatIssue } from '../../gateway/policy/compile.js';
import { PolicySchema, policyJsonSchema } from '../../gateway/policy/schema.js';
import { REPO_ROOT } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';

const SCHEMA_FILE = path.join(REPO_ROOT, 'policies', 'policy.schema.json');
const POLICIES = path.join(REPO_ROOT, 'policies');
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'policies');

const yamlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(dir, f));

const rel = (file: string) => path.relative(REPO_ROOT, file);

/** Runs `infergate ARGS` to its exit. */
async function infergate(
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = runCli(args);
  const exit = await proc.exited;
  return { code: exit.code, stdout: proc.stdout(), stderr: proc.stderr() };
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function inBatches<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += limit)
    out.push(...(await Promise.all(items.slice(i, i + limit).map(fn))));
  return out;
}

/** Every subschema of a JSON Schema document, with its JSON pointer. */
function* subschemas(node: unknown, at = ''): Generator<[string, Record<string, unknown>]> {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) yield* subschemas(node[i], `${at}/${i}`);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  yield [at, obj];
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'const' || k === 'enum' || k === 'default' || k === 'examples') continue;
    yield* subschemas(v, `${at}/${k}`);
  }
}

describe('policies/policy.schema.json', () => {
  const fileText = readFileSync(SCHEMA_FILE, 'utf8');

  test('equals policyJsonSchema(), byte for byte as `infergate policy schema` writes it', () => {
    assert.deepEqual(JSON.parse(fileText), policyJsonSchema());
    assert.equal(
      fileText,
      `${JSON.stringify(policyJsonSchema(), null, 2)}\n`,
      'regenerate with: npx infergate policy schema > policies/policy.schema.json',
    );
  });

  test('`infergate policy schema` prints the same file', async () => {
    const r = await infergate('policy', 'schema');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(`${r.stdout}\n`, fileText);
  });

  test('is a draft 2020-12 schema that a strict validator accepts', () => {
    const schema = JSON.parse(fileText) as Record<string, unknown>;
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(schema.type, 'object');
    assert.deepEqual(schema.required, ['version', 'backends', 'models']);
    new ajv2020.default({ strict: true, allErrors: true }).compile(schema);
  });

  test('unknown keys are errors everywhere: every object schema closes its properties', () => {
    const objects = [...subschemas(JSON.parse(fileText))].filter(([, s]) => s.type === 'object');
    assert.ok(objects.length >= 15, `${objects.length} object schemas`);
    for (const [at, s] of objects) {
      assert.equal(s.additionalProperties, false, `${at || '(root)'} lets unknown keys through`);
    }
  });

  test('carries no validator-only keys (errorMessage)', () => {
    assert.doesNotMatch(fileText, /errorMessage/);
  });
});

describe('a JSON Schema validator and the compiler agree on every fixture', () => {
  const validate = new ajv2020.default({ strict: true, allErrors: true }).compile(policyJsonSchema());
  const files = [
    ...yamlFiles(POLICIES),
    ...yamlFiles(path.join(FIXTURES, 'valid')),
    ...yamlFiles(path.join(FIXTURES, 'invalid')),
  ];
  let parsed = 0;
  for (const file of files) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(file, 'utf8'), { uniqueKeys: true });
    } catch {
      continue; // not YAML: nothing for a schema to say
    }
    parsed++;
    test(rel(file), () => {
      assert.equal(
        validate(doc),
        Value.Check(PolicySchema, doc),
        `ajv: ${JSON.stringify(validate.errors?.slice(0, 3))}`,
      );
    });
  }
  test('most fixtures were compared', () => {
    assert.ok(parsed >= files.length - 2, `${parsed} of ${files.length}`);
  });
});

describe('infergate policy validate (the real CLI)', () => {
  test('a bad file: every error with its path on stderr, then a count; exit 1', async () => {
    const file = path.join(FIXTURES, 'invalid', 'bad-split-variant.yaml');
    const r = await infergate('policy', 'validate', rel(file));
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `models.mlp.split.canary: unknown variant 'canary'\ninfergate policy: ${rel(file)}: 1 error\n`,
    );
  });

  test('several errors across models, all in one run', async () => {
    const file = path.join(FIXTURES, 'invalid', 'every-error.yaml');
    const r = await infergate('policy', 'validate', file);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      [
        "models.mlp.variants.candidate.backend: unknown backend 'pool-z'",
        "models.mlp.split.canary: unknown variant 'canary'",
        "models.mlp.routes[1].variant: unknown variant 'beta'",
        "models.mlp.shadow.variant: unknown variant 'mirror'",
        'models.simple.split: the weights must have a positive sum',
        "models.text-direction.variants.default.backend: unknown backend 'pool-y'",
        "auth.apiKeys[0].models[0]: unknown model 'nosuch'",
        `infergate policy: ${file}: 7 errors`,
        '',
      ].join('\n'),
    );
  });

  // Every invalid fixture is checked in process (policy-fixtures.test.ts); through the CLI, one of
  // each kind: schema errors, YAML errors, an empty file, fail-closed features.
  test('invalid fixtures of each kind: exit 1 and exactly the lines of the .errors file', async () => {
    const files = ['unknown-keys', 'bad-values', 'yaml-duplicate-key', 'empty', 'auth-invalid'].map((f) =>
      path.join(FIXTURES, 'invalid', `${f}.yaml`),
    );
    const results = await inBatches(files, 6, async (file) => ({
      file,
      ...(await infergate('policy', 'validate', file)),
    }));
    for (const r of results) {
      const expected = readFileSync(r.file.replace(/\.yaml$/, '.errors'), 'utf8');
      const count = expected.split('\n').filter((l) => l !== '').length;
      assert.equal(r.code, 1, rel(r.file));
      assert.equal(r.stdout, '', rel(r.file));
      assert.equal(
        r.stderr,
        `${expected}infergate policy: ${r.file}: ${count} error${count === 1 ? '' : 's'}\n`,
        rel(r.file),
      );
    }
  });

  test('every policy in policies/ and every valid fixture: exit 0, one line on stdout', async () => {
    const files = [...yamlFiles(POLICIES), ...yamlFiles(path.join(FIXTURES, 'valid'))];
    const results = await inBatches(files, 6, async (file) => ({
      file,
      ...(await infergate('policy', 'validate', rel(file))),
    }));
    for (const r of results) {
      const compiled = compilePolicy(readFileSync(r.file, 'utf8'));
      assert.ok(compiled.ok);
      const { models, backends, sha256 } = compiled.policy;
      assert.equal(r.code, 0, `${rel(r.file)}: ${r.stderr}`);
      assert.equal(
        r.stdout,
        `${rel(r.file)}: valid (${models.size} model${models.size === 1 ? '' : 's'}, ${backends.size} backend${backends.size === 1 ? '' : 's'}, sha256 ${sha256.slice(0, 12)})`,
      );
      assert.equal(
        r.stderr,
        compiled.policy.warnings.map((w) => `warning: ${formatIssue(w)}\n`).join(''),
        `${rel(r.file)}: warnings`,
      );
    }
    const examples = results.filter((r) => path.dirname(r.file) === POLICIES);
    assert.ok(examples.length >= 4);
    for (const r of examples) assert.equal(r.stderr, '', `${rel(r.file)}: an example policy has no warnings`);
  });

  test('a file that cannot be read: exit 1 with the reason', async () => {
    const r = await infergate('policy', 'validate', 'no/such/policy.yaml');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'infergate policy: cannot read no/such/policy.yaml: ENOENT\n');
  });

  test('usage errors exit 2', async () => {
    for (const args of [
      ['policy', 'validate'],
      ['policy', 'validate', 'a.yaml', 'b.yaml'],
      ['policy', 'nope'],
      ['policy', 'schema', 'x'],
    ]) {
      const r = await infergate(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^infergate policy: /, args.join(' '));
    }
  });
});
