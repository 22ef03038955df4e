import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the gauges read at scrape time. */
export interface ModelGaugeSample {
  model: string;
  version: string;
  provider: string;
  state: string;
  queueDepth: number;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** The backend's Prometheus metrics, in a registry of its own (one per server instance). */
export class BackendMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'model' | 'version' | 'code'>;
  readonly requestDuration: Histogram<'model' | 'version'>;
  readonly queueWait: Histogram<'model' | 'version'>;
  readonly compute: Histogram<'model' | 'version'>;
  readonly batchSize: Histogram<'model' | 'version'>;
  readonly queueDepth: Gauge<'model' | 'version'>;
  readonly modelInfo: Gauge<'model' | 'version' | 'provider' | 'state'>;

  constructor(opts: { processMetrics: boolean; sample: () => readonly ModelGaugeSample[] }) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'infergate_backend_requests_total',
      help: 'Inference requests answered, by model, version and HTTP status code.',
      labelNames: ['model', 'version', 'code'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'infergate_backend_request_duration_seconds',
      help: 'Time from a decoded inference request to its encoded answer.',
      labelNames: ['model', 'version'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.queueWait = new Histogram({
      name: 'infergate_backend_queue_wait_seconds',
      help: 'Time a request waited in the batching queue before its batch started.',
      labelNames: ['model', 'version'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.compute = new Histogram({
      name: 'infergate_backend_compute_seconds',
      help: 'onnxruntime session.run time per batch.',
      labelNames: ['model', 'version'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.batchSize = new Histogram({
      name: 'infergate_backend_batch_size',
      help: 'Rows (dim 0) per batch run by onnxruntime.',
      labelNames: ['model', 'version'],
      buckets: BATCH_BUCKETS,
      registers,
    });
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
