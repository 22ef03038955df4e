import { createRequire } from 'node:module';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

/** The package version, reported by `GET /v2` and `infergate --version`. */
export const PRODUCT_VERSION: string = pkg.version;
