/**
 * `infergate keys create|list|revoke`: API keys. A key is `igk_` and 32 base64url characters (192
 * random bits); only its SHA-256 is stored, and the key is printed once, on creation. With
 * `--redis URL` it goes into the fleet's store (every gateway knows it within a second, and a
 * revocation reaches them as fast); without, `create` prints the `auth.apiKeys` entry for a policy.
 */
import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../common/hash.js';
import { describeRedisError, type RedisTarget } from '../common/redis/connection.js';
import type { FleetKeys } from '../common/redis/keys.js';
import { KEY_PREFIX } from '../gateway/admission/credentials.js';
import { RedisKeyStore, type StoredKey } from '../gateway/fleet/redis-keys.js';
import { RedisPolicyStore } from '../gateway/fleet/redis-store.js';
import { compilePolicy } from '../gateway/policy/compile.js';
import { NAME_PATTERN } from '../gateway/policy/schema.js';
import { EXIT, ExitError, parse, positiveInt, UsageError } from './args.js';
import { EXIT_BAD_FILE, readFlagFile } from './edge-flags.js';
import { connect } from './fleet-store.js';
import { FLEET_FLAGS, fleetTarget } from './fleet.js';
import { table } from './table.js';

export const KEYS_HELP = `infergate keys create --id ID [--models a,b] [--rps N] [--burst N] [--expires 30d|DATE] [--key-file FILE] [--redis URL]
infergate keys list --redis URL [--json]
infergate keys revoke ID --redis URL

API keys. create prints the new key once (keep it: only its SHA-256 is stored). --key-file FILE
takes the key from FILE instead (a secret made beforehand, e.g. by a deployment; igk_ and 32
base64url characters) and prints nothing on stdout; run again with the same file and id, it
exits 0 (the key is stored already). --models limits
it to those models (default: every model); --rps and --burst give it its own rate limit; --expires
takes a duration (90m, 12h, 30d) or an RFC 3339 time. With --redis the key goes into the fleet's
store and every gateway accepts it within a second; without, create prints the auth.apiKeys entry
to paste into a policy. revoke takes effect on every gateway within the same time.
Exit status: 3 the id exists already, 4 Redis unreachable.`;

const MODEL_RE = new RegExp(NAME_PATTERN);
const KEY_RE = new RegExp(`^${KEY_PREFIX}[A-Za-z0-9_-]{32}$`);

/** The option table of `infergate keys`. */
export const KEYS_OPTIONS = {
  ...FLEET_FLAGS,
  id: { type: 'string' },
  models: { type: 'string' },
  rps: { type: 'string' },
  burst: { type: 'string' },
  expires: { type: 'string' },
  'key-file': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** `--key-file FILE`: the key it holds (surrounding white space ignored), checked for its form. */
export function keyFromFile(file: string): string {
  const key = readFlagFile('--key-file', file).toString('utf8').trim();
  if (!KEY_RE.test(key)) {
    throw new ExitError(
      EXIT_BAD_FILE,
      `--key-file ${file}: not an infergate key (${KEY_PREFIX} and 32 base64url characters, as 'infergate keys create' makes)`,
    );
  }
  return key;
}

export function generateKey(): string {
  return `${KEY_PREFIX}${randomBytes(24).toString('base64url')}`;
}

/** `30d`, `12h`, `90m`, `45s`, or an RFC 3339 time: ms since the epoch. */
export function parseExpiry(text: string, now: number): number {
  const m = /^(\d{1,6})([smhd])$/.exec(text);
  if (m !== null) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return now + Number(m[1]) * unit;
  }
  const t = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text)
    ? Date.parse(text)
    : Number.NaN;
  if (!Number.isFinite(t)) {
    throw new UsageError(`--expires takes a duration (90m, 12h, 30d) or an RFC 3339 time, not '${text}'`);
  }
  if (t <= now) throw new UsageError(`--expires ${text} is in the past`);
  return t;
}

function rate(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 1_000_000)
    throw new UsageError(`${name} must be a positive number, not '${value}'`);
  return n;
}

async function withKeys<T>(
  target: RedisTarget,
  keys: FleetKeys,
  fn: (s: RedisKeyStore) => Promise<T>,
): Promise<T> {
  const redis = await connect(target, 'infergate-keys');
  try {
    return await fn(new RedisKeyStore(redis, keys));
  } catch (e) {
    if (e instanceof ExitError || e instanceof UsageError) throw e;
    throw new ExitError(EXIT.redisUnreachable, describeRedisError(target, e));
  } finally {
    redis.disconnect();
  }
}

const out = (text: string) => process.stdout.write(text);

export async function keysCommand(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  const { values, positionals } = parse(rest, KEYS_OPTIONS, true);
  const fleet = fleetTarget(values);
  if (verb === 'create') {
    if (positionals.length > 0) throw new UsageError(`create takes no arguments, not '${positionals[0]}'`);
    const id = values.id;
    if (id === undefined || !MODEL_RE.test(id)) {
      throw new UsageError("--id is required: letters, digits, '_', '.', '-' (at most 128)");
    }
    const models = values.models?.split(',').map((m) => m.trim());
    for (const m of models ?? [])
      if (!MODEL_RE.test(m)) throw new UsageError(`--models: '${m}' is not a model name`);
    const requestsPerSecond = rate(values.rps, '--rps');
    const burst = values.burst === undefined ? undefined : positiveInt(values.burst, '--burst');
    if (burst !== undefined && requestsPerSecond === undefined) throw new UsageError('--burst needs --rps');
    const now = Date.now();
    const expiresAt = values.expires === undefined ? undefined : parseExpiry(values.expires, now);
    const keyFile = values['key-file'];
    const key = keyFile === undefined ? generateKey() : keyFromFile(keyFile);
    const record: StoredKey = {
      id,
      sha256: sha256Hex(key),
      models,
      requestsPerSecond,
      burst,
      expiresAt,
      createdAt: now,
      revokedAt: undefined,
    };
    if (fleet === undefined) {
      if (keyFile === undefined) {
        out(`${key}\n`);
        process.stderr.write(`# the key above is shown once; add this entry to the policy's auth.apiKeys:\n`);
      } else {
        process.stderr.write(`# the key of ${keyFile}; add this entry to the policy's auth.apiKeys:\n`);
      }
      process.stderr.write(`${policyEntry(record)}\n`);
      return;
    }
    const { created, same, checked } = await withKeys(fleet.target, fleet.keys, async (s) => {
      const created = await s.create(record);
      // The same key from the same file, stored before (a deployment's job run again): done.
      const same =
        !created &&
        keyFile !== undefined &&
        (await s.list()).some((k) => k.id === id && k.sha256 === record.sha256 && k.revokedAt === undefined);
      return { created, same, checked: await policyChecksKeys(s) };
    });
    if (same) {
      process.stderr.write(`# key '${id}' (from ${keyFile}) is stored already in ${fleet.target.display}\n`);
      return;
    }
    if (!created)
      throw new ExitError(EXIT.conflict, `a key with id '${id}' exists already (ids are never reused)`);
    if (keyFile === undefined) {
      out(`${key}\n`);
      process.stderr.write(`# key '${id}' stored in ${fleet.target.display}; the key above is shown once\n`);
    } else {
      process.stderr.write(`# key '${id}' (from ${keyFile}) stored in ${fleet.target.display}\n`);
    }
    if (!checked) {
      process.stderr.write(
        '# warning: the newest policy in the store has no auth section: gateways do not check keys\n',
      );
    }
    return;
  }
  if (fleet === undefined) throw new UsageError(`${verb ?? 'a verb'} needs --redis URL`);
  if (verb === 'list') {
    const list = await withKeys(fleet.target, fleet.keys, (s) => s.list());
    if (values.json === true) {
      out(`${JSON.stringify(list.map(({ sha256: _, ...k }) => k))}\n`);
      return;
    }
    const time = (t: number | undefined) => (t === undefined ? '-' : new Date(t).toISOString());
    const now = Date.now();
    out(
      table(
        ['ID', 'STATE', 'MODELS', 'RPS', 'EXPIRES', 'CREATED'],
        list.map((k) => [
          k.id,
          k.revokedAt !== undefined
            ? 'revoked'
            : k.expiresAt !== undefined && k.expiresAt <= now
              ? 'expired'
              : 'active',
          k.models === undefined ? '*' : k.models.join(','),
          k.requestsPerSecond === undefined
            ? '-'
            : `${k.requestsPerSecond}${k.burst === undefined ? '' : `/${k.burst}`}`,
          time(k.expiresAt),
          time(k.createdAt),
        ]),
      ),
    );
    return;
  }
  if (verb === 'revoke') {
    const id = positionals[0];
    if (id === undefined || positionals.length > 1) throw new UsageError('revoke takes one key id');
    const r = await withKeys(fleet.target, fleet.keys, (s) => s.revoke(id));
    if (r === 'unknown') throw new Error(`no key with id '${id}'`);
    out(r === 'already' ? `key '${id}' was revoked already\n` : `key '${id}' revoked\n`);
    return;
  }
  throw new UsageError(`unknown verb '${verb ?? ''}' (create, list, revoke)`);
}

/** Whether the store's newest policy has an auth section (true when there is none to read). */
async function policyChecksKeys(s: RedisKeyStore): Promise<boolean> {
  const current = await new RedisPolicyStore(s.redis, s.keys).current();
  if (current === undefined) return true;
  const compiled = compilePolicy(current.source);
  return !compiled.ok || compiled.policy.auth !== undefined;
}

function policyEntry(k: StoredKey): string {
  const parts = [`id: ${k.id}`, `sha256: "${k.sha256}"`];
  if (k.models !== undefined) parts.push(`models: [${k.models.join(', ')}]`);
  if (k.requestsPerSecond !== undefined) {
    parts.push(
      `rateLimit: { requestsPerSecond: ${k.requestsPerSecond}${k.burst === undefined ? '' : `, burst: ${k.burst}`} }`,
    );
  }
  if (k.expiresAt !== undefined) parts.push(`expiresAt: "${new Date(k.expiresAt).toISOString()}"`);
  return `    - { ${parts.join(', ')} }`;
}
