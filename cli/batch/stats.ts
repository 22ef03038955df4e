/**
 * What `infergate batch` counts: lines answered, errors by code and answers by variant (kept in
 * the checkpoint, so a resumed job's summary covers the whole job), and this run's latencies in a
 * fixed log-scale histogram (memory does not grow with the file).
 */
export interface Counts {
  /** Lines answered in the output (answers and errors). */
  lines: number;
  ok: number;
  errors: Record<string, number>;
  variants: Record<string, number>;
}

export function emptyCounts(): Counts {
  return { lines: 0, ok: 0, errors: {}, variants: {} };
}

export function copyCounts(c: Counts): Counts {
  return { lines: c.lines, ok: c.ok, errors: { ...c.errors }, variants: { ...c.variants } };
}

export function errorCount(c: Counts): number {
  let n = 0;
  for (const v of Object.values(c.errors)) n += v;
  return n;
}

/** Buckets 5% apart from 10 µs to past 10 min. */
const RATIO = 1.05;
const FLOOR_MS = 0.01;
const BUCKETS = Math.ceil(Math.log(600_000 / FLOOR_MS) / Math.log(RATIO)) + 1;

export class LatencyHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  private total = 0;

  observe(ms: number): void {
    const i =
      ms <= FLOOR_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / FLOOR_MS) / Math.log(RATIO)));
    this.counts[i] = (this.counts[i] as number) + 1;
    this.total += 1;
  }

  get count(): number {
    return this.total;
  }

  /** The upper bound (ms) of the bucket holding quantile `q` (0..1); undefined with no samples. */
  quantile(q: number): number | undefined {
    if (this.total === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] as number;
      if (seen >= rank) return FLOOR_MS * RATIO ** i;
    }
    return FLOOR_MS * RATIO ** (BUCKETS - 1);
  }
}

export interface Summary {
  readonly complete: boolean;
  /** Why the run stopped before the end: `max-errors`, `signal`; undefined when it did not. */
  readonly stopped: string | undefined;
  readonly counts: Counts;
  /** This run: lines sent, seconds, latency of answered requests (ms). */
  readonly run: {
    readonly lines: number;
    readonly seconds: number;
    readonly linesPerSecond: number;
    readonly p50Ms: number | undefined;
    readonly p99Ms: number | undefined;
    readonly retries: number;
    readonly backpressure: number;
    /** CPU seconds of this process over the run. */
    readonly cpuSeconds: number;
  };
}

const ms = (v: number | undefined) => (v === undefined ? '-' : `${v.toFixed(v < 10 ? 2 : 1)} ms`);

export function formatSummary(s: Summary): string {
  const c = s.counts;
  const state = s.complete ? 'complete' : `stopped (${s.stopped ?? 'unfinished'})`;
  const lines = [
    `batch ${state}: ${c.lines} lines answered, ${c.ok} ok, ${errorCount(c)} errors`,
    `  this run: ${s.run.lines} lines in ${s.run.seconds.toFixed(1)} s (${s.run.linesPerSecond.toFixed(1)}/s), p50 ${ms(s.run.p50Ms)}, p99 ${ms(s.run.p99Ms)}, ${s.run.retries} retries, ${s.run.backpressure} back-pressure answers`,
  ];
  const errors = Object.entries(c.errors).sort((a, b) => b[1] - a[1]);
  if (errors.length > 0) lines.push(`  errors: ${errors.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const variants = Object.entries(c.variants).sort((a, b) => b[1] - a[1]);
  if (variants.length > 0) lines.push(`  variants: ${variants.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return lines.join('\n');
}
