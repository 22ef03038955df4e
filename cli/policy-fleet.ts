/**
 * The control plane of fleet mode: `infergate policy apply|get|history|diff|rollback|status
 * --redis URL`. One-shot connections (no reconnect); Redis unreachable is one line and exit 4.
 */
import { readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import type { Redis } from 'ioredis';
import { describeRedisError, openRedis, type RedisTarget } from '../common/redis/connection.js';
import type { FleetKeys } from '../common/redis/keys.js';
import { compilePolicy, formatIssue } from '../gateway/policy/compile.js';
import { sha256 } from '../gateway/fleet/redis-source.js';
import { type GatewayRecord, RedisPolicyStore, type StoredPolicy } from '../gateway/fleet/redis-store.js';
import { EXIT, ExitError, nonNegativeInt, positiveInt, UsageError } from './args.js';
import { describeChanges, unifiedDiff } from './diff.js';
import { table } from './table.js';

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

type Out = (text: string) => void;

export interface FleetIo {
  readonly out: Out;
  readonly err: Out;
}

/** Opens the store; ExitError 4 when Redis does not answer. */
async function connect(target: RedisTarget, name: string): Promise<Redis> {
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
async function withStore<T>(
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

function checkPolicy(text: string, name: string, io: FleetIo): void {
  const result = compilePolicy(text);
  if (!result.ok) {
    for (const issue of result.errors) io.err(`${formatIssue(issue)}\n`);
    throw new PolicyInvalid(
      `${name}: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}; nothing written`,
    );
  }
  for (const w of result.policy.warnings) io.err(`warning: ${formatIssue(w)}\n`);
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function defaultAuthor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container): keep 'unknown'
  }
  return `${user}@${hostname()}`;
}

function versionArg(value: string | undefined, name: string): number | undefined {
  return value === undefined ? undefined : positiveInt(value, name);
}

export async function applyCommand(
  target: RedisTarget,
  keys: FleetKeys,
  file: string,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  const text = await readText(file);
  checkPolicy(text, file, io);
  const ifVersion =
    v['if-version'] === undefined ? undefined : nonNegativeInt(v['if-version'], '--if-version');
  const timeoutMs = waitTimeout(v);
  await withStore(target, keys, (store) =>
    publish(
      store,
      target,
      { text, message: v.message ?? `apply ${file}`, author: v.author, ifVersion },
      v.wait === true,
      timeoutMs,
      io,
    ),
  );
}

function waitTimeout(v: FleetValues): number {
  return (v.timeout === undefined ? 30 : positiveInt(v.timeout, '--timeout')) * 1000;
}

async function publish(
  store: RedisPolicyStore,
  target: RedisTarget,
  req: { text: string; message: string; author: string | undefined; ifVersion: number | undefined },
  wait: boolean,
  timeoutMs: number,
  io: FleetIo,
): Promise<void> {
  // Listen for acknowledgements before writing, so none is missed.
  const acks = wait ? await AckListener.open(target, store.keys) : undefined;
  try {
    const result = await store.apply({
      source: req.text,
      sha256: sha256(req.text),
      author: req.author ?? defaultAuthor(),
      message: req.message,
      ...(req.ifVersion !== undefined ? { ifVersion: req.ifVersion } : {}),
    });
    if (result.kind === 'conflict') {
      throw new ExitError(
        EXIT.conflict,
        `refused: the store is at version ${result.version}, not ${req.ifVersion} (someone applied since); nothing written`,
      );
    }
    if (result.kind === 'unchanged') {
      io.out(
        `unchanged: version ${result.version} already has this policy (sha256 ${sha256(req.text).slice(0, 12)})\n`,
      );
    } else {
      io.out(`applied version ${result.version} (sha256 ${sha256(req.text).slice(0, 12)})\n`);
    }
    if (acks !== undefined) await waitForFleet(store, acks, result.version, timeoutMs, io);
  } finally {
    acks?.close();
  }
}

/** The acknowledgements channel, so that `--wait` reacts at once (with a poll behind it). */
class AckListener {
  private wake: (() => void) | undefined;

  private constructor(private readonly redis: Redis) {
    redis.on('message', () => this.wake?.());
  }

  static async open(target: RedisTarget, keys: FleetKeys): Promise<AckListener> {
    const redis = await connect(target, 'infergate-policy-wait');
    await redis.subscribe(keys.gatewayAcks);
    return new AckListener(redis);
  }

  /** Resolves at the next acknowledgement or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  close(): void {
    this.redis.disconnect();
  }
}

type Standing = 'ack' | 'nack' | 'pending';

function standing(g: GatewayRecord, version: number): Standing {
  if (g.lastVersion < version) return 'pending';
  if (g.lastVersion > version) return g.servingVersion >= version ? 'ack' : 'nack';
  return g.lastResult;
}

async function waitForFleet(
  store: RedisPolicyStore,
  acks: AckListener,
  version: number,
  timeoutMs: number,
  io: FleetIo,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const gateways = await store.gateways();
    const states = gateways.map((g) => ({ g, s: standing(g, version) }));
    const done = states.every((x) => x.s !== 'pending');
    const timedOut = Date.now() >= deadline;
    if (done || timedOut) {
      if (gateways.length === 0) {
        io.out(`no live gateway to wait for (none has a heartbeat under prefix '${store.keys.prefix}')\n`);
        return;
      }
      io.out(
        table(
          ['GATEWAY', 'RESULT', 'SERVING', 'DETAIL'],
          states.map(({ g, s }) => [
            g.id,
            s === 'ack' ? 'ACK' : s === 'nack' ? 'NACK' : 'PENDING',
            String(g.servingVersion),
            s === 'nack'
              ? (g.errors[0] ?? 'refused')
              : s === 'pending'
                ? `last saw version ${g.lastVersion}`
                : '',
          ]),
        ),
      );
      for (const { g, s } of states) {
        if (s === 'nack') for (const e of g.errors.slice(1)) io.out(`  ${g.id}: ${e}\n`);
      }
      const refused = states.filter((x) => x.s === 'nack').length;
      if (refused > 0) {
        throw new ExitError(
          EXIT.refused,
          `${refused} of ${gateways.length} gateways refused version ${version}`,
        );
      }
      if (!done) {
        const pending = states.filter((x) => x.s === 'pending').length;
        throw new ExitError(
          EXIT.timeout,
          `timed out after ${Math.round(timeoutMs / 1000)} s: ${pending} of ${gateways.length} gateways have not acknowledged version ${version}`,
        );
      }
      io.out(`all ${gateways.length} gateways serve version ${version}\n`);
      return;
    }
    await acks.next(Math.min(250, Math.max(1, deadline - Date.now())));
  }
}

export async function getCommand(
  target: RedisTarget,
  keys: FleetKeys,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  const version = versionArg(v.version, '--version');
  await withStore(target, keys, async (store) => {
    const p = await stored(store, version);
    io.err(
      `# version ${p.version}, ${new Date(p.time).toISOString()}, ${p.author}: ${p.message} (sha256 ${p.sha256.slice(0, 12)})\n`,
    );
    io.out(p.source.endsWith('\n') ? p.source : `${p.source}\n`);
  });
}

async function stored(store: RedisPolicyStore, version: number | undefined): Promise<StoredPolicy> {
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

export async function historyCommand(
  target: RedisTarget,
  keys: FleetKeys,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  const limit = v.limit === undefined ? 20 : positiveInt(v.limit, '--limit');
  await withStore(target, keys, async (store) => {
    const rows = await store.history(limit);
    if (rows.length === 0) {
      io.out(`no policy applied yet (prefix '${keys.prefix}')\n`);
      return;
    }
    io.out(
      table(
        ['VERSION', 'TIME', 'AUTHOR', 'MESSAGE', 'SHA256'],
        rows.map((r, i) => [
          `${r.version}${i === 0 ? ' *' : ''}`,
          new Date(r.time).toISOString().replace('T', ' ').slice(0, 19),
          r.author,
          r.message,
          r.sha256.slice(0, 12),
        ]),
      ),
    );
  });
}

export async function diffCommand(
  target: RedisTarget,
  keys: FleetKeys,
  file: string | undefined,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  if (file !== undefined && (v.from !== undefined || v.to !== undefined)) {
    throw new UsageError('diff takes FILE or --from A --to B, not both');
  }
  if (file === undefined && (v.from === undefined || v.to === undefined)) {
    throw new UsageError('diff takes FILE (against the current version) or --from A --to B');
  }
  const fileText = file === undefined ? undefined : await readText(file);
  await withStore(target, keys, async (store) => {
    const a = await stored(store, versionArg(v.from, '--from'));
    const b =
      fileText === undefined
        ? await stored(store, versionArg(v.to, '--to'))
        : { version: undefined, source: fileText };
    const aName = `version ${a.version}`;
    const bName = b.version === undefined ? (file as string) : `version ${b.version}`;
    io.out(`${aName} -> ${bName}, in words:\n`);
    for (const line of describeChanges(a.source, b.source)) io.out(`  ${line}\n`);
    const lines = unifiedDiff(a.source, b.source, aName, bName);
    io.out(lines === '' ? '\nin lines: identical\n' : `\nin lines:\n${lines}`);
  });
}

export async function rollbackCommand(
  target: RedisTarget,
  keys: FleetKeys,
  versionText: string | undefined,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  const wanted = versionArg(versionText, 'VERSION');
  const timeoutMs = waitTimeout(v);
  await withStore(target, keys, async (store) => {
    const history = await store.history();
    const current = history[0];
    if (current === undefined) throw new Error(`the store holds no policy yet (prefix '${keys.prefix}')`);
    const version = wanted ?? history[1]?.version;
    if (version === undefined)
      throw new Error(`version ${current.version} is the only one: nothing to roll back to`);
    const old = await stored(store, version);
    checkPolicy(old.source, `version ${version}`, io);
    await publish(
      store,
      target,
      {
        text: old.source,
        message: v.message ?? `rollback to version ${version}`,
        author: v.author,
        ifVersion: current.version,
      },
      v.wait === true,
      timeoutMs,
      io,
    );
  });
}

export async function statusCommand(target: RedisTarget, keys: FleetKeys, io: FleetIo): Promise<void> {
  await withStore(target, keys, async (store) => {
    const [latest, gateways] = await Promise.all([store.latestVersion(), store.gateways()]);
    io.out(
      `store: version ${latest}${latest === 0 ? ' (empty)' : ''}, prefix '${keys.prefix}', ${gateways.length} live gateway${gateways.length === 1 ? '' : 's'}\n`,
    );
    if (gateways.length === 0) return;
    const now = Date.now();
    io.out(
      table(
        ['GATEWAY', 'HOST', 'PID', 'SERVING', 'FROM', 'LAST', 'RESULT', 'BEHIND', 'AGE'],
        gateways.map((g) => [
          g.id,
          g.host,
          String(g.pid),
          String(g.servingVersion),
          g.servingFrom,
          String(g.lastVersion),
          g.lastResult === 'ack' ? 'ACK' : 'NACK',
          String(Math.max(0, latest - g.servingVersion)),
          `${Math.max(0, Math.round((now - g.lastAt) / 1000))}s`,
        ]),
      ),
    );
    for (const g of gateways) {
      if (g.lastResult === 'nack')
        for (const e of g.errors) io.out(`  ${g.id} refused version ${g.lastVersion}: ${e}\n`);
    }
  });
}
