import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../common/metrics.js';

/** What the gauges read at scrape time. */
export interface ModelGaugeSample {
  model: string;
  version: string;
  provider: string;
  state: string;
  queueDepth: number;
}

/** Request and attempt latency: 0.5 ms to 30 s (the longest deadline a policy usually sets). */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30,
];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** The backend's Prometheus metrics, in a registry of its own (one per server instance). */
export class BackendMetrics {
  readonly registry = new Registry();
  readonly requests: FastCounter<'model' | 'version' | 'code'>;
  readonly requestDuration: FastHistogram<'model' | 'version'>;
  readonly queueWait: FastHistogram<'model' | 'version'>;
  readonly compute: FastHistogram<'model' | 'version'>;
  readonly batchSize: FastHistogram<'model' | 'version'>;
  readonly queueDepth: Gauge<'model' | 'version'>;
  readonly modelInfo: Gauge<'model' | 'version' | 'provider' | 'state'>;

  constructor(opts: { processMetrics: boolean; sample: () => readonly ModelGaugeSample[] }) {
    const registers = [this.registry];
    const byModel = ['model', 'version'] as const;
    this.requests = new FastCounter(
      'infergate_backend_requests_total',
      'Inference requests answered, by model, version and HTTP status code.',
      ['model', 'version', 'code'],
      this.registry,
    );
    this.requestDuration = new FastHistogram(
      'infergate_backend_request_duration_seconds',
      'Time from a decoded inference request to its encoded answer.',
      byModel,
      LATENCY_BUCKETS,
      this.registry,
    );
    this.queueWait = new FastHistogram(
      'infergate_backend_queue_wait_seconds',
      'Time a request waited in the batching queue before its batch started.',
      byModel,
      LATENCY_BUCKETS,
      this.registry,
    );
    this.compute = new FastHistogram(
      'infergate_backend_compute_seconds',
      'onnxruntime session.run time per batch.',
      byModel,
      LATENCY_BUCKETS,
      this.registry,
    );
    this.batchSize = new FastHistogram(
      'infergate_backend_batch_size',
      'Rows (dim 0) per batch run by onnxruntime.',
      byModel,
      BATCH_BUCKETS,
      this.registry,
    );
    this.queueDepth = new Gauge({
      name: 'infergate_backend_queue_depth',
      help: 'Requests waiting in the batching queue.',
      labelNames: ['model', 'version'],
      registers,
      collect() {
        this.reset();
        for (const m of opts.sample()) this.set({ model: m.model, version: m.version }, m.queueDepth);
      },
    });
    this.modelInfo = new Gauge({
      name: 'infergate_backend_model_info',
      help: 'One series per model version in the repository: execution provider and state (1 = this state now).',
      labelNames: ['model', 'version', 'provider', 'state'],
      registers,
      collect() {
        this.reset();
        for (const m of opts.sample())
          this.set({ model: m.model, version: m.version, provider: m.provider, state: m.state }, 1);
      },
    });
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'infergate_backend_' });
  }
}
