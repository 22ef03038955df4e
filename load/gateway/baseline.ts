/**
 * `--baseline REF`: a git worktree of REF in a temporary folder, sharing this checkout's
 * node_modules by a symlink, so that a second gateway can start from REF's own CLI. The worktree
 * is removed at the end, on SIGINT/SIGTERM, and as a last resort on exit.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { root } from '../common.js';
import { onCleanup } from './processes.js';

const run = promisify(execFile);

async function git(args: string[], cwd = root): Promise<string> {
  return (await run('git', args, { cwd, maxBuffer: 1 << 20 })).stdout.trim();
}

export interface Worktree {
  dir: string;
  /** The commit REF named. */
  commit: string;
  /** The CLI entry of that commit. */
  cli: string;
}

/** Checks out REF (detached) in a new worktree and registers its removal. */
export async function baselineWorktree(ref: string): Promise<Worktree> {
  let commit: string;
  try {
    commit = await git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  } catch {
    throw new Error(`--baseline: '${ref}' names no commit in ${root}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'infergate-baseline-'));
  await git(['worktree', 'add', '--detach', dir, commit]);
  let removed = false;
  const removeSync = () => {
    if (removed) return;
    removed = true;
    try {
      execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: root, stdio: 'ignore' });
    } catch {
      // already gone; prune below forgets it
    }
    try {
      execFileSync('git', ['worktree', 'prune'], { cwd: root, stdio: 'ignore' });
    } catch {
      // nothing to prune
    }
  };
  onCleanup({
    name: 'baseline worktree',
    pids: () => [],
    stop: async () => removeSync(),
    lastResort: removeSync,
  });
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const cli = join(dir, 'bin', 'infergate.js');
  if (!existsSync(cli)) throw new Error(`--baseline: ${ref} has no bin/infergate.js`);
  return { dir, commit, cli };
}

/**
 * Where this checkout's product code differs from `commit` (committed or not), as a note for the
 * report: an A/A run (`--baseline HEAD`) is only A/A when this is empty.
 */
export async function differsFrom(commit: string): Promise<string[]> {
  const out = await git([
    'diff',
    '--name-only',
    commit,
    '--',
    'gateway',
    'common',
    'cli',
    'bin',
    'package.json',
  ]);
  return out === '' ? [] : out.split('\n');
}
