/**
 * The model repository on disk: `<root>/<model>/<version>/model.onnx`, with an optional
 * `<root>/<model>/config.yaml`. Model names and version numbers, the directories of each, and a
 * startup selection (`--models`) checked against them.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** One entry of a startup selection: every version of a model, or one version of it. */
export interface ModelSelector {
  name: string;
  /** A version directory's name; undefined selects every version. */
  version?: string | undefined;
}

/** A startup selection that names a model or version the repository does not have. */
export class ModelSelectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSelectionError';
  }
}

/** What one model loads at startup: every version (undefined), or only these. */
export interface StartupLoad {
  name: string;
  versions: readonly string[] | undefined;
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const VERSION = /^[1-9][0-9]{0,8}$/;

export function isModelName(s: string): boolean {
  return MODEL_NAME.test(s);
}

/** A version directory's name: a positive integer without leading zeros. */
export function isVersion(s: string): boolean {
  return VERSION.test(s);
}

export async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Model directories under `root` (whether loaded or not), sorted. */
export async function modelDirs(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && isModelName(e.name))
    .map((e) => e.name)
    .sort();
}

/** Version directories of a model, in numeric order. */
export async function versionDirs(root: string, name: string): Promise<string[]> {
  return (await readdir(join(root, name), { withFileTypes: true }))
    .filter((e) => e.isDirectory() && VERSION.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => Number(a) - Number(b));
}

function selectorText(s: ModelSelector): string {
  return s.version === undefined ? s.name : `${s.name}:${s.version}`;
}

/**
 * What to load at startup: every model under `root`, or `selection` checked against the disk.
 * Throws ModelSelectionError naming every entry whose model or version is not there.
 */
export async function startupLoads(
  root: string,
  selection: readonly ModelSelector[] | undefined,
): Promise<StartupLoad[]> {
  const names = await modelDirs(root);
  if (selection === undefined) return names.map((name) => ({ name, versions: undefined }));
  const wanted = new Map<string, Set<string> | 'all'>();
  const problems: string[] = [];
  for (const sel of selection) {
    const entry = `'${selectorText(sel).slice(0, 160)}'`;
    if (!isModelName(sel.name) || !names.includes(sel.name)) {
      problems.push(`entry ${entry}: no model '${sel.name.slice(0, 128)}' in the model repository`);
      continue;
    }
    if (sel.version === undefined) {
      wanted.set(sel.name, 'all');
      continue;
    }
    const versions = await versionDirs(root, sel.name);
    if (!versions.includes(sel.version)) {
      problems.push(
        `entry ${entry}: model '${sel.name}' has no version '${sel.version.slice(0, 32)}' (versions: ${versions.join(', ') || 'none'})`,
      );
      continue;
    }
    const prev = wanted.get(sel.name);
    if (prev === 'all') continue;
    if (prev === undefined) wanted.set(sel.name, new Set([sel.version]));
    else prev.add(sel.version);
  }
  if (problems.length > 0) throw new ModelSelectionError(problems.join('; '));
  return names
    .filter((name) => wanted.has(name))
    .map((name) => {
      const w = wanted.get(name)!;
      return { name, versions: w === 'all' ? undefined : [...w].sort((a, b) => Number(a) - Number(b)) };
    });
}
