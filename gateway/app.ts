/**
 * The gateway's fastify app and its routes (listening happens elsewhere): the v2 model routes go
 * through `proxy` and `answer`; health and server metadata are the gateway's own; every refusal
 * fastify makes itself is answered from the gateway's error catalogue.
 */
import type { Socket } from 'node:net';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Clock } from '../common/clock.js';
import { ApiError } from '../common/errors.js';
import { fastifyApiError } from '../common/fastify-errors.js';
import { healthRoutes, sendApiError, sharedServerOptions } from '../common/http.js';
import type { Logger } from '../common/logging.js';
import { answer } from './answer.js';
import { type RequestKind, RequestContext } from './context.js';
import { GW_ERRORS } from './errors.js';
import type { GatewayMetrics } from './metrics.js';
import { type ProxyEnv, proxy } from './proxy.js';
import type { Snapshot } from './snapshot.js';
import type { Cancellation } from './upstream/forward.js';

export interface AppDeps extends ProxyEnv {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly bodyLimit: number;
  /** The snapshot in force: each request takes it once. */
  readonly current: () => Snapshot;
  /** While draining: readiness false, every answer with Connection: close. */
  readonly draining: () => boolean;
}

interface ModelParams {
  model: string;
  version?: string;
}
type ModelRequest = FastifyRequest<{ Params: ModelParams; Body: Buffer | undefined }>;

const EMPTY = Buffer.alloc(0);
/** The requests in flight on a client connection, cancelled if it closes before they answer. */
const IN_FLIGHT = Symbol('infergate.inFlight');
type ClientSocket = Socket & { [IN_FLIGHT]?: Set<Cancellation> };

const FASTIFY_ERRORS = {
  bodyTooLarge: GW_ERRORS.GW_ERR_BODY_TOO_LARGE,
  badRequest: GW_ERRORS.GW_ERR_BAD_REQUEST,
  internal: GW_ERRORS.GW_ERR_INTERNAL,
  internalMessage: 'internal error; the gateway logged it with the request id',
} as const;

export function buildApp(deps: AppDeps): FastifyInstance {
  const { clock, logger, metrics, bodyLimit, current, draining } = deps;

  /**
   * Headers of every answer on the model and error paths, set in the handlers themselves (an
   * onSend hook cost more per request than the rest of the reply).
   */
  const stamp = (reply: FastifyReply) => {
    reply.header('x-request-id', reply.request.id);
    // While draining, close each connection after its answer so clients reconnect elsewhere.
    if (draining()) reply.header('connection', 'close');
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
  // A client that goes away cancels its upstream attempt and frees its slots at once. Requests
  // register with their connection (one listener per connection, not per request).
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
    const api = fastifyApiError(err, bodyLimit, FASTIFY_ERRORS);
    if (api.code === GW_ERRORS.GW_ERR_INTERNAL.code)
      req.log.error({ err, reqId: req.id }, 'unexpected error');
    // The model label: only names of the policy, so clients cannot create series without bound.
    const name = (req.params as ModelParams | undefined)?.model;
    const known =
      req.routeOptions.url?.startsWith('/v2/models/') &&
      name !== undefined &&
      current().policy.models.has(name);
    metrics.request(known ? (name as string) : '', '', api.statusCode, 0);
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

  healthRoutes(app, {
    name: 'infergate-gateway',
    extensions: ['binary_tensor_data'],
    ready: () => !draining(),
  });

  /** One request to a model: a context, the proxy, the answer, then what metrics read of it. */
  const handle = async (req: ModelRequest, reply: FastifyReply, kind: RequestKind) => {
    const ctx = new RequestContext(
      current(),
      req.id,
      clock.now(),
      kind,
      req.params.model,
      req.params.version,
      req.headers,
    );
    stamp(reply);
    const socket = req.raw.socket as ClientSocket;
    const pending = socket[IN_FLIGHT];
    pending?.add(ctx.cancel);
    if (socket.destroyed) ctx.cancel.cancelled = true;
    let result: Awaited<ReturnType<typeof proxy>>;
    try {
      result = await proxy(ctx, kind === 'infer' ? (req.body ?? EMPTY) : null, deps);
    } finally {
      pending?.delete(ctx.cancel);
    }
    ctx.status = answer(reply, ctx, result, logger);
    ctx.answeredAt = clock.now();
    if (ctx.variant !== undefined) ctx.variant.series.request(ctx.status, ctx.seconds);
    else
      metrics.request(
        ctx.model === undefined ? '' : ctx.modelName,
        '',
        ctx.status,
        ctx.outcome === 'refused' ? ctx.seconds : 0,
      );
    return reply;
  };
  const infer = (req: ModelRequest, reply: FastifyReply) => handle(req, reply, 'infer');
  const modelMetadata = (req: ModelRequest, reply: FastifyReply) => handle(req, reply, 'metadata');
  const modelReady = (req: ModelRequest, reply: FastifyReply) => handle(req, reply, 'ready');
  app.post('/v2/models/:model/infer', infer);
  app.post('/v2/models/:model/versions/:version/infer', infer);
  app.get('/v2/models/:model', modelMetadata);
  app.get('/v2/models/:model/versions/:version', modelMetadata);
  app.get('/v2/models/:model/ready', modelReady);
  app.get('/v2/models/:model/versions/:version/ready', modelReady);
  return app;
}
