import type { Server as TlsServer } from 'node:tls';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import {
  applyClientLimits,
  checkClientLimits,
  type ClientLimits,
  clientErrorHandler,
  DEFAULT_CLIENT_LIMITS,
} from '../common/client-limits.js';
import { type Clock, systemClock } from '../common/clock.js';
import { ApiError } from '../common/errors.js';
import { healthRoutes, sendApiError, sharedServerOptions } from '../common/http.js';
import { type Logger, silentLogger } from '../common/logging.js';
import {
  loadServerTls,
  type ServerTlsFiles,
  serverTlsOptions,
  watchServerTls,
} from '../common/server-tls.js';
import type { TracingConfig } from '../common/telemetry/config.js';
import { startTracing } from '../common/telemetry/tracing.js';
import type { CodecError } from '../common/oip/codec-error.js';
import { BE_CLIENT_ERRORS, BE_ERRORS, toApiError } from './errors.js';
import { LazyChildLogger } from './lazy-logger.js';
import { BackendMetrics } from './metrics.js';
import type { Device } from './model.js';
import type { PreparedRequest } from './validate.js';
import { ModelRepository, type ModelSelector } from './repository.js';
import { inferRoutes } from './routes/infer.js';
import { repositoryRoutes } from './routes/repository.js';
import { BackendTracing } from './tracing.js';

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;

export interface BackendOptions {
  modelRepository: string;
  device?: Device;
  /** Largest request body in bytes (413 beyond it). */
  bodyLimit?: number;
  /** Header, request and keep-alive timeouts and the connection cap (common/client-limits.ts). */
  clientLimits?: ClientLimits;
  /** HTTPS with this certificate; with `clientCa`, clients must present a certificate it signed. */
  tls?: ServerTlsFiles;
  /** How often the TLS files are looked at for a new certificate (1000 ms). */
  tlsPollMs?: number;
  logger?: Logger;
  clock?: Clock;
  /** Default process metrics; off in tests that run several servers in one process. */
  processMetrics?: boolean;
  /** Load the repository's models at start (default true): every one, or those `models` selects. */
  loadAll?: boolean;
  /**
   * Only these models (an entry with a version: only that version) load at start; the others are
   * listed as not loaded and the load API still loads them. An entry whose model or version is not
   * in the repository makes buildBackend throw ModelSelectionError. Every model when undefined.
   */
  models?: readonly ModelSelector[] | undefined;
  /** OTLP tracing (from the OTEL_* variables); off when undefined. */
  tracing?: TracingConfig | undefined;
}

export interface Backend {
  app: FastifyInstance;
  repository: ModelRepository;
  metrics: BackendMetrics;
  /** Readiness false, wait for in-flight requests, then close sessions. */
  shutdown(): Promise<void>;
  readonly draining: boolean;
}

/** Builds a backend replica (not listening). Loads the repository's models before returning. */
export async function buildBackend(opts: BackendOptions): Promise<Backend> {
  const logger = opts.logger ?? silentLogger();
  const clock = opts.clock ?? systemClock;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const clientLimits = checkClientLimits(opts.clientLimits ?? DEFAULT_CLIENT_LIMITS);
  // Read and checked before any model loads: a bad file stops the replica here (TlsFileError).
  const tls = opts.tls === undefined ? undefined : serverTlsOptions(loadServerTls(opts.tls));
  // Read by every answer and every infer request; set once, by shutdown().
  const state = { draining: false };

  const started = startTracing(opts.tracing);
  const tracing = started === undefined ? undefined : new BackendTracing(started);
  let repository: ModelRepository | undefined;
  const metrics = new BackendMetrics({
    processMetrics: opts.processMetrics ?? true,
    sample: () =>
      repository === undefined
        ? []
        : [...repository.slots()].map((s) => ({
            model: s.name,
            version: s.version,
            provider: s.model?.provider ?? '',
            state: s.state,
            queueDepth: s.model?.queueDepth ?? 0,
          })),
  });
  repository = new ModelRepository({
    root: opts.modelRepository,
    models: opts.models,
    device: opts.device ?? 'cpu',
    clock,
    logger,
    observer: (model, version) => {
      const labels = { model, version };
      const wait = metrics.queueWait.labels(labels);
      const batch = metrics.batchSize.labels(labels);
      const compute = metrics.compute.labels(labels);
      return {
        onBatch(rows, waitsMs) {
          batch.observe(rows);
          for (const w of waitsMs) wait.observe(w / 1000);
        },
        onCompute(seconds) {
          compute.observe(seconds);
        },
        ...(tracing === undefined
          ? {}
          : { batchStarted: (b: readonly PreparedRequest[]) => tracing.batchStarted(b, model, version) }),
      };
    },
  });
  const repo = repository;
  const loadAll = opts.loadAll ?? true;
  // A selection is checked against the disk even when nothing loads now.
  const startup = loadAll || opts.models !== undefined ? await repo.startupLoads() : [];
  if (loadAll) {
    for (const { name, versions } of startup) {
      // A model that fails to load is reported in the index; the others still serve.
      await repo
        .load(name, versions)
        .catch((e: unknown) => logger.error({ model: name, err: e }, 'model failed to load'));
    }
  }

  const app = Fastify({
    // Requests that arrive while draining get this replica's own 503 (BE_ERR_SHUTTING_DOWN).
    ...sharedServerOptions(logger, bodyLimit),
    ...(tls === undefined ? {} : { https: tls }),
    routerOptions: { maxParamLength: 256 },
    // What node's HTTP parser refuses (a malformed head, headers too large, a client too slow).
    clientErrorHandler: clientErrorHandler(BE_CLIENT_ERRORS, clientLimits),
    // A URL fastify cannot decode, or a path segment over maxParamLength, gets the replica's own
    // error (with the request id), not fastify's.
    frameworkErrors: (error, _req, reply) =>
      sendError(
        reply,
        new ApiError(BE_ERRORS.BE_ERR_BAD_URL, `the URL cannot be routed: ${error.message.slice(0, 200)}`),
        stamp,
      ),
    // req.log's child logger is made only when a request logs (errors): see LazyChildLogger.
    childLoggerFactory: (parent, bindings, childOptions) =>
      new LazyChildLogger(parent, bindings, childOptions),
  });

  applyClientLimits(app.server, clientLimits);
  const tlsWatch =
    opts.tls === undefined
      ? undefined
      : watchServerTls(app.server as unknown as TlsServer, opts.tls, logger, {
          ...(opts.tlsPollMs === undefined ? {} : { pollMs: opts.tlsPollMs }),
        });
  app.removeAllContentTypeParsers();
  const keepBody = (_req: FastifyRequest, body: Buffer, done: (err: null, body: Buffer) => void) =>
    done(null, body);
  // Every body is kept as bytes. The usual content types are named too: fastify caches the parser
  // of a named type, while the catch-all parses the content-type header again on every request.
  for (const type of ['application/json', 'application/octet-stream', '*']) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit }, keepBody);
  }

  // Headers every answer carries: the request id, and while draining, Connection: close so that
  // clients reconnect elsewhere. Inference answers and errors set them where they are sent; the
  // other routes share an onSend hook in a context of their own (see below). An onSend hook on
  // the inference routes cost more per request than a small model's inference.
  const stamp = (reply: FastifyReply): void => {
    reply.header('x-request-id', reply.request.id);
    if (state.draining) reply.header('connection', 'close');
  };

  app.setErrorHandler((err: FastifyError | ApiError | CodecError, req, reply) => {
    const api = toApiError(err, bodyLimit);
    // Errors raised before the infer handler runs (body over the limit) are counted here.
    if (api.code === BE_ERRORS.BE_ERR_BODY_TOO_LARGE.code && req.routeOptions.url?.endsWith('/infer')) {
      infer.countRefused(req, api.statusCode);
    }
    if (api.code === BE_ERRORS.BE_ERR_INTERNAL.code) {
      req.log.error({ err, reqId: req.id }, 'unexpected error');
    } else if (api.code === BE_ERRORS.BE_ERR_INFERENCE_FAILED.code) {
      // The answer carries onnxruntime's message without file paths; the log keeps all of it.
      const cause = api.cause instanceof Error ? api.cause.message : undefined;
      req.log.error({ reqId: req.id, code: api.code, detail: cause ?? api.message }, 'inference failed');
    }
    return sendError(reply, api, stamp);
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      new ApiError(BE_ERRORS.BE_ERR_NOT_FOUND, `no route ${req.method} ${req.url.slice(0, 256)}`),
      stamp,
    ),
  );

  const infer = inferRoutes(app, { repo, metrics, bodyLimit, state, stamp, tracing });

  app.register(async (api) => {
    api.addHook('onSend', (_req, reply, payload, done) => {
      stamp(reply);
      done(null, payload);
    });
    healthRoutes(api, {
      name: 'infergate',
      extensions: ['binary_tensor_data', 'model_repository', 'dynamic_batching'],
      ready: () => !state.draining,
    });
    repositoryRoutes(api, repo);

    api.get('/metrics', async (_req, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  });

  app.addHook('onClose', async () => {
    tlsWatch?.close();
    await repo.close();
    await started?.shutdown();
  });

  return {
    app,
    repository: repo,
    metrics,
    get draining() {
      return state.draining;
    },
    async shutdown() {
      state.draining = true;
      await app.close();
    },
  };
}

function sendError(reply: FastifyReply, err: ApiError, stamp: (reply: FastifyReply) => void): FastifyReply {
  stamp(reply);
  return sendApiError(reply, err);
}
