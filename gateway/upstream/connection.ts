/**
 * How the gateway connects to a backend replica: the one place that builds undici's connection
 * options, for inference pools and for health-check clients alike (TLS and mTLS options join here).
 */
import { Client, type Dispatcher, Pool } from 'undici';

export interface EndpointPoolOptions {
  /** Connections kept per endpoint. */
  connections?: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/** Makes the dispatcher that carries an endpoint's inference requests (a `Pool` by default). */
export type DispatcherFactory = (origin: string) => Dispatcher;

/** undici `Pool` options for inference traffic to one origin. */
export function upstreamPoolOptions(opts: EndpointPoolOptions = {}): Pool.Options {
  return {
    connections: opts.connections ?? 128,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
    connectTimeout: opts.connectTimeoutMs ?? 2_000,
    // Deadlines are the gateway's own (timeoutMs); undici's defaults are minutes.
    headersTimeout: 0,
    bodyTimeout: 0,
  };
}

/** One `Pool` per origin, for inference requests. */
export function createDispatcher(origin: string, opts: EndpointPoolOptions = {}): Dispatcher {
  return new Pool(origin, upstreamPoolOptions(opts));
}

/** A connection of its own for an endpoint's health checks, so they never queue behind inference. */
export function createHealthCheckClient(origin: string, timeoutMs: number): Dispatcher {
  return new Client(origin, {
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: 60_000,
  });
}
