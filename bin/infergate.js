#!/usr/bin/env node
// The `infergate` command. In a checkout the sources are TypeScript, run through tsx's loader.
// Where only the compiled output ships (the container image: dist/ from `npm run build`, no cli/
// sources beside it), that runs, with no loader and no transpiling at start.
import { existsSync } from 'node:fs';

const sources = new URL('../cli/main.ts', import.meta.url);
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
