/**
 * Fleet mode for canaries: each rollout's state lives in Redis, and one gateway per model, the
 * leader, judges its steps. Leadership is a lock taken with SET NX PX and renewed while held; each
 * taking draws a fencing token from a counter (INCR). Every write of the state is one script that
 * checks the state's version (compare and set) and, for a leader's judgement, that the lock still
 * holds its token: a leader that lost its lock, or died mid-step, can never write a step twice, and
 * the next leader continues the stored step with the time already spent in it, so none is skipped
 * or repeated. Followers apply what the leader wrote (its weights) and never judge. An operator's
 * command on any gateway is written with the version check only; the leader then follows it.
 * Keys: PREFIXcanary:MODEL (hash), PREFIXcanary:MODEL:leader, :token, :log (docs/redis.md).
 */
import type { Logger } from '../../common/logging.js';
import type { FleetKeys } from '../../common/redis/keys.js';
import type { RedisLink } from '../../common/redis/link.js';
import type { CanaryController, PersistedCanary } from '../rollout/canary.js';
import type { CanaryStateName } from '../rollout/metrics.js';
import type { CanaryCoordinator } from '../rollout/rollouts.js';

const WRITE = `
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if v ~= tonumber(ARGV[1]) then return -1 end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return -2 end
local stored = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
local token = stored
if ARGV[3] ~= '' then token = tonumber(ARGV[3]) end
if token < stored then return -3 end
redis.call('HSET', KEYS[1], 'version', v + 1, 'token', token, 'config', ARGV[4], 'state', ARGV[5],
  'step', ARGV[6], 'stepStartedAt', ARGV[7], 'reason', ARGV[8], 'by', ARGV[9])
redis.call('RPUSH', KEYS[3], cjson.encode({version = v + 1, token = token, state = ARGV[5],
  step = tonumber(ARGV[6]), by = ARGV[9]}))
redis.call('LTRIM', KEYS[3], -200, -1)
return v + 1`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface CanaryFleetOptions {
  readonly link: RedisLink;
  readonly keys: FleetKeys;
  readonly gatewayId: string;
  readonly logger: Logger;
  /** How long a leader's lock lasts without renewal (default 5000 ms); renewed every third of it. */
  readonly leaseMs?: number;
  /** Wall-clock time (ms since the epoch), shared by the fleet for when a step began. */
  readonly wallNow?: () => number;
}

export function canaryKeys(keys: FleetKeys, model: string) {
  const base = `${keys.prefix}canary:${model}`;
  return { state: base, leader: `${base}:leader`, token: `${base}:token`, log: `${base}:log` };
}

interface Member {
  readonly controller: CanaryController;
  readonly keys: ReturnType<typeof canaryKeys>;
  timer: NodeJS.Timeout | undefined;
  /** `gatewayId:token` while this gateway holds the lock. */
  lock: string | undefined;
  token: number;
  version: number;
  busy: boolean;
}

export class CanaryFleet implements CanaryCoordinator {
  private readonly members = new Map<CanaryController, Member>();
  private readonly leaseMs: number;
  private readonly wallNow: () => number;

  constructor(private readonly opts: CanaryFleetOptions) {
    this.leaseMs = opts.leaseMs ?? 5000;
    this.wallNow = opts.wallNow ?? Date.now;
  }

  attach(controller: CanaryController): void {
    const m: Member = {
      controller,
      keys: canaryKeys(this.opts.keys, controller.model),
      timer: undefined,
      lock: undefined,
      token: 0,
      version: -1,
      busy: false,
    };
    controller.judging = false;
    controller.onTransition = (p) => void this.write(m, p);
    this.members.set(controller, m);
    const loop = () => {
      void this.sync(m).finally(() => {
        if (this.members.get(controller) === m) m.timer = setTimeout(loop, Math.max(20, this.leaseMs / 3));
      });
    };
    loop();
  }

  detach(controller: CanaryController): void {
    const m = this.members.get(controller);
    if (m === undefined) return;
    this.members.delete(controller);
    clearTimeout(m.timer);
  }

  /** Whether this gateway leads the rollout of `model` now. */
  leads(model: string): boolean {
    for (const m of this.members.values()) if (m.controller.model === model) return m.lock !== undefined;
    return false;
  }

  /** Stops; `release` false leaves the locks to expire, as a crash would. */
  async close(release = true): Promise<void> {
    const held = [...this.members.values()];
    for (const m of held) this.detach(m.controller);
    if (!release) return;
    await Promise.all(
      held
        .filter((m) => m.lock !== undefined)
        .map((m) => this.opts.link.cmd.eval(RELEASE, 1, m.keys.leader, m.lock as string).catch(() => {})),
    );
  }

  private async sync(m: Member): Promise<void> {
    if (m.busy || !this.opts.link.reachable) return;
    m.busy = true;
    try {
      await this.lead(m);
      const c = m.controller;
      const stored = await this.opts.link.cmd.hgetall(m.keys.state);
      const version = Number(stored.version ?? 0);
      if (stored.config !== c.key) {
        // No state yet, or a rollout of another canary section: the leader starts this one.
        if (m.lock !== undefined) {
          m.version = version;
          await this.write(m, c.persisted());
        }
      } else if (version !== m.version) {
        m.version = version;
        c.restore({
          state: stored.state as CanaryStateName,
          step: Number(stored.step),
          stepAgeMs: Math.max(0, this.wallNow() - Number(stored.stepStartedAt)),
          reason: stored.reason === undefined || stored.reason === '' ? null : stored.reason,
        });
      }
      c.judging = m.lock !== undefined && stored.config === c.key && version === m.version;
    } catch (err) {
      this.opts.logger.warn({ err, model: m.controller.model }, 'canary: the fleet state could not be read');
    } finally {
      m.busy = false;
    }
  }

  /** Renews the lock while held, takes it when free. */
  private async lead(m: Member): Promise<void> {
    const redis = this.opts.link.cmd;
    if (m.lock !== undefined) {
      if (Number(await redis.eval(RENEW, 1, m.keys.leader, m.lock, String(this.leaseMs))) === 1) return;
      this.opts.logger.warn({ model: m.controller.model, token: m.token }, 'canary: leadership lost');
      m.lock = undefined;
      m.controller.judging = false;
    }
    if ((await redis.exists(m.keys.leader)) === 1) return;
    const token = await redis.incr(m.keys.token);
    const value = `${this.opts.gatewayId}:${token}`;
    if ((await redis.set(m.keys.leader, value, 'PX', this.leaseMs, 'NX')) !== 'OK') return;
    m.lock = value;
    m.token = token;
    this.opts.logger.info({ model: m.controller.model, token }, 'canary: this gateway leads the rollout');
  }

  /** Writes a transition: a leader's with its lock, an operator's command on a follower without. */
  private async write(m: Member, p: PersistedCanary): Promise<void> {
    const c = m.controller;
    try {
      const result = Number(
        await this.opts.link.cmd.eval(
          WRITE,
          3,
          m.keys.state,
          m.keys.leader,
          m.keys.log,
          String(Math.max(0, m.version)),
          m.lock ?? '',
          m.lock === undefined ? '' : String(m.token),
          c.key,
          p.state,
          String(p.step),
          String(this.wallNow() - p.stepAgeMs),
          p.reason ?? '',
          this.opts.gatewayId,
        ),
      );
      if (result > 0) {
        m.version = result;
        return;
      }
      // Refused (another wrote first, or the lock is gone): the next sync restores what is stored.
      m.version = -1;
      c.judging = false;
      this.opts.logger.warn(
        { model: c.model, result },
        'canary: a transition was refused by the fleet state',
      );
    } catch (err) {
      m.version = -1;
      this.opts.logger.warn({ err, model: c.model }, 'canary: the fleet state could not be written');
    }
  }
}
