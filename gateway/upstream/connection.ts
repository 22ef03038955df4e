/**
 * How the gateway connects to a backend replica: the one place that builds undici's connection
 * options, for inference pools and for health-check clients alike, TLS and mTLS included: a
 * backend's `tls` files are read here (and checked when a policy is applied, `checkUpstreamTls`).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { Client, type Dispatcher, Pool } from 'undici';
import type { CompiledPolicy, CompiledUpstreamTls, PolicyIssue } from '../policy/compile.js';

export interface EndpointPoolOptions {
  /** Connections kept per endpoint. */
  connections?: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/** TLS options of the connections to one backend's replicas: the files' contents, read. */
export interface UpstreamTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
}

/** Makes the dispatcher that carries an endpoint's inference requests (a `Pool` by default). */
export type DispatcherFactory = (origin: string, tls?: UpstreamTls) => Dispatcher;

/** undici's `connect` options for TLS: certificates always verified. */
function connectOptions(tls: UpstreamTls | undefined): Pick<Pool.Options, 'connect'> {
  return tls === undefined ? {} : { connect: { ...tls, rejectUnauthorized: true } };
}

/** undici `Pool` options for inference traffic to one origin. */
export function upstreamPoolOptions(opts: EndpointPoolOptions = {}, tls?: UpstreamTls): Pool.Options {
  return {
    connections: opts.connections ?? 128,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
    connectTimeout: opts.connectTimeoutMs ?? 2_000,
    // Deadlines are the gateway's own (timeoutMs); undici's defaults are minutes.
    headersTimeout: 0,
    bodyTimeout: 0,
    ...connectOptions(tls),
  };
}

/** One `Pool` per origin, for inference requests. */
export function createDispatcher(
  origin: string,
  opts: EndpointPoolOptions = {},
  tls?: UpstreamTls,
): Dispatcher {
  return new Pool(origin, upstreamPoolOptions(opts, tls));
}

/** A connection of its own for an endpoint's health checks, so they never queue behind inference. */
export function createHealthCheckClient(origin: string, timeoutMs: number, tls?: UpstreamTls): Dispatcher {
  return new Client(origin, {
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: 60_000,
    ...connectOptions(tls),
  });
}

/** A file of a backend's `tls` that cannot be used: which field, and why. */
export class UpstreamTlsError extends Error {
  constructor(
    readonly field: 'ca' | 'cert' | 'key',
    message: string,
  ) {
    super(message);
  }
}

function readTlsFile(field: 'ca' | 'cert' | 'key', file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new UpstreamTlsError(field, `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** Reads a backend's `tls` files and checks them: PEM that parses, a key that fits its certificate. */
export function loadUpstreamTls(tls: CompiledUpstreamTls): UpstreamTls {
  const ca = tls.ca === undefined ? undefined : readTlsFile('ca', tls.ca);
  const cert = tls.cert === undefined ? undefined : readTlsFile('cert', tls.cert);
  const key = tls.key === undefined ? undefined : readTlsFile('key', tls.key);
  if (ca !== undefined) parsePem('ca', tls.ca as string, () => new X509Certificate(ca));
  if (cert !== undefined && key !== undefined) {
    const x509 = parsePem('cert', tls.cert as string, () => new X509Certificate(cert));
    const k = parsePem('key', tls.key as string, () => createPrivateKey(key));
    if (!x509.checkPrivateKey(k))
      throw new UpstreamTlsError('key', `${tls.key} is not the key of the certificate ${tls.cert}`);
  }
  createSecureContext({ ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) });
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
  };
}

function parsePem<T>(field: 'ca' | 'cert' | 'key', file: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    const what = field === 'key' ? 'a PEM private key' : 'a PEM certificate';
    throw new UpstreamTlsError(field, `${file} is not ${what} (${(e as Error).message})`);
  }
}

/**
 * What this gateway must find true of a policy besides its form: every backend's `tls` files
 * readable and usable here. A policy that fails is rejected like any bad policy.
 */
export function checkUpstreamTls(policy: CompiledPolicy): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  for (const b of policy.backends.values()) {
    if (b.tls === undefined) continue;
    try {
      loadUpstreamTls(b.tls);
    } catch (e) {
      const field = e instanceof UpstreamTlsError ? e.field : 'ca';
      issues.push({ path: `backends.${b.name}.tls.${field}`, message: (e as Error).message });
    }
  }
  return issues;
}
