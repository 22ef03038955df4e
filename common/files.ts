/** Files that may not be there yet: a missing one is not an error, anything else is. */
import { readFile } from 'node:fs/promises';

/** The file's bytes, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The file as UTF-8 text, or undefined when it does not exist. */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  return (await readIfExists(path))?.toString('utf8');
}
