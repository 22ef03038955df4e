import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's own package.json: the nearest one above this file, whether it runs from the
 * sources (common/) or from the compiled output (dist/common/).
 */
function packageJson(): { version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) return JSON.parse(readFileSync(candidate, 'utf8')) as { version: string };
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json of infergate not found');
    dir = parent;
  }
}

/** The package version, reported by `GET /v2` and `infergate --version`. */
export const PRODUCT_VERSION: string = packageJson().version;
