/**
 * Every Redis key and channel of fleet mode, under one prefix (default `infergate:`). The layout is
 * documented key by key in docs/redis.md; change both together.
 */
export const DEFAULT_PREFIX = 'infergate:';

export interface FleetKeys {
  readonly prefix: string;
  /** String: the number of the newest policy version (0 or missing: none yet). */
  readonly policyVersion: string;
  /** Hash per version: version, source, sha256, author, message, time. */
  policy(version: number | string): string;
  /** List of version numbers, newest first, bounded (the history). */
  readonly policyHistory: string;
  /** Channel: a new version's number, published by the apply that wrote it. */
  readonly policyEvents: string;
  /** Sorted set: gateway id -> time (ms) of its last heartbeat. */
  readonly gateways: string;
  /** Hash with a TTL per gateway: the version it serves, its last ACK or NACK. */
  gateway(id: string): string;
  /** Channel: a gateway's ACK or NACK (JSON), for `policy apply --wait`. */
  readonly gatewayAcks: string;
  /** Sorted set per backend name: registered endpoint origin -> expiry time (ms, Redis clock). */
  backend(name: string): string;
  /** Hash with a TTL per registered endpoint: models, readiness, queue depth. */
  endpoint(backend: string, origin: string): string;
  /** Sorted set: backend names that have (or had) registered endpoints -> last change (ms). */
  readonly backends: string;
  /** Channel: the name of a backend whose registrations changed. */
  readonly endpointEvents: string;
  /** Hash: API key id -> its record (JSON: sha256, models, rate limit, expiry, revocation). */
  readonly apiKeys: string;
  /** String: counts up with every change of `apiKeys` (the gateways' poll reads it). */
  readonly apiKeysVersion: string;
  /** Channel: the id of a key created or revoked. */
  readonly apiKeysEvents: string;
  /** String per rate-limit bucket: its theoretical arrival time (GCRA), with a TTL. */
  rateBucket(bucket: string): string;
}

export function checkPrefix(prefix: string): string {
  if (!/^[A-Za-z0-9:_.{}-]{0,64}$/.test(prefix)) {
    throw new Error(`a Redis prefix is up to 64 characters of A-Z a-z 0-9 : _ . - { }, not '${prefix}'`);
  }
  return prefix;
}

export function fleetKeys(prefix: string = DEFAULT_PREFIX): FleetKeys {
  const p = checkPrefix(prefix);
  return {
    prefix: p,
    policyVersion: `${p}policy:version`,
    policy: (version) => `${p}policy:v:${version}`,
    policyHistory: `${p}policy:history`,
    policyEvents: `${p}policy:events`,
    gateways: `${p}gateways`,
    gateway: (id) => `${p}gateway:${id}`,
    gatewayAcks: `${p}gateway:acks`,
    backend: (name) => `${p}backend:${name}`,
    endpoint: (backend, origin) => `${p}endpoint:${backend}:${origin}`,
    backends: `${p}backends`,
    endpointEvents: `${p}backend:events`,
    apiKeys: `${p}apikeys`,
    apiKeysVersion: `${p}apikeys:version`,
    apiKeysEvents: `${p}apikeys:events`,
    rateBucket: (bucket) => `${p}rl:${bucket}`,
  };
}
