/**
 * Writing a new policy version (`policy apply`, `policy rollback`) and, with `--wait`, waiting
 * until every live gateway has acknowledged it: ACK, NACK with its errors, or the time running out.
 */
import { hostname, userInfo } from 'node:os';
import type { Redis } from 'ioredis';
import type { RedisTarget } from '../common/redis/connection.js';
import type { FleetKeys } from '../common/redis/keys.js';
import { sha256 } from '../gateway/fleet/redis-source.js';
import type { GatewayRecord, RedisPolicyStore } from '../gateway/fleet/redis-store.js';
import { EXIT, ExitError, positiveInt } from './args.js';
import { connect, type FleetIo, type FleetValues } from './fleet-store.js';
import { table } from './table.js';

export function defaultAuthor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container): keep 'unknown'
  }
  return `${user}@${hostname()}`;
}

export function waitTimeout(v: FleetValues): number {
  return (v.timeout === undefined ? 30 : positiveInt(v.timeout, '--timeout')) * 1000;
}

export async function publish(
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
