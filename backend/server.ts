import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { type Clock, systemClock } from '../common/clock.js';
import { ApiError } from '../common/errors.js';
import { fastifyApiError } from '../common/fastify-errors.js';
import { healthRoutes, sendApiError, sharedServerOptions } from '../common/http.js';
import { type Logger, silentLogger } from '../common/logging.js';
import {
  CodecError,
  type DecodedRequest,
  decodeInferRequest,
  encodeInferResponse,
  parseJson,
  type RawRequest,
  type ResponseOutput,
  type Tensor,
} from '../common/oip/codec.js';
import { DATATYPE_INFO } from '../common/oip/datatypes.js';
import { BE_ERRORS, codecErrorDef } from './errors.js';
import { LazyChildLogger } from './lazy-logger.js';
import { BackendMetrics } from './metrics.js';
import type { Device, LoadedModel } from './model.js';
import { ModelRepository, type ModelSelector } from './repository.js';

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;

const NO_DECODE_OPTIONS = Object.freeze({});

export interface BackendOptions {
  modelRepository: string;
  device?: Device;
  /** Largest request body in bytes (413 beyond it). */
  bodyLimit?: number;
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
}

export interface Backend {
  app: FastifyInstance;
  repository: ModelRepository;
  metrics: BackendMetrics;
  /** Readiness false, wait for in-flight requests, then close sessions. */
  shutdown(): Promise<void>;
  readonly draining: boolean;
}

interface InferParams {
  model: string;
  version?: string;
}

/** Builds a backend replica (not listening). Loads the repository's models before returning. */
export async function buildBackend(opts: BackendOptions): Promise<Backend> {
  const logger = opts.logger ?? silentLogger();
  const clock = opts.clock ?? systemClock;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  let draining = false;

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
    routerOptions: { maxParamLength: 256 },
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
    if (draining) reply.header('connection', 'close');
  };

  app.setErrorHandler((err: FastifyError | ApiError | CodecError, req, reply) => {
    const api = toApiError(err, bodyLimit);
    // Errors raised before the infer handler runs (body over the limit) are counted here.
    if (api.code === BE_ERRORS.BE_ERR_BODY_TOO_LARGE.code && req.routeOptions.url?.endsWith('/infer')) {
      const { model, version } = req.params as InferParams;
      let known: LoadedModel | undefined;
      try {
        known = repo.resolve(model, version);
      } catch {
        known = undefined;
      }
      count(known, api.statusCode, performance.now());
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

  // Not an async function: fastify then has no promise of ours to follow (and the reply, a
  // thenable, is not resolved through it); the answer or the error is sent from here.
  const infer = (
    req: FastifyRequest<{ Params: InferParams; Body: Buffer | undefined }>,
    reply: FastifyReply,
  ): void => {
    const started = performance.now();
    let model: LoadedModel | undefined;
    try {
      model = repo.resolve(req.params.model, req.params.version);
      if (draining) {
        throw new ApiError(BE_ERRORS.BE_ERR_SHUTTING_DOWN, 'replica is shutting down', {
          retryAfterSeconds: 1,
        });
      }
      const body = req.body ?? Buffer.alloc(0);
      const headerLength = req.headers['inference-header-content-length'];
      const decoded = decodeInferRequest(
        body,
        headerLength === undefined
          ? NO_DECODE_OPTIONS
          : { headerLength: Array.isArray(headerLength) ? headerLength[0] : headerLength },
      );
      const request = 'raw' in decoded ? rawRequest(model, decoded) : decoded;
      const served = model;
      model.infer(model.prepare(request), (e, outputs) => {
        if (e === undefined) answer(reply, served, request, outputs!, started);
        else fail(reply, served, e as Error, started);
      });
    } catch (e) {
      fail(reply, model, e as Error, started);
    }
  };
  const answer = (
    reply: FastifyReply,
    model: LoadedModel,
    request: DecodedRequest,
    outputs: Tensor[],
    started: number,
  ): void => {
    let encoded: ReturnType<typeof encodeInferResponse>;
    try {
      encoded = encodeInferResponse({
        model_name: model.name,
        model_version: model.version,
        id: request.id,
        outputs: selectOutputs(outputs, request),
      });
    } catch (e) {
      fail(reply, model, e as Error, started);
      return;
    }
    if (encoded.headerLength !== undefined) {
      reply.header('inference-header-content-length', encoded.headerLength);
      reply.type('application/octet-stream');
    } else {
      // With the charset fastify would add: the header is then taken as it is.
      reply.type('application/json; charset=utf-8');
    }
    count(model, 200, started);
    stamp(reply);
    reply.send(encoded.body);
  };
  const fail = (reply: FastifyReply, model: LoadedModel | undefined, e: Error, started: number): void => {
    count(model, toApiError(e, bodyLimit).statusCode, started);
    // An Error sent goes to the error handler, as a thrown one would.
    reply.send(e);
  };
  // Label children are made once per model version and code, and found without building a key.
  type Series = { requests: { inc(): void }; duration: { observe(v: number): void } | undefined };
  const seriesOf = new WeakMap<LoadedModel, Map<number, Series>>();
  const unknownModelSeries = new Map<number, Series>();
  const count = (model: LoadedModel | undefined, code: number, started: number) => {
    let byCode = model === undefined ? unknownModelSeries : seriesOf.get(model);
    if (byCode === undefined) {
      byCode = new Map();
      seriesOf.set(model!, byCode);
    }
    let s = byCode.get(code);
    if (s === undefined) {
      // Unknown model names are not used as labels: a client could create series without bound.
      const labels = { model: model?.name ?? '', version: model?.version ?? '' };
      s = {
        requests: metrics.requests.labels({ ...labels, code: String(code) }),
        duration: model === undefined ? undefined : metrics.requestDuration.labels(labels),
      };
      byCode.set(code, s);
    }
    s.requests.inc();
    s.duration?.observe((performance.now() - started) / 1000);
  };
  app.post('/v2/models/:model/infer', infer);
  app.post('/v2/models/:model/versions/:version/infer', infer);

  app.register(async (api) => {
    api.addHook('onSend', (_req, reply, payload, done) => {
      stamp(reply);
      done(null, payload);
    });
    healthRoutes(api, {
      name: 'infergate',
      extensions: ['binary_tensor_data', 'model_repository', 'dynamic_batching'],
      ready: () => !draining,
    });

    const metadata = async (req: FastifyRequest<{ Params: InferParams }>) => {
      const { model, version } = req.params;
      return repo.resolve(model, version).metadata(repo.versionsOf(model));
    };
    api.get('/v2/models/:model', metadata);
    api.get('/v2/models/:model/versions/:version', metadata);

    const ready = async (req: FastifyRequest<{ Params: InferParams }>) => {
      const m = repo.resolve(req.params.model, req.params.version);
      return { name: m.name, version: m.version, ready: true };
    };
    api.get('/v2/models/:model/ready', ready);
    api.get('/v2/models/:model/versions/:version/ready', ready);

    api.post('/v2/repository/index', async (req: FastifyRequest<{ Body: Buffer | undefined }>) => {
      let readyOnly = false;
      if (req.body !== undefined && req.body.length > 0) {
        const doc = parseJson(req.body);
        if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
          throw new ApiError(BE_ERRORS.BE_ERR_INVALID_REQUEST, 'index request must be a JSON object');
        }
        const flag = (doc as { ready?: unknown }).ready;
        if (flag !== undefined && typeof flag !== 'boolean') {
          throw new ApiError(BE_ERRORS.BE_ERR_INVALID_REQUEST, 'ready must be a boolean', { field: 'ready' });
        }
        readyOnly = flag === true;
      }
      return repo.index(readyOnly);
    });
    api.post('/v2/repository/models/:model/load', async (req: FastifyRequest<{ Params: InferParams }>) => {
      await repo.load(req.params.model);
      return {};
    });
    api.post('/v2/repository/models/:model/unload', async (req: FastifyRequest<{ Params: InferParams }>) => {
      await repo.unload(req.params.model);
      return {};
    });

    api.get('/metrics', async (_req, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  });

  app.addHook('onClose', async () => {
    await repo.close();
  });

  return {
    app,
    repository: repo,
    metrics,
    get draining() {
      return draining;
    },
    async shutdown() {
      draining = true;
      await app.close();
    },
  };
}

function sendError(reply: FastifyReply, err: ApiError, stamp: (reply: FastifyReply) => void): FastifyReply {
  stamp(reply);
  return sendApiError(reply, err);
}

function toApiError(err: Error, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof CodecError) {
    return new ApiError(
      codecErrorDef(err.reason),
      err.message,
      err.field === undefined ? {} : { field: err.field },
    );
  }
  return fastifyApiError(err, bodyLimit, BACKEND_FASTIFY_ERRORS);
}

const BACKEND_FASTIFY_ERRORS = {
  bodyTooLarge: BE_ERRORS.BE_ERR_BODY_TOO_LARGE,
  badRequest: BE_ERRORS.BE_ERR_INVALID_REQUEST,
  internal: BE_ERRORS.BE_ERR_INTERNAL,
  internalMessage: 'internal error; the replica logged it with the request id',
} as const;

/** One answer output. A literal, not a spread: V8 gives spread copies here a new map each time. */
function responseOutput(o: Tensor, binary: boolean): ResponseOutput {
  return { name: o.name, datatype: o.datatype, shape: o.shape, data: o.data, binary };
}

/** Only the outputs asked for, in the asked order and form; all of them when none were named. */
function selectOutputs(outputs: readonly Tensor[], req: DecodedRequest): ResponseOutput[] {
  const selected: ResponseOutput[] = [];
  if (req.outputs === undefined) {
    for (const o of outputs) selected.push(responseOutput(o, req.binaryOutput));
    return selected;
  }
  for (const want of req.outputs) {
    for (const o of outputs) {
      if (o.name === want.name) {
        selected.push(responseOutput(o, want.binary));
        break;
      }
    }
  }
  return selected;
}

/**
 * `Inference-Header-Content-Length: 0`: the body is one raw little-endian tensor for a model with
 * a single input whose dims are all fixed but dim 0, which is deduced from the byte count.
 */
function rawRequest(model: LoadedModel, req: RawRequest): DecodedRequest {
  const spec = model.inputs.length === 1 ? model.inputs[0]! : undefined;
  const size = spec?.datatype === undefined ? 0 : DATATYPE_INFO[spec.datatype].size;
  const rest = spec?.shape.slice(1) ?? [];
  if (spec === undefined || size === 0 || spec.shape.length === 0 || rest.some((d) => d < 0)) {
    throw new ApiError(
      BE_ERRORS.BE_ERR_INVALID_BINARY,
      `a raw binary body (Inference-Header-Content-Length: 0) needs a model with one fixed-size input whose dims are fixed except the first; '${model.name}' has none`,
      { field: 'Inference-Header-Content-Length' },
    );
  }
  const rowBytes = rest.reduce((a, b) => a * b, 1) * size;
  if (rowBytes === 0 || req.raw.length % rowBytes !== 0) {
    throw new ApiError(
      BE_ERRORS.BE_ERR_DATA_LENGTH_MISMATCH,
      `raw body of ${req.raw.length} bytes is not a whole number of ${spec.datatype} rows of shape [${rest.join(',')}]`,
      { field: 'body' },
    );
  }
  const shape = [req.raw.length / rowBytes, ...rest];
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: spec.name, datatype: spec.datatype, shape, parameters: { binary_data_size: req.raw.length } },
      ],
    }),
  );
  return decodeInferRequest(Buffer.concat([header, req.raw]), {
    headerLength: String(header.length),
  }) as DecodedRequest;
}
