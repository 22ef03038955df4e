/**
 * The gateway's fastify app (listening happens elsewhere). The model routes are served by
 * `gateway/model-route.ts` on node's request before fastify sees it, when the request is plain;
 * fastify's routes for the same paths take the rest and end in the same `serveModel`. Health and
 * server metadata are the gateway's own; every refusal fastify makes itself is answered from the
 * gateway's error catalogue.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import {
  applyClientLimits,
  type ClientLimits,
  type ClientRefusal,
  clientErrorHandler,
} from '../common/client-limits.js';
import { ApiError } from '../common/errors.js';
import { type ServerTlsMaterial, serverTlsOptions } from '../common/server-tls.js';
import { fastifyApiError } from '../common/fastify-errors.js';
import { healthRoutes, sendApiError, sharedServerOptions } from '../common/http.js';
import { baseHeaders, INTERNAL_MESSAGE } from './answer.js';
import type { RequestKind } from './context.js';
import { GW_CLIENT_ERRORS, GW_ERRORS } from './errors.js';
import {
  EMPTY,
  type ModelServeDeps,
  serveModel,
  trackClientConnections,
  tryServeModel,
} from './model-route.js';

export interface AppDeps extends ModelServeDeps {
  /** Timeouts and the connection cap of the ingress server (see common/client-limits.ts). */
  readonly clientLimits: ClientLimits;
  /** TLS at the ingress: HTTPS with this certificate (reloaded by `watchServerTls`). */
  readonly tls?: ServerTlsMaterial | undefined;
}

interface ModelParams {
  model: string;
  version?: string;
}
type ModelRequest = FastifyRequest<{ Params: ModelParams; Body: Buffer | undefined }>;

/** The options fastify passes to a server factory that it would set on its own server. */
interface ServerTimeouts {
  connectionTimeout?: number;
  maxRequestsPerSocket?: number;
}

const FASTIFY_ERRORS = {
  bodyTooLarge: GW_ERRORS.GW_ERR_BODY_TOO_LARGE,
  badRequest: GW_ERRORS.GW_ERR_BAD_REQUEST,
  internal: GW_ERRORS.GW_ERR_INTERNAL,
  internalMessage: INTERNAL_MESSAGE,
} as const;

export function buildApp(deps: AppDeps): FastifyInstance {
  const { logger, metrics, bodyLimit, current, draining } = deps;

  /** Headers of the answers fastify sends itself (errors, 404s): those of every answer. */
  const stamp = (reply: FastifyReply) => reply.headers(baseHeaders(reply.request.id, draining()));

  const refusals = { onRefusal: (reason: ClientRefusal) => metrics.clientRefusals.inc({ reason }) };
  const secure = deps.tls === undefined ? undefined : serverTlsOptions(deps.tls);
  const app = Fastify({
    // While draining, requests on open connections are still served (with Connection: close).
    ...sharedServerOptions(logger, bodyLimit),
    // Read by fastify only for the scheme of the address it prints; the server is made below.
    ...(secure === undefined ? {} : { https: secure }),
    // Plain model requests never reach fastify (see model-route.ts).
    serverFactory: (handler, opts) => {
      const listener = (req: IncomingMessage, res: ServerResponse) => {
        if (!tryServeModel(deps, req, res)) handler(req, res);
      };
      const server = secure === undefined ? createServer(listener) : createHttpsServer(secure, listener);
      // A request finds its connection by its socket: the TLS socket, under TLS.
      trackClientConnections(server, secure === undefined ? 'connection' : 'secureConnection');
      // Header, request and keep-alive timeouts, the connection cap, parser refusals answered
      // from the catalogue; then what fastify sets on the servers it makes itself (lib/server.js).
      applyClientLimits(server, deps.clientLimits, refusals);
      const o = opts as ServerTimeouts;
      server.setTimeout(o.connectionTimeout ?? 0);
      if ((o.maxRequestsPerSocket ?? 0) > 0) server.maxRequestsPerSocket = o.maxRequestsPerSocket as number;
      return server;
    },
    clientErrorHandler: clientErrorHandler(GW_CLIENT_ERRORS, deps.clientLimits, refusals),
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

  /** A model request that fastify routed (escaped names, chunked bodies, HEAD): served as the rest. */
  const handle = (req: ModelRequest, reply: FastifyReply, kind: RequestKind) => {
    reply.hijack();
    const target = { kind, model: req.params.model, version: req.params.version };
    return serveModel(
      deps,
      req.raw,
      reply.raw,
      req.id,
      target,
      kind === 'infer' ? (req.body ?? EMPTY) : null,
    );
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
