/**
 * The inference routes, `POST /v2/models/{m}[/versions/{v}]/infer`: decode, validate, queue for
 * the model's batcher, encode the answer; each request counted by model version and status code.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../common/errors.js';
import { type DecodeOptions, decodeInferRequest } from '../../common/oip/decode-request.js';
import type { DecodedRequest, ResponseOutput, Tensor } from '../../common/oip/messages.js';
import { encodeInferResponse } from '../../common/oip/response.js';
import type { Span } from '../../common/telemetry/tracing.js';
import { BE_ERRORS, toApiError } from '../errors.js';
import type { BackendMetrics } from '../metrics.js';
import type { LoadedModel } from '../model.js';
import type { ModelRepository } from '../repository.js';
import type { BackendTracing } from '../tracing.js';
import { validateRequest } from '../validate.js';

const NO_DECODE_OPTIONS: DecodeOptions = Object.freeze({});

interface InferParams {
  model: string;
  version?: string;
}

export interface InferRouteOptions {
  repo: ModelRepository;
  metrics: BackendMetrics;
  bodyLimit: number;
  /** The replica's state, read on every request: while draining, requests get 503. */
  state: { readonly draining: boolean };
  /** Sets the headers every answer carries. */
  stamp: (reply: FastifyReply) => void;
  /** The replica's spans; undefined when tracing is off. */
  tracing?: BackendTracing | undefined;
}

export interface InferRoutes {
  /** Counts an infer request that fastify refused before the handler ran (a body over the limit). */
  countRefused(req: FastifyRequest, statusCode: number): void;
}

/**
 * Adds the infer routes to `app`. They have no hooks of their own: an onSend hook cost more per
 * request than a small model's inference, so the answer's headers are set where it is sent.
 */
export function inferRoutes(app: FastifyInstance, opts: InferRouteOptions): InferRoutes {
  const { repo, metrics, bodyLimit, state, stamp, tracing } = opts;

  // Not an async function: fastify then has no promise of ours to follow (and the reply, a
  // thenable, is not resolved through it); the answer or the error is sent from here.
  const infer = (
    req: FastifyRequest<{ Params: InferParams; Body: Buffer | undefined }>,
    reply: FastifyReply,
  ): void => {
    const started = performance.now();
    const span = tracing === undefined ? undefined : tracing.begin(req, started);
    let model: LoadedModel | undefined;
    try {
      model = repo.resolve(req.params.model, req.params.version);
      if (state.draining) {
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
          : {
              headerLength: Array.isArray(headerLength) ? headerLength[0] : headerLength,
              rawInput: model.rawInput,
            },
      );
      // A raw binary body comes back undecoded only when the model has no input to take it.
      if ('raw' in decoded) throw noRawInput(model);
      const request = decoded;
      const served = model;
      const prepared = validateRequest(model, request);
      if (span !== undefined) tracing?.enqueued(prepared, span);
      model.infer(prepared, (e, outputs) => {
        if (e === undefined) answer(reply, served, request, outputs!, started, span);
        else fail(reply, served, e as Error, started, span);
      });
    } catch (e) {
      fail(reply, model, e as Error, started, span);
    }
  };
  const answer = (
    reply: FastifyReply,
    model: LoadedModel,
    request: DecodedRequest,
    outputs: Tensor[],
    started: number,
    span: Span | undefined,
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
      fail(reply, model, e as Error, started, span);
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
    if (span !== undefined) tracing?.end(span, 200, model.version);
    stamp(reply);
    reply.send(encoded.body);
  };
  const fail = (
    reply: FastifyReply,
    model: LoadedModel | undefined,
    e: Error,
    started: number,
    span: Span | undefined,
  ): void => {
    const status = toApiError(e, bodyLimit).statusCode;
    count(model, status, started);
    if (span !== undefined) tracing?.end(span, status, model?.version);
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

  return {
    countRefused(req, statusCode) {
      const { model, version } = req.params as InferParams;
      let known: LoadedModel | undefined;
      try {
        known = repo.resolve(model, version);
      } catch {
        known = undefined;
      }
      count(known, statusCode, performance.now());
    },
  };
}

/**
 * `Inference-Header-Content-Length: 0` for a model without an input a raw body can fill: one
 * fixed-size input whose dims are all fixed but dim 0, which is deduced from the byte count.
 */
function noRawInput(model: LoadedModel): ApiError {
  return new ApiError(
    BE_ERRORS.BE_ERR_INVALID_BINARY,
    `a raw binary body (Inference-Header-Content-Length: 0) needs a model with one fixed-size input whose dims are fixed except the first; '${model.name}' has none`,
    { field: 'Inference-Header-Content-Length' },
  );
}

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
