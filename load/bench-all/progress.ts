/**
 * bench-all's progress display, on stderr: a line per benchmark as it starts and ends, and the
 * benchmark's own output (which its CLI prints on stdout) passed to stderr meanwhile, so that
 * stdout carries the final table alone.
 */

export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Runs `fn` with process.stdout.write sent to stderr. */
export async function stdoutToStderr<T>(fn: () => Promise<T>): Promise<T> {
  const write = process.stdout.write;
  process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;
  try {
    return await fn();
  } finally {
    process.stdout.write = write;
  }
}

/** "[3/7] fleet: ..." before, "[3/7] fleet done in 42 s" after. */
export async function step<T>(
  index: number,
  total: number,
  name: string,
  title: string,
  fn: () => Promise<T>,
): Promise<T> {
  const t0 = performance.now();
  log(`\n[${index}/${total}] ${name}: ${title}`);
  const out = await stdoutToStderr(fn);
  log(`[${index}/${total}] ${name} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return out;
}
