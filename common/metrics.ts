/**
 * Counters and histograms for hot paths, shared by both tiers: prom-client's exposition (they are
 * registered in a prom-client Registry, which renders them as it renders its own), but an update
 * costs a map lookup, where prom-client validates and hashes the labels on every `inc`/`observe`.
 */
import type { Metric, Registry } from 'prom-client';

type Labels<L extends string> = Readonly<Record<L, string>>;

interface SeriesValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName?: string;
  exemplar?: null | undefined;
}

interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: SeriesValue[];
  aggregator: 'sum';
}

function checkLabels(metric: string, names: readonly string[], labels: Record<string, string>): string {
  for (const key in labels) {
    if (!names.includes(key)) throw new Error(`${metric}: label '${key}' is not one of ${names.join(', ')}`);
  }
  // The series key: the values in label-name order (values may hold any character, so JSON).
  return JSON.stringify(names.map((n) => labels[n] ?? ''));
}

function removeMatching<L extends string>(
  series: Map<string, { labels: Labels<L> }>,
  match: Partial<Labels<L>>,
): void {
  const keys = Object.keys(match) as L[];
  for (const [key, s] of series) {
    if (keys.every((k) => s.labels[k] === match[k])) series.delete(key);
  }
}

/**
 * A counter with prom-client's exposition (registered in a prom-client Registry, which renders
 * it as it renders prom-client's Counter), but an increment costs one map lookup: prom-client
 * validates and hashes the labels on every `inc`, which showed in the profile of small models.
 */
export class FastCounter<L extends string> {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private series = new Map<string, { value: number; labels: Labels<L> }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** A handle for one label set; the series appears at its first increment, as with prom-client. */
  labels(labels: Labels<L>): { inc(value?: number): void } {
    const key = checkLabels(this.name, this.labelNames, labels);
    return {
      inc: (value = 1) => {
        if (!Number.isFinite(value) || value < 0) throw new Error(`${this.name}: bad increment ${value}`);
        const s = this.series.get(key);
        if (s === undefined) this.series.set(key, { value, labels });
        else s.value += value;
      },
    };
  }

  reset(): void {
    this.series = new Map();
  }

  /** Drops every series whose labels include these (a model or an endpoint that left). */
  remove(match: Partial<Labels<L>>): void {
    removeMatching(this.series, match);
  }

  async get(): Promise<MetricData> {
    return {
      help: this.help,
      name: this.name,
      type: this.type,
      values: [...this.series.values()].map((s) => ({ value: s.value, labels: s.labels })),
      aggregator: this.aggregator,
    } as MetricData;
  }
}

interface HistogramSeries<L extends string> {
  labels: Labels<L>;
  /** Observations per bucket (not cumulative); past the last bound only `count` grows. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram with prom-client's exposition (cumulative `_bucket` lines with `le`, then `+Inf`,
 * `_sum` and `_count`, series in the order of their first observation), whose `observe` costs a
 * map lookup and a bucket search. See FastCounter for why.
 */
export class FastHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private series = new Map<string, HistogramSeries<L>>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** A handle for one label set; the series appears at its first observation, as with prom-client. */
  labels(labels: Labels<L>): { observe(value: number): void } {
    const key = checkLabels(this.name, this.labelNames, labels);
    return {
      observe: (value: number) => {
        if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
        let s = this.series.get(key);
        if (s === undefined) {
          s = { labels, counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
          this.series.set(key, s);
        }
        const bounds = this.buckets;
        for (let i = 0; i < bounds.length; i++) {
          if (value <= bounds[i]!) {
            s.counts[i]!++;
            break;
          }
        }
        s.sum += value;
        s.count += 1;
      },
    };
  }

  reset(): void {
    this.series = new Map();
  }

  /** Drops every series whose labels include these (a model or an endpoint that left). */
  remove(match: Partial<Labels<L>>): void {
    removeMatching(this.series, match);
  }

  /** The shape prom-client's Histogram gives the registry for the text exposition. */
  async getForPromString(): Promise<MetricData> {
    const values: SeriesValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      const shared = s.labels as Record<string, string>;
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i]!;
        values.push({
          labels: { le: this.buckets[i]! },
          sharedLabels: shared,
          value: acc,
          metricName: bucketName,
          exemplar: null,
        });
      }
      values.push(
        {
          labels: { le: '+Inf' },
          sharedLabels: shared,
          value: s.count,
          metricName: bucketName,
          exemplar: null,
        },
        {
          labels: {},
          sharedLabels: shared,
          value: s.sum,
          metricName: `${this.name}_sum`,
          exemplar: undefined,
        },
        {
          labels: {},
          sharedLabels: shared,
          value: s.count,
          metricName: `${this.name}_count`,
          exemplar: undefined,
        },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** As prom-client's Histogram.get: the series labels merged into each value's labels. */
  async get(): Promise<MetricData> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ sharedLabels, labels, ...rest }) => ({
      ...rest,
      labels: { ...labels, ...sharedLabels },
    }));
    return data;
  }
}
