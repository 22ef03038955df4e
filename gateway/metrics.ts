import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { CLIENT_REFUSALS } from '../common/client-limits.js';
import { FastCounter, FastHistogram } from '../common/metrics.js';
import type { ShedScope } from './admission/concurrency.js';
import type { Refusal } from './admission/limiter.js';
import { SecurityMetrics } from './security-metrics.js';
import type { AttemptOutcome, RetryReason } from './upstream/forward.js';

/** Request and attempt latency: 0.5 ms to 30 s (the longest deadline a policy usually sets). */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30,
];

const RETRY_REASONS: readonly RetryReason[] = ['network_error', 'overloaded', 'timeout'];
const SHED_SCOPES: readonly ShedScope[] = ['gateway', 'model'];
const SHED_REASONS: readonly Refusal[] = ['queue_full', 'queue_timeout'];

/** What the gauges read at scrape time. */
export interface UpstreamSample {
  backend: string;
  endpoint: string;
  outstanding: number;
  /** Takes traffic now (healthy, not ejected, breaker not open, not backing off). */
  available: boolean;
  breaker: 'closed' | 'open' | 'half_open';
}

export interface VariantSeries {
  request(code: number, seconds: number): void;
}
export interface EndpointSeries {
  attempt(outcome: AttemptOutcome, seconds: number): void;
}

/** The gateway's Prometheus metrics, served on the admin port; a registry per gateway instance. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: FastCounter<'model' | 'variant' | 'code'>;
  readonly duration: FastHistogram<'model' | 'variant'>;
  readonly upstreamAttempts: FastCounter<'backend' | 'endpoint' | 'outcome'>;
  readonly upstreamDuration: FastHistogram<'backend' | 'endpoint'>;
  readonly retries: Counter<'model' | 'reason'>;
  readonly retriesDenied: Counter<'model'>;
  readonly reloads: Counter<'result'>;
  readonly policyInfo: Gauge<'sha256'>;
  readonly policyLoaded: Gauge;
  /** The store version of the policy in force (fleet mode; 0 with a policy file). */
  readonly policyVersion: Gauge;
  /** Fleet mode only: whether the gateway reaches Redis now (1) or not (0). */
  readonly redisUp: Gauge | undefined;
  readonly ejections: Counter<'endpoint'>;
  readonly healthChecks: Counter<'endpoint' | 'result'>;
  readonly shed: Counter<'model' | 'scope' | 'reason'>;
  /** Batch requests (`x-infergate-priority: batch`) refused by the batch share. */
  readonly batchShed: Counter<'model'>;
  /** Clients refused before routing: parser refusals, slow clients, the connection cap. */
  readonly clientRefusals: Counter<'reason'>;
  readonly security: SecurityMetrics;

  constructor(opts: {
    processMetrics: boolean;
    sample: () => readonly UpstreamSample[];
    redisUp?: () => boolean;
  }) {
    const registers = [this.registry];
    this.requests = new FastCounter(
      'infergate_requests_total',
      'Requests answered on the ingress, by logical model, variant and HTTP status code.',
      ['model', 'variant', 'code'],
      this.registry,
    );
    this.duration = new FastHistogram(
      'infergate_request_duration_seconds',
      'Time from a request reaching the gateway to its answer, retries included.',
      ['model', 'variant'],
      LATENCY_BUCKETS,
      this.registry,
    );
    this.upstreamAttempts = new FastCounter(
      'infergate_upstream_attempts_total',
      'Attempts sent to backend endpoints, by outcome (ok, client_error, server_error, overloaded, network_error, timeout, circuit_open).',
      ['backend', 'endpoint', 'outcome'],
      this.registry,
    );
    this.upstreamDuration = new FastHistogram(
      'infergate_upstream_attempt_duration_seconds',
      'Time of one attempt at a backend endpoint.',
      ['backend', 'endpoint'],
      LATENCY_BUCKETS,
      this.registry,
    );
    this.retries = new Counter({
      name: 'infergate_retries_total',
      help: 'Retries sent, by logical model and reason (network_error, overloaded).',
      labelNames: ['model', 'reason'],
      registers,
    });
    this.retriesDenied = new Counter({
      name: 'infergate_retry_budget_exhausted_total',
      help: 'Retries not sent because the retry budget was spent.',
      labelNames: ['model'],
      registers,
    });
    this.reloads = new Counter({
      name: 'infergate_policy_reloads_total',
      help: 'Policy loads by result: applied, or rejected (the last good policy keeps serving).',
      labelNames: ['result'],
      registers,
    });
    this.policyInfo = new Gauge({
      name: 'infergate_policy_info',
      help: 'The policy in force (1), labelled with the sha256 of its canonical form.',
      labelNames: ['sha256'],
      registers,
    });
    this.policyLoaded = new Gauge({
      name: 'infergate_policy_last_applied_timestamp_seconds',
      help: 'Unix time when the policy in force was applied.',
      registers,
    });
    this.policyVersion = new Gauge({
      name: 'infergate_policy_version',
      help: 'The store version of the policy in force (fleet mode; 0 with a policy file).',
      registers,
    });
    const redisUp = opts.redisUp;
    this.redisUp =
      redisUp === undefined
        ? undefined
        : new Gauge({
            name: 'infergate_redis_up',
            help: 'Whether the gateway reaches its Redis now (1) or not (0); it serves its last good policy meanwhile.',
            registers,
            collect() {
              this.set(redisUp() ? 1 : 0);
            },
          });
    this.ejections = new Counter({
      name: 'infergate_upstream_ejections_total',
      help: 'Passive ejections of an endpoint after consecutive failures.',
      labelNames: ['endpoint'],
      registers,
    });
    this.healthChecks = new Counter({
      name: 'infergate_upstream_health_checks_total',
      help: 'Active health checks of an endpoint by result (pass, fail).',
      labelNames: ['endpoint', 'result'],
      registers,
    });
    this.shed = new Counter({
      name: 'infergate_shed_total',
      help: 'Requests refused by load shedding, by model, scope (gateway, model) and reason (queue_full, queue_timeout).',
      labelNames: ['model', 'scope', 'reason'],
      registers,
    });
    this.batchShed = new Counter({
      name: 'infergate_batch_shed_total',
      help: "Batch requests (x-infergate-priority: batch) refused, by model: beyond the model's batch share, or while online requests want the slots.",
      labelNames: ['model'],
      registers,
    });
    this.clientRefusals = new Counter({
      name: 'infergate_client_refusals_total',
      help: 'Clients refused before any route: bad_request (the HTTP parser), headers_too_large, timeout (headers or request too slow), connection_limit (closed at accept), tls_handshake (a failed TLS handshake).',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of CLIENT_REFUSALS) this.clientRefusals.inc({ reason }, 0);
    this.security = new SecurityMetrics(this.registry);
    const sample = opts.sample;
    new Gauge({
      name: 'infergate_upstream_available',
      help: 'Whether an endpoint takes traffic now (1) or is out: unhealthy, ejected, breaker open, backing off (0).',
      labelNames: ['backend', 'endpoint'],
      registers,
      collect() {
        this.reset();
        for (const s of sample()) this.set({ backend: s.backend, endpoint: s.endpoint }, s.available ? 1 : 0);
      },
    });
    new Gauge({
      name: 'infergate_circuit_open',
      help: "Whether an endpoint's circuit breaker is open (1), half-open (0.5) or closed (0).",
      labelNames: ['backend', 'endpoint'],
      registers,
      collect() {
        this.reset();
        for (const s of sample()) {
          this.set(
            { backend: s.backend, endpoint: s.endpoint },
            s.breaker === 'open' ? 1 : s.breaker === 'half_open' ? 0.5 : 0,
          );
        }
      },
    });
    new Gauge({
      name: 'infergate_upstream_outstanding_requests',
      help: 'Requests sent to a backend endpoint and not yet answered.',
      labelNames: ['backend', 'endpoint'],
      registers,
      collect() {
        this.reset();
        for (const s of sample()) this.set({ backend: s.backend, endpoint: s.endpoint }, s.outstanding);
      },
    });
    // The two results are always exported, so that a rate() over them starts at zero.
    this.reloads.inc({ result: 'applied' }, 0);
    this.reloads.inc({ result: 'rejected' }, 0);
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'infergate_' });
  }

  /** The series of one (model, variant), looked up once: a request costs two map lookups. */
  forVariant(model: string, variant: string): VariantSeries {
    const duration = this.duration.labels({ model, variant });
    const byCode = new Map<number, { inc(): void }>();
    const requests = this.requests;
    return {
      request(code: number, seconds: number) {
        let c = byCode.get(code);
        if (c === undefined) {
          c = requests.labels({ model, variant, code: String(code) });
          byCode.set(code, c);
        }
        c.inc();
        duration.observe(seconds);
      },
    };
  }

  /** The series of one (backend, endpoint), looked up once. */
  forEndpoint(backend: string, endpoint: string): EndpointSeries {
    const duration = this.upstreamDuration.labels({ backend, endpoint });
    const byOutcome = new Map<AttemptOutcome, { inc(): void }>();
    const attempts = this.upstreamAttempts;
    return {
      attempt(outcome: AttemptOutcome, seconds: number) {
        let c = byOutcome.get(outcome);
        if (c === undefined) {
          c = attempts.labels({ backend, endpoint, outcome });
          byOutcome.set(outcome, c);
        }
        c.inc();
        duration.observe(seconds);
      },
    };
  }

  /** A request with no variant (unknown model, refused before routing); rare, not cached. */
  request(model: string, variant: string, code: number, seconds: number): void {
    this.requests.labels({ model, variant, code: String(code) }).inc();
    if (variant !== '') this.duration.labels({ model, variant }).observe(seconds);
  }

  /** Drops the series of a logical model that left the policy. */
  forgetModel(model: string): void {
    this.requests.remove({ model });
    this.duration.remove({ model });
    for (const reason of RETRY_REASONS) this.retries.remove({ model, reason });
    this.retriesDenied.remove({ model });
    for (const scope of SHED_SCOPES)
      for (const reason of SHED_REASONS) this.shed.remove({ model, scope, reason });
    this.batchShed.remove({ model });
    this.security.rateLimited.remove({ model });
  }

  /** Drops the attempt series of a backend that left the policy. */
  forgetBackend(backend: string): void {
    this.upstreamAttempts.remove({ backend });
    this.upstreamDuration.remove({ backend });
  }

  /** Drops the series of an endpoint that left the policy. */
  forgetEndpoint(endpoint: string): void {
    this.upstreamAttempts.remove({ endpoint });
    this.upstreamDuration.remove({ endpoint });
    this.ejections.remove({ endpoint });
    for (const result of ['pass', 'fail']) this.healthChecks.remove({ endpoint, result });
  }

  policyApplied(sha256: string, unixSeconds: number, version = 0): void {
    this.policyInfo.reset();
    this.policyInfo.set({ sha256 }, 1);
    this.policyLoaded.set(unixSeconds);
    this.policyVersion.set(version);
    this.reloads.inc({ result: 'applied' });
  }
}
