/**
 * The control plane's access to the policy store: one-shot connections (no reconnect; Redis
 * unreachable is one line and exit 4), local validation before anything is written, and reading
 * a version or a file.
 */
import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { describeRedisError, openRedis, type RedisTarget } from '../common/redis/connection.js';
import type { FleetKeys } from '../common/redis/keys.js';
import { RedisPolicyStore, type StoredPolicy } from '../gateway/fleet/redis-store.js';
import { compilePolicy, formatIssue } from '../gateway/policy/compile.js';
import { EXIT, ExitError, positiveInt, UsageError } from './args.js';

export interface FleetValues {
  message?: string | undefined;
  'if-version'?: string | undefined;
  wait?: boolean | undefined;
  timeout?: string | undefined;
  version?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  limit?: string | undefined;
  author?: string | undefined;
}

export type Out = (text: string) => void;

export interface FleetIo {
  readonly out: Out;
  readonly err: Out;
}

/** Opens the store; ExitError 4 when Redis does not answer. */
export async function connect(target: RedisTarget, name: string): Promise<Redis> {
  const redis = openRedis(target, { role: 'cli', name });
  let last: unknown;
  redis.on('error', (e: unknown) => {
    last = e;
  });
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();
    throw new ExitError(EXIT.redisUnreachable, describeRedisError(target, last ?? e));
  }
  return redis;
}

/** Runs `fn` with the store, turning connection errors mid-way into exit 4 too. */
export async function withStore<T>(
  target: RedisTarget,
  keys: FleetKeys,
  fn: (store: RedisPolicyStore) => Promise<T>,
): Promise<T> {
  const redis = await connect(target, 'infergate-policy');
  try {
    return await fn(new RedisPolicyStore(redis, keys));
  } catch (e) {
    if (e instanceof ExitError || e instanceof UsageError || e instanceof PolicyInvalid) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined || /Connection is closed|Stream isn't writeable/.test((e as Error).message)) {
      throw new ExitError(EXIT.redisUnreachable, describeRedisError(target, e));
    }
    throw e;
  } finally {
    redis.disconnect();
  }
}

/** The policy is invalid: its errors are already printed; exit 1. */
export class PolicyInvalid extends Error {}

export function checkPolicy(text: string, name: string, io: FleetIo): void {
  const result = compilePolicy(text);
  if (!result.ok) {
    for (const issue of result.errors) io.err(`${formatIssue(issue)}\n`);
    throw new PolicyInvalid(
      `${name}: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}; nothing written`,
    );
  }
  for (const w of result.policy.warnings) io.err(`warning: ${formatIssue(w)}\n`);
}

export async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function versionArg(value: string | undefined, name: string): number | undefined {
  return value === undefined ? undefined : positiveInt(value, name);
}

export async function stored(store: RedisPolicyStore, version: number | undefined): Promise<StoredPolicy> {
  const p = version === undefined ? await store.current() : await store.get(version);
  if (p === undefined) {
    throw new Error(
      version === undefined
        ? `the store holds no policy yet (prefix '${store.keys.prefix}')`
        : `version ${version} is not in the store (never applied, or older than the history keeps)`,
    );
  }
  return p;
}
