import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { BE_ERRORS } from '../../backend/errors.js';

const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
/** Rows of the tables: | `CODE` | status | meaning | */
const documented = new Map(
  [...doc.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)].map((m) => [m[1]!, Number(m[2])] as const),
);

test('every backend error code is documented with its status', () => {
  for (const def of Object.values(BE_ERRORS)) {
    assert.equal(
      documented.get(def.code),
      def.status,
      `docs/errors.md: ${def.code} missing or with the wrong status`,
    );
  }
});

test('docs/errors.md lists no code that does not exist', () => {
  const known = new Set(Object.keys(BE_ERRORS));
  for (const code of documented.keys())
    assert.ok(known.has(code), `docs/errors.md lists unknown code ${code}`);
});

test('codes are unique, prefixed and carry an error status', () => {
  for (const [key, def] of Object.entries(BE_ERRORS)) {
    assert.equal(def.code, key);
    assert.match(def.code, /^BE_ERR_[A-Z_]+$/);
    assert.ok(def.status >= 400 && def.status <= 599, `${def.code} status ${def.status}`);
  }
});
