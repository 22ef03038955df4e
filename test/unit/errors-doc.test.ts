import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { BE_ERRORS } from '../../backend/errors.js';
import { GW_ERRORS } from '../../gateway/errors.js';

const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
/** Rows of the tables: | `CODE` | status | meaning | */
const documented = new Map(
  [...doc.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)].map((m) => [m[1]!, Number(m[2])] as const),
);

const ALL = { ...BE_ERRORS, ...GW_ERRORS };

test('every backend and gateway error code is documented with its status', () => {
  for (const def of Object.values(ALL)) {
    assert.equal(
      documented.get(def.code),
      def.status,
      `docs/errors.md: ${def.code} missing or with the wrong status`,
    );
  }
});

test('docs/errors.md lists no code that does not exist', () => {
  const known = new Set(Object.keys(ALL));
  for (const code of documented.keys())
    assert.ok(known.has(code), `docs/errors.md lists unknown code ${code}`);
});

test('codes are unique, prefixed and carry an error status', () => {
  for (const [key, def] of Object.entries(ALL)) {
    assert.equal(def.code, key);
    assert.match(def.code, /^(BE|GW)_ERR_[A-Z_]+$/);
    assert.ok(def.status >= 400 && def.status <= 599, `${def.code} status ${def.status}`);
  }
});
