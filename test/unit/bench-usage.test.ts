// Every benchmark command refuses an unknown option with its message and exit 2, never a stack trace.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/backend.js';

const COMMANDS = [
  'bench-all',
  'bench-backend',
  'bench-batch',
  'bench-canary',
  'bench-capacity',
  'bench-fleet',
  'bench-gateway',
  'bench-shadow',
];

function run(script: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'load', `${script}.ts`), ...args],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

for (const script of COMMANDS) {
  test(`${script} --no-such-flag: exit 2 with the flag named, no stack trace`, async () => {
    const r = await run(script, ['--no-such-flag']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^${script}: Unknown option '--no-such-flag'`));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
}

test('a value a command checks itself names its flag the same way', async () => {
  const r = await run('bench-capacity', ['--models', 'nope']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^bench-capacity: --models: unknown 'nope'/);
});
