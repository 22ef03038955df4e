/**
 * The gateway: one ingress URL for every model of the policy. Requests are routed by the pure
 * router, forwarded as bytes to an endpoint picked by P2C, with a deadline and budgeted retries.
 * The admin app (metrics, policy, upstreams) listens on its own port.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { type Clock, systemClock } from '../common/clock.js';
import { ApiError } from '../common/errors.js';
import { fastifyApiError } from '../common/fastify-errors.js';
import { healthRoutes, sendApiError, sharedServerOptions } from '../common/http.js';
import { type Logger, silentLogger } from '../common/logging.js';
import { GW_ERRORS } from './errors.js';
import { type EndpointSeries, GatewayMetrics, type VariantSeries } from './metrics.js';
import {
  type CompiledModel,
  type CompiledPolicy,
  type CompiledVariant,
  formatIssue,
  type PolicyIssue,
} from './policy/compile.js';
import { PolicyRuntime } from './policy/runtime.js';
import type { PolicySource } from './policy/source.js';
import { type RandomSource, type RouteDecision, route } from './router.js';
import { type Endpoint, type EndpointPoolOptions, EndpointRegistry } from './upstream/endpoint.js';
import { type Cancellation, type ForwardContext, type ForwardResult, forward } from './upstream/forward.js';
import { ConcurrencyLimiter, type Refusal } from './upstream/limiter.js';
import { RetryBudget } from './upstream/retry-budget.js';

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;

export interface GatewayOptions {
  policySource: PolicySource;
  /** Largest request body in bytes (413 beyond it). */
  bodyLimit?: number;
  logger?: Logger;
  clock?: Clock;
  random?: RandomSource;
  /** Default process metrics; off in tests that run several gateways in one process. */
  processMetrics?: boolean;
  pools?: EndpointPoolOptions;
  /**
   * On shutdown, how long to keep serving (readiness false, every answer with Connection: close)
   * before the listener closes, so that load balancers and clients move away first.
   */
  drainDelayMs?: number;
  /** Told of every policy applied or rejected (after the gateway's own handling). */
  onPolicyEvent?: (event: PolicyEvent) => void;
}

export type PolicyEvent =
  | { readonly type: 'applied'; readonly sha256: string; readonly origin: string }
  | { readonly type: 'rejected'; readonly errors: readonly PolicyIssue[]; readonly origin: string };

export interface Gateway {
  app: FastifyInstance;
  admin: FastifyInstance;
  metrics: GatewayMetrics;
  policy: PolicyRuntime;
  /** The snapshot in force: the compiled policy and its endpoints. */
  readonly snapshot: Snapshot;
  /** Readiness false, let in-flight requests finish, close upstream pools. */
  shutdown(): Promise<void>;
  readonly draining: boolean;
}

/** What a request takes once and keeps to its end, whatever reloads happen meanwhile. */
export interface Snapshot {
  readonly policy: CompiledPolicy;
  /** Endpoints of each backend, by backend name. */
  readonly endpoints: ReadonlyMap<string, readonly Endpoint[]>;
  readonly appliedAt: number;
}

interface ModelParams {
  model: string;
  version?: string;
}

/** Request headers passed on to the backend; everything else stays at the gateway. */
const FORWARDED_REQUEST_HEADERS = [
  'content-type',
  'inference-header-content-length',
  'accept',
  'traceparent',
  'tracestate',
] as const;
/** Response headers passed back to the client. */
const FORWARDED_RESPONSE_HEADERS = [
  'content-type',
  'inference-header-content-length',
  'retry-after',
] as const;

export async function buildGateway(opts: GatewayOptions): Promise<Gateway> {
  const logger = opts.logger ?? silentLogger();
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  let draining = false;
  let snapshot: Snapshot | undefined;

  const metrics = new GatewayMetrics({
    processMetrics: opts.processMetrics ?? true,
    sample: () => {
      if (snapshot === undefined) return [];
      const now = clock.now();
      const out = [];
      for (const [backend, endpoints] of snapshot.endpoints) {
        for (const e of endpoints) {
          out.push({
            backend,
            endpoint: e.origin,
            outstanding: e.outstanding,
            available: e.available(now),
            breaker: e.breakerState,
          });
        }
      }
      return out;
    },
  });
  const registry = new EndpointRegistry(
    clock,
    {
      onEjected: (e, forMs) => {
        metrics.ejections.inc({ endpoint: e.origin });
        logger.warn({ endpoint: e.origin, forMs }, 'endpoint ejected after consecutive failures');
      },
      onHealthChange: (e, healthy, reason) =>
        logger.warn(
          { endpoint: e.origin, healthy, reason },
          healthy ? 'endpoint healthy' : 'endpoint unhealthy',
        ),
      onBreaker: (e, state) => logger.warn({ endpoint: e.origin, state }, `circuit ${state}`),
      onHealthCheck: (e, ok) =>
        metrics.healthChecks.inc({ endpoint: e.origin, result: ok ? 'pass' : 'fail' }),
    },
    opts.pools,
  );
  // Load shedding: gateway-wide and per logical model, kept across reloads (limits updated).
  let gatewayLimiter: ConcurrencyLimiter | undefined;
  const modelLimiters = new Map<string, ConcurrencyLimiter>();

  const apply = (policy: CompiledPolicy, origin: string) => {
    // Endpoints a reload drops stay usable for requests of the older snapshot for as long as one
    // can last: its longest deadline plus the longest wait for a concurrency slot.
    const previous = snapshot?.policy;
    let graceMs = 1000;
    if (previous !== undefined) {
      for (const m of previous.models.values()) {
        graceMs = Math.max(
          graceMs,
          m.timeoutMs + m.concurrency.queueTimeoutMs + previous.limits.queueTimeoutMs + 1000,
        );
      }
    }
    registry.sync(policy.backends.values(), graceMs);
    if (gatewayLimiter === undefined) gatewayLimiter = new ConcurrencyLimiter(policy.limits, clock);
    else gatewayLimiter.update(policy.limits);
    for (const m of policy.models.values()) {
      const l = modelLimiters.get(m.name);
      if (l === undefined) modelLimiters.set(m.name, new ConcurrencyLimiter(m.concurrency, clock));
      else l.update(m.concurrency);
    }
    const endpoints = new Map<string, readonly Endpoint[]>();
    for (const b of policy.backends.values()) {
      endpoints.set(b.name, Object.freeze(b.endpoints.map((e) => registry.get(e))));
    }
    snapshot = Object.freeze({ policy, endpoints, appliedAt: Date.now() });
    metrics.policyApplied(policy.sha256, Date.now() / 1000);
    logger.info({ origin, sha256: policy.sha256, models: [...policy.models.keys()] }, 'policy applied');
    for (const w of policy.warnings) logger.warn({ origin, path: w.path }, `policy: ${w.path}: ${w.message}`);
    opts.onPolicyEvent?.({ type: 'applied', sha256: policy.sha256, origin });
  };
  const policy = await PolicyRuntime.start(opts.policySource, {
    onApplied: apply,
    onRejected: (errors, origin) => {
      metrics.reloads.inc({ result: 'rejected' });
      logger.error(
        { origin, errors: errors.map(formatIssue) },
        'policy rejected; the last good policy keeps serving',
      );
      opts.onPolicyEvent?.({ type: 'rejected', errors, origin });
    },
    onSourceError: (err) => logger.error({ err }, 'policy source error'),
  });

  // One retry budget per logical model, kept across reloads.
  const budgets = new Map<string, RetryBudget>();
  const budgetFor = (model: string) => {
    let b = budgets.get(model);
    if (b === undefined) {
      b = new RetryBudget(clock);
      budgets.set(model, b);
    }
    return b;
  };

  /**
   * Headers of every answer on the model and error paths, set in the handlers themselves (an
   * onSend hook cost more per request than the rest of the reply).
   */
  const stamp = (reply: FastifyReply) => {
    reply.header('x-request-id', reply.request.id);
    // While draining, close each connection after its answer so clients reconnect elsewhere.
    if (draining) reply.header('connection', 'close');
  };

  const app = Fastify({
    // While draining, requests on open connections are still served (with Connection: close).
    ...sharedServerOptions(logger, bodyLimit),
    // No per-request child logger: the few lines the gateway logs carry reqId themselves.
    childLoggerFactory: (parent) => parent,
    // A URL fastify cannot decode gets the gateway's own error, like every other refusal.
    frameworkErrors: (error, _req, reply) => {
      stamp(reply);
      metrics.request('', '', 400, 0);
      sendApiError(
        reply,
        new ApiError(
          GW_ERRORS.GW_ERR_BAD_REQUEST,
          `the request cannot be routed: ${error.message.slice(0, 300)}`,
        ),
      );
    },
    routerOptions: { maxParamLength: 256 },
  });
  app.server.on('connection', (socket: ClientSocket) => {
    const inFlight = new Set<Cancellation>();
    socket[IN_FLIGHT] = inFlight;
    socket.once('close', () => {
      for (const c of inFlight) {
        c.cancelled = true;
        c.onCancel?.();
      }
      inFlight.clear();
    });
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    const api = toApiError(err, bodyLimit);
    if (api.code === GW_ERRORS.GW_ERR_INTERNAL.code)
      req.log.error({ err, reqId: req.id }, 'unexpected error');
    const model = req.routeOptions.url?.startsWith('/v2/models/') ? knownModel(req) : '';
    metrics.request(model, '', api.statusCode, 0);
    stamp(reply);
    return sendApiError(reply, api);
  });
  app.setNotFoundHandler((req, reply) => {
    stamp(reply);
    return sendApiError(
      reply,
      new ApiError(GW_ERRORS.GW_ERR_NOT_FOUND, `no route ${req.method} ${req.url.slice(0, 256)}`),
    );
  });
  /** The model label: only names of the policy, so clients cannot create series without bound. */
  const knownModel = (req: FastifyRequest) => {
    const name = (req.params as ModelParams | undefined)?.model;
    return name !== undefined && snapshot?.policy.models.has(name) ? name : '';
  };

  healthRoutes(app, {
    name: 'infergate-gateway',
    extensions: ['binary_tensor_data'],
    ready: () => !draining,
  });

  /** What a request to one variant needs besides the policy, built once per variant of a snapshot. */
  interface VariantContext extends ForwardContext {
    readonly series: VariantSeries;
  }
  const forwardContext = (model: CompiledModel, variant: CompiledVariant): VariantContext => {
    const endpointSeries = new Map<Endpoint, EndpointSeries>();
    return {
      clock,
      random,
      series: metrics.forVariant(model.name, variant.name),
      onAttempt: (endpoint, outcome, seconds) => {
        let s = endpointSeries.get(endpoint);
        if (s === undefined) {
          s = metrics.forEndpoint(variant.backend.name, endpoint.origin);
          endpointSeries.set(endpoint, s);
        }
        s.attempt(outcome, seconds);
      },
      onRetry: (reason, allowed) => {
        if (allowed) metrics.retries.inc({ model: model.name, reason });
        else metrics.retriesDenied.inc({ model: model.name });
      },
    };
  };
  // A reload compiles new variant objects, so contexts follow the snapshot.
  const contexts = new WeakMap<CompiledVariant, VariantContext>();
  const contextFor = (model: CompiledModel, variant: CompiledVariant) => {
    let c = contexts.get(variant);
    if (c === undefined) {
      c = forwardContext(model, variant);
      contexts.set(variant, c);
    }
    return c;
  };

  /** Routes, forwards and answers one request to a model. */
  const handle = async (
    req: FastifyRequest<{ Params: ModelParams; Body: Buffer | undefined }>,
    reply: FastifyReply,
    kind: 'infer' | 'metadata' | 'ready',
  ) => {
    const started = clock.now();
    stamp(reply);
    const snap = snapshot as Snapshot;
    const decision: RouteDecision = route(
      snap.policy,
      { model: req.params.model, version: req.params.version, headers: req.headers },
      random,
    );
    if (!decision.ok) {
      const err =
        decision.error === 'model_not_found'
          ? new ApiError(
              GW_ERRORS.GW_ERR_MODEL_NOT_FOUND,
              `unknown model '${req.params.model.slice(0, 256)}'`,
            )
          : new ApiError(
              GW_ERRORS.GW_ERR_VERSION_NOT_FOUND,
              `model '${req.params.model}' has no variant serving version '${String(req.params.version).slice(0, 64)}'`,
            );
      metrics.request(decision.error === 'model_not_found' ? '' : req.params.model, '', err.statusCode, 0);
      return sendApiError(reply, err);
    }
    const { model, variant } = decision;
    // Load shedding: a slot at the gateway, then one for the model, each with a bounded wait.
    const global = gatewayLimiter as ConcurrencyLimiter;
    const local = modelLimiters.get(model.name) as ConcurrencyLimiter;
    const refusal = global.tryAcquire() ? undefined : await global.acquire();
    if (refusal !== undefined) return shed(reply, model, 'gateway', refusal, started);
    const localRefusal = local.tryAcquire() ? undefined : await local.acquire();
    if (localRefusal !== undefined) {
      global.release();
      return shed(reply, model, 'model', localRefusal, started);
    }
    // A client that goes away cancels its upstream attempt and frees its slots at once. The
    // request registers with its connection (one listener per connection, not per request).
    const cancel: Cancellation = { cancelled: false, onCancel: undefined };
    const context = contextFor(model, variant);
    const pending = (req.raw.socket as ClientSocket)[IN_FLIGHT];
    pending?.add(cancel);
    let result: ForwardResult;
    try {
      result =
        req.raw.socket.destroyed || cancel.cancelled
          ? { kind: 'cancelled' }
          : await forwardOne(req, kind, model, variant, snap, cancel, context);
    } finally {
      pending?.delete(cancel);
      local.release();
      global.release();
    }
    reply.header('x-infergate-variant', variant.name);
    const status = answer(reply, result, model, variant, req.id);
    context.series.request(status, (clock.now() - started) / 1000);
    return reply;
  };

  const shed = (
    reply: FastifyReply,
    model: CompiledModel,
    scope: 'gateway' | 'model',
    reason: Refusal,
    started: number,
  ) => {
    metrics.shed.inc({ model: model.name, scope, reason });
    const err = new ApiError(
      GW_ERRORS.GW_ERR_OVERLOADED,
      scope === 'gateway'
        ? 'the gateway is at its concurrency limit; retry later'
        : `model '${model.name}' is at its concurrency limit; retry later`,
      { retryAfterSeconds: 1 },
    );
    metrics.request(model.name, '', err.statusCode, (clock.now() - started) / 1000);
    return sendApiError(reply, err);
  };

  const forwardOne = (
    req: FastifyRequest<{ Params: ModelParams; Body: Buffer | undefined }>,
    kind: 'infer' | 'metadata' | 'ready',
    model: CompiledModel,
    variant: CompiledVariant,
    snap: Snapshot,
    cancel: Cancellation,
    context: VariantContext,
  ): Promise<ForwardResult> => {
    return forward(
      {
        method: kind === 'infer' ? 'POST' : 'GET',
        path:
          kind === 'infer'
            ? variant.inferPath
            : kind === 'metadata'
              ? variant.metadataPath
              : variant.readyPath,
        headers: forwardHeaders(req.headers, req.id),
        body: kind === 'infer' ? (req.body ?? EMPTY) : null,
        endpoints: snap.endpoints.get(variant.backend.name) ?? [],
        timeoutMs: model.timeoutMs,
        retries: model.retries,
        budget: budgetFor(model.name),
        cancel,
      },
      context,
    );
  };

  const answer = (
    reply: FastifyReply,
    result: ForwardResult,
    model: CompiledModel,
    variant: CompiledVariant,
    reqId: string,
  ): number => {
    if (result.kind === 'response') {
      if (result.status >= 500 && result.status !== 503) {
        const err = new ApiError(
          GW_ERRORS.GW_ERR_UPSTREAM_ERROR,
          `backend '${variant.backend.name}' answered ${result.status}${backendCode(result.body)}`,
        );
        logger.warn(
          {
            reqId,
            model: model.name,
            variant: variant.name,
            endpoint: result.endpoint.origin,
            status: result.status,
          },
          'backend error',
        );
        sendApiError(reply, err);
        return err.statusCode;
      }
      reply.code(result.status);
      for (const h of FORWARDED_RESPONSE_HEADERS) {
        const v = result.headers[h];
        if (v !== undefined) reply.header(h, v);
      }
      if (result.status === 503 && result.headers['retry-after'] === undefined)
        reply.header('retry-after', '1');
      reply.send(result.body);
      return result.status;
    }
    if (result.kind === 'no_endpoint') {
      const err = new ApiError(
        GW_ERRORS.GW_ERR_NO_HEALTHY_ENDPOINT,
        `no endpoint of backend '${variant.backend.name}' can take traffic now`,
        { retryAfterSeconds: result.retryAfterSeconds },
      );
      sendApiError(reply, err);
      return err.statusCode;
    }
    if (result.kind === 'cancelled') {
      // Nobody to answer; counted as 499 (client closed request), as nginx does.
      reply.hijack();
      reply.raw.destroy();
      return 499;
    }
    if (result.kind === 'timeout') {
      const err = new ApiError(
        GW_ERRORS.GW_ERR_UPSTREAM_TIMEOUT,
        `backend '${variant.backend.name}' did not answer within ${model.timeoutMs} ms`,
      );
      sendApiError(reply, err);
      return err.statusCode;
    }
    logger.warn(
      {
        reqId,
        model: model.name,
        variant: variant.name,
        attempts: result.attempts,
        error: (result.error as { code?: string } | undefined)?.code ?? result.error?.message,
      },
      'backend unavailable',
    );
    const err = new ApiError(
      GW_ERRORS.GW_ERR_UPSTREAM_UNAVAILABLE,
      `no replica of backend '${variant.backend.name}' could be reached (${result.attempts} attempt${result.attempts === 1 ? '' : 's'})`,
      { retryAfterSeconds: 1 },
    );
    sendApiError(reply, err);
    return err.statusCode;
  };

  type Req = FastifyRequest<{ Params: ModelParams; Body: Buffer | undefined }>;
  const infer = (req: Req, reply: FastifyReply) => handle(req, reply, 'infer');
  const modelMetadata = (req: Req, reply: FastifyReply) => handle(req, reply, 'metadata');
  const modelReady = (req: Req, reply: FastifyReply) => handle(req, reply, 'ready');
  app.post('/v2/models/:model/infer', infer);
  app.post('/v2/models/:model/versions/:version/infer', infer);
  app.get('/v2/models/:model', modelMetadata);
  app.get('/v2/models/:model/versions/:version', modelMetadata);
  app.get('/v2/models/:model/ready', modelReady);
  app.get('/v2/models/:model/versions/:version/ready', modelReady);

  const admin = buildAdmin({ metrics, logger, clock, current: () => snapshot as Snapshot });

  return {
    app,
    admin,
    metrics,
    policy,
    get snapshot() {
      return snapshot as Snapshot;
    },
    get draining() {
      return draining;
    },
    async shutdown() {
      draining = true;
      await opts.policySource.close();
      const delay = opts.drainDelayMs ?? 0;
      if (delay > 0) await new Promise<void>((resolve) => clock.setTimer(resolve, delay));
      await app.close();
      await admin.close();
      await registry.close();
    },
  };
}

const EMPTY = Buffer.alloc(0);
/** The requests in flight on a client connection, cancelled if it closes before they answer. */
const IN_FLIGHT = Symbol('infergate.inFlight');
type ClientSocket = Socket & { [IN_FLIGHT]?: Set<Cancellation> };

function forwardHeaders(headers: IncomingHttpHeaders, requestId: string): Record<string, string> {
  const out: Record<string, string> = { 'x-request-id': requestId };
  for (const h of FORWARDED_REQUEST_HEADERS) {
    const v = headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return out;
}

/** ` (BE_ERR_...)` from a backend's error body, when it has one. */
function backendCode(body: Buffer): string {
  if (body.length > 4096) return '';
  try {
    const code = (JSON.parse(body.toString('utf8')) as { code?: unknown }).code;
    return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? ` (${code})` : '';
  } catch {
    return '';
  }
}

function toApiError(err: Error, bodyLimit: number): ApiError {
  return fastifyApiError(err, bodyLimit, GATEWAY_FASTIFY_ERRORS);
}

const GATEWAY_FASTIFY_ERRORS = {
  bodyTooLarge: GW_ERRORS.GW_ERR_BODY_TOO_LARGE,
  badRequest: GW_ERRORS.GW_ERR_BAD_REQUEST,
  internal: GW_ERRORS.GW_ERR_INTERNAL,
  internalMessage: 'internal error; the gateway logged it with the request id',
} as const;

function buildAdmin(deps: {
  metrics: GatewayMetrics;
  logger: Logger;
  clock: Clock;
  current: () => Snapshot;
}): FastifyInstance {
  const admin = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  admin.get('/metrics', async (_req, reply) => {
    reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  admin.get('/admin/policy', async () => {
    const s = deps.current();
    return {
      sha256: s.policy.sha256,
      appliedAt: new Date(s.appliedAt).toISOString(),
      warnings: s.policy.warnings,
      policy: s.policy.document,
    };
  });
  admin.get('/admin/upstreams', async () => {
    const s = deps.current();
    const now = deps.clock.now();
    return {
      backends: [...s.endpoints].map(([name, endpoints]) => ({
        name,
        endpoints: endpoints.map((e) => {
          const recent = e.recent;
          return {
            url: e.origin,
            state: e.state(now),
            healthy: e.healthy,
            breaker: e.breakerState,
            ejectedForMs: Math.max(0, Math.round(e.ejectedUntil - now)),
            outstanding: e.outstanding,
            recentRequests: recent.requests,
            recentErrorRate: recent.requests === 0 ? 0 : recent.failures / recent.requests,
          };
        }),
      })),
    };
  });
  admin.setNotFoundHandler((req, reply) =>
    sendApiError(
      reply,
      new ApiError(GW_ERRORS.GW_ERR_NOT_FOUND, `no route ${req.method} ${req.url.slice(0, 256)}`),
    ),
  );
  return admin;
}
