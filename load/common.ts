/**
 * Pure helpers shared by both benchmarks: order statistics, the turn order of targets that take
 * turns, and the JSON result files under load/results/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dispatcher, Pool } from 'undici';

/** The repository's root (this file lives in load/). */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const sleep = (ms: number) => new Promise<void>((ok) => setTimeout(ok, ms));

/** The median of the finite values; NaN when there are none. */
export function median(xs: readonly number[]): number {
  const sorted = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The nearest-rank percentile `p` (0-100) of values sorted ascending; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface LatencyStats {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export function latencyStats(latencies: readonly number[]): LatencyStats {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
  };
}

/**
 * The order in which `items` take their turn in slice `slice`: slices come in pairs, the second
 * of a pair the first reversed, so over any even number of slices each of any two items goes
 * first equally often; each pair starts one item further on, so the first place rotates too.
 */
export function turnOrder<T>(items: readonly T[], slice: number): T[] {
  const n = items.length;
  if (n === 0) return [];
  const shift = Math.floor(slice / 2) % n;
  const rotated = [...items.slice(shift), ...items.slice(0, shift)];
  return slice % 2 === 1 ? rotated.reverse() : rotated;
}

/** The smallest and largest finite values, for "median (min-max)". */
export function spread(xs: readonly number[]): { min: number; max: number } {
  const finite = xs.filter((x) => Number.isFinite(x));
  return { min: Math.min(...finite), max: Math.max(...finite) };
}

export function machine(): { cpu: string | undefined; cores: number; node: string } {
  return { cpu: cpus()[0]?.model, cores: availableParallelism(), node: process.version };
}

/** Writes `data` as load/results/FILE and says so. */
export async function writeResult(file: string, data: unknown): Promise<void> {
  await mkdir(join(root, 'load', 'results'), { recursive: true });
  await writeFile(join(root, 'load', 'results', file), `${JSON.stringify(data, null, 2)}\n`);
  process.stdout.write(`wrote load/results/${file}\n`);
}

/** The `simple` model's request body, as both benchmarks send it (210 bytes). */
export const simpleBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
  ],
});

/** An answer of the shape of `simple`'s, for the servers that stand in for a backend. */
export const simpleAnswer = JSON.stringify({
  model_name: 'simple',
  model_version: '1',
  outputs: [
    { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => 2 * i) },
    { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16], data: new Array(16).fill(0) },
  ],
});

/**
 * The headers every benchmark client sends: the content type, and with `bench:gateway --security`
 * the API key (to every target alike, so that each parses the same request).
 */
export const clientHeaders: Record<string, string> = { 'content-type': 'application/json' };

/** One POST of `simple`'s body on `pool`. */
export function postSimple(pool: Pool, path: string): Promise<Dispatcher.ResponseData> {
  return pool.request({ path, method: 'POST', headers: clientHeaders, body: simpleBody });
}
