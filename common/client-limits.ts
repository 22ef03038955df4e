/**
 * What a listening server allows its clients, shared by both tiers: how long a client may take to
 * send its headers, its whole request (the body included) and how long an idle keep-alive
 * connection stays open; how many connections may be open at once; and how a request that node's
 * HTTP parser refuses (a malformed head, headers over the size limit, a client too slow) is
 * answered: a complete HTTP response with the tier's JSON error body, then the connection closes.
 *
 * All of it is set on the server once, before it listens: nothing here runs per request. The
 * parser's refusals arrive on node's `clientError` event, the connections over the cap on `drop`.
 */
import { Server as TlsServer } from 'node:tls';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { ApiError, type ErrorDef } from './errors.js';

export interface ClientLimits {
  /** A request's head must be complete within this (also from the connection's start). */
  readonly headersTimeoutMs: number;
  /** A request, head and body, must be received within this; at least headersTimeoutMs. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection closes after this. */
  readonly keepAliveTimeoutMs: number;
  /** Connections open at once; beyond it new ones are closed as they are accepted. 0: no cap. */
  readonly maxConnections: number;
}

export const DEFAULT_CLIENT_LIMITS: ClientLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 72_000,
  maxConnections: 10_000,
});

/** Why a client was refused before any route saw its request. */
export type ClientRefusal =
  | 'bad_request'
  | 'headers_too_large'
  | 'timeout'
  | 'connection_limit'
  | 'tls_handshake';
export const CLIENT_REFUSALS: readonly ClientRefusal[] = [
  'bad_request',
  'headers_too_large',
  'timeout',
  'connection_limit',
  'tls_handshake',
];

/** The tier's catalogue entries for what the HTTP parser refuses. */
export interface ClientErrorCodes {
  readonly badRequest: ErrorDef;
  readonly headersTooLarge: ErrorDef;
  readonly timeout: ErrorDef;
}

/** A problem with the limits themselves, naming the setting. */
export class ClientLimitsError extends Error {
  constructor(
    readonly setting: keyof ClientLimits,
    message: string,
  ) {
    super(message);
  }
}

export function checkClientLimits(limits: ClientLimits): ClientLimits {
  for (const key of Object.keys(DEFAULT_CLIENT_LIMITS) as (keyof ClientLimits)[]) {
    const v = limits[key];
    if (!Number.isSafeInteger(v) || v < 0)
      throw new ClientLimitsError(key, `${key} must be a non-negative integer`);
  }
  if (limits.headersTimeoutMs === 0)
    throw new ClientLimitsError('headersTimeoutMs', 'headersTimeoutMs must be positive');
  if (limits.requestTimeoutMs !== 0 && limits.requestTimeoutMs < limits.headersTimeoutMs) {
    throw new ClientLimitsError(
      'requestTimeoutMs',
      `requestTimeoutMs (${limits.requestTimeoutMs}) must be at least headersTimeoutMs (${limits.headersTimeoutMs})`,
    );
  }
  return Object.freeze({ ...limits });
}

/** Parser error codes and the part of the request each is about (the error's `field`). */
const FIELDS: Readonly<Record<string, string>> = {
  HPE_INVALID_METHOD: 'method',
  HPE_INVALID_URL: 'url',
  HPE_INVALID_VERSION: 'version',
  HPE_INVALID_HEADER_TOKEN: 'headers',
  HPE_HEADER_OVERFLOW: 'headers',
  HPE_INVALID_CONTENT_LENGTH: 'content-length',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'content-length',
  HPE_INVALID_TRANSFER_ENCODING: 'transfer-encoding',
  HPE_INVALID_CHUNK_SIZE: 'body',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'body',
  HPE_INVALID_CONSTANT: 'version',
  HPE_LF_EXPECTED: 'headers',
  HPE_CR_EXPECTED: 'headers',
};

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

type ParserError = Error & { code?: string; reason?: string };
/** Set once a refusal is being answered: the parser reports again for each chunk that follows. */
const ANSWERED = Symbol('infergate.clientErrorAnswered');
type HttpSocket = Socket & { _httpMessage?: { headersSent?: boolean } | null; [ANSWERED]?: true };

/** The answer to a parser refusal, as the catalogue words it. */
export function clientErrorAnswer(
  err: ParserError,
  codes: ClientErrorCodes,
  limits: ClientLimits,
): { refusal: ClientRefusal; error: ApiError } {
  const code = err.code ?? '';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return {
      refusal: 'timeout',
      error: new ApiError(
        codes.timeout,
        `the request was not received in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms)`,
      ),
    };
  }
  const field = FIELDS[code];
  if (code === 'HPE_HEADER_OVERFLOW') {
    return {
      refusal: 'headers_too_large',
      error: new ApiError(codes.headersTooLarge, 'the request headers are larger than the limit', {
        field: 'headers',
      }),
    };
  }
  const why = (err.reason ?? err.message).replace(/\s+/g, ' ').slice(0, 200);
  return {
    refusal: 'bad_request',
    error: new ApiError(
      codes.badRequest,
      `the HTTP request cannot be parsed: ${why}${code === '' ? '' : ` (${code})`}`,
      field === undefined ? {} : { field },
    ),
  };
}

/** A complete HTTP/1.1 response carrying the error, with `Connection: close`. */
export function rawErrorResponse(error: ApiError): string {
  const body = JSON.stringify(error.toJSON());
  const reason = REASONS[error.statusCode] ?? 'Error';
  return (
    `HTTP/1.1 ${error.statusCode} ${reason}\r\n` +
    'Content-Type: application/json\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

export interface ClientLimitHooks {
  /** Told of each refusal (a metric, a log line). */
  onRefusal?(refusal: ClientRefusal): void;
}

/**
 * Sets the timeouts and the cap on a server that has not started listening (node reads the
 * interval of its connection checks at `listen`).
 */
export function applyClientLimits(server: Server, limits: ClientLimits, hooks: ClientLimitHooks = {}): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Node checks both timeouts on this interval (30 s by default, which let a slow head live 90 s).
  const interval = Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4)));
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = interval;
  if (limits.maxConnections > 0) {
    server.maxConnections = limits.maxConnections;
    server.on('drop', () => hooks.onRefusal?.('connection_limit'));
  }
  // A handshake that failed (plain HTTP on the TLS port, an untrusted or missing client
  // certificate, no common protocol): node destroys the socket either way; this counts it.
  if (server instanceof TlsServer) server.on('tlsClientError', () => hooks.onRefusal?.('tls_handshake'));
}

/**
 * The `clientError` listener (fastify's `clientErrorHandler` option): the parser's refusal
 * answered from the catalogue, then the connection closed.
 */
export function clientErrorHandler(
  codes: ClientErrorCodes,
  limits: ClientLimits,
  hooks: ClientLimitHooks = {},
): (err: Error, socket: Socket) => void {
  return (err: ParserError, socket: HttpSocket) => {
    if (socket[ANSWERED] === true) return;
    if (err.code === 'ECONNRESET' || socket.destroyed) {
      socket.destroy();
      return;
    }
    socket[ANSWERED] = true;
    const { refusal, error } = clientErrorAnswer(err, codes, limits);
    hooks.onRefusal?.(refusal);
    // As node does: answer only when nothing of a response has been written on the connection.
    if (socket.writable && socket._httpMessage?.headersSent !== true) {
      socket.end(rawErrorResponse(error));
      // Closed once written (or at once on an error): a client that never reads cannot keep it.
      socket.once('finish', () => socket.destroy());
      socket.once('error', () => socket.destroy());
    } else {
      socket.destroy();
    }
  };
}
