// Policy fixtures: every invalid fixture is paired with its exact error lines (`NAME.yaml` +
// `NAME.errors`, as `infergate policy validate` prints them), every valid fixture and every example
// policy in policies/ compiles, with exactly the warnings its `NAME.warnings` lists (none without one).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { compileDocument, compilePolicy, formatIssue } from '../../gateway/policy/compile.js';
import { REPO_ROOT } from '../helpers/backend.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'policies');
const INVALID = path.join(FIXTURES, 'invalid');
const VALID = path.join(FIXTURES, 'valid');
const POLICIES = path.join(REPO_ROOT, 'policies');

function filesIn(dir: string, ext: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort();
}

/** The non-empty lines of a paired file; a missing file means no lines. */
function expectedLines(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return text.split('\n').filter((l) => l !== '');
}

const stem = (f: string) => f.replace(/\.[a-z]+$/, '');

describe('invalid policy fixtures', () => {
  const yamls = filesIn(INVALID, '.yaml');

  test('each .yaml is paired with a .errors file and each .errors with a .yaml', () => {
    assert.ok(yamls.length >= 20, `only ${yamls.length} invalid fixtures`);
    assert.deepEqual(filesIn(INVALID, '.errors').map(stem), yamls.map(stem));
    assert.deepEqual(
      readdirSync(INVALID).filter((f) => !f.endsWith('.yaml') && !f.endsWith('.errors')),
      [],
      'no other files',
    );
  });

  for (const file of yamls) {
    test(`${file}: exactly the errors in ${stem(file)}.errors`, () => {
      const expected = expectedLines(path.join(INVALID, `${stem(file)}.errors`));
      assert.ok(expected.length > 0, 'the .errors file lists at least one error');
      const result = compilePolicy(readFileSync(path.join(INVALID, file), 'utf8'));
      assert.equal(result.ok, false, 'the fixture is rejected');
      if (result.ok) return;
      assert.deepEqual(result.errors.map(formatIssue), expected);
    });
  }
});

describe('valid policy fixtures and example policies', () => {
  const cases = [
    ...filesIn(VALID, '.yaml').map((f) => ({ dir: VALID, file: f })),
    ...filesIn(POLICIES, '.yaml').map((f) => ({ dir: POLICIES, file: f })),
  ];

  test('there are valid fixtures and at least four example policies', () => {
    assert.ok(filesIn(VALID, '.yaml').length >= 3);
    assert.ok(filesIn(POLICIES, '.yaml').length >= 4);
    for (const w of filesIn(VALID, '.warnings')) {
      assert.ok(filesIn(VALID, '.yaml').includes(`${stem(w)}.yaml`), `${w} has a .yaml`);
    }
  });

  for (const { dir, file } of cases) {
    const where = path.relative(REPO_ROOT, path.join(dir, file));
    test(`${where} compiles, with exactly the expected warnings`, () => {
      const text = readFileSync(path.join(dir, file), 'utf8');
      const result = compilePolicy(text);
      assert.ok(result.ok, result.ok ? '' : result.errors.map(formatIssue).join('\n'));
      assert.deepEqual(
        result.policy.warnings.map(formatIssue),
        expectedLines(path.join(dir, `${stem(file)}.warnings`)),
      );
      assert.ok(result.policy.models.size >= 1);
      // The same document given as parsed JSON compiles to the same snapshot.
      const again = compileDocument(JSON.parse(JSON.stringify(parseYaml(text))));
      assert.ok(again.ok);
      assert.equal(again.policy.sha256, result.policy.sha256);
    });
  }

  test('every example policy is commented', () => {
    for (const file of filesIn(POLICIES, '.yaml')) {
      const text = readFileSync(path.join(POLICIES, file), 'utf8');
      assert.match(text, /^# /, `${file} starts with a comment`);
      assert.ok(text.split('\n').filter((l) => /^\s*#/.test(l)).length >= 3, `${file} explains itself`);
    }
  });
});
