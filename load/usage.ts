/**
 * Imported first by each benchmark command: a bad option (one parseArgs refuses, or a check that
 * names its flag) ends the command with its message and exit 2, not a stack trace. Any other
 * error is printed whole, exit 1, as node does.
 */
import { basename } from 'node:path';

const command = basename(process.argv[1] ?? 'bench', '.ts');

function isUsage(e: unknown): e is Error {
  if (!(e instanceof Error)) return false;
  const code = (e as NodeJS.ErrnoException).code;
  return (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) || e.message.startsWith('--');
}

process.on('uncaughtException', (err: unknown) => {
  if (isUsage(err)) {
    process.stderr.write(
      `${command}: ${err.message}\n(its options: the comment at the top of load/${command}.ts, and docs/benchmarks.md)\n`,
    );
    process.exit(2);
  }
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
