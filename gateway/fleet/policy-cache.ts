/**
 * `--policy-cache FILE`: the last good policy version on disk, so that a gateway restarted while
 * Redis is down serves it (and says so) instead of failing to start. Written atomically (a
 * temporary file renamed over the old one), so a crash mid-write never leaves half a policy.
 */
import { rename, writeFile } from 'node:fs/promises';
import { readTextIfExists } from '../../common/files.js';

export interface CachedPolicy {
  readonly version: number;
  readonly sha256: string;
  /** Unix time in ms of the write. */
  readonly savedAt: number;
  readonly source: string;
}

export async function writePolicyCache(path: string, entry: CachedPolicy): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

/** The cached policy, undefined when the file is missing; an error when it is not a cache file. */
export async function readPolicyCache(path: string): Promise<CachedPolicy | undefined> {
  const text = await readTextIfExists(path);
  if (text === undefined) return undefined;
  let parsed: Partial<CachedPolicy>;
  try {
    parsed = JSON.parse(text) as Partial<CachedPolicy>;
  } catch {
    throw new Error(`${path} is not a policy cache (not JSON)`);
  }
  if (
    typeof parsed.source !== 'string' ||
    typeof parsed.version !== 'number' ||
    typeof parsed.sha256 !== 'string' ||
    typeof parsed.savedAt !== 'number'
  ) {
    throw new Error(`${path} is not a policy cache (version, sha256, savedAt, source expected)`);
  }
  return parsed as CachedPolicy;
}
