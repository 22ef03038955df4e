// The k6 scripts shipped for users run under k6, which this repository's CI does not have; here
// they are at least parsed, so a syntax error never ships.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';

const dir = new URL('../../load/k6/', import.meta.url);
const scripts = readdirSync(dir).filter((f) => f.endsWith('.js'));

test('there are k6 scripts', () => {
  assert.ok(scripts.length > 0);
});

for (const file of scripts) {
  test(`load/k6/${file} parses as an ES module`, () => {
    const r = spawnSync(process.execPath, ['--check', new URL(file, dir).pathname], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });
}
