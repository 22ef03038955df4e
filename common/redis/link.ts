/**
 * A long-lived process's link to Redis: one connection for commands and a dedicated one for the
 * subscription, shared by everything in the process that uses the store (the policy source, the
 * registered endpoints). It reconnects with backoff, logs an outage once and the recovery once,
 * and tells its users when it is back so that they catch up.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../logging.js';
import { describeRedisError, openRedis, type RedisTarget } from './connection.js';

export class RedisLink {
  readonly cmd: Redis;
  readonly sub: Redis;
  private up = false;
  private everUp = false;
  private outageLogged = false;
  private closed = false;
  private lastError: Error | undefined;
  private starting: Promise<boolean> | undefined;
  private readonly handlers = new Map<string, ((message: string) => void)[]>();
  private readonly readyListeners: (() => void)[] = [];

  constructor(
    readonly target: RedisTarget,
    private readonly logger: Logger,
    name: string,
  ) {
    this.cmd = openRedis(target, { role: 'server', name });
    this.sub = openRedis(target, { role: 'server', name: `${name}:sub` });
    this.cmd.on('ready', () => this.connected());
    this.cmd.on('close', () => this.disconnected());
    // Errors repeat at every reconnect; the outage is logged once, by disconnected().
    this.cmd.on('error', (err: Error) => {
      this.lastError = err;
    });
    this.sub.on('message', (channel: string, message: string) => {
      for (const h of this.handlers.get(channel) ?? []) h(message);
    });
    // ioredis subscribes again by itself after a reconnect; messages sent meanwhile are lost, so
    // the users catch up when either connection is back.
    this.sub.on('ready', () => {
      void this.subscribeAll();
      for (const l of this.readyListeners) l();
    });
  }

  /**
   * Connects both; true once commands can be sent, false when Redis did not answer in time (it
   * keeps trying in the background). Later calls give the first call's answer, or true once up.
   */
  start(timeoutMs: number): Promise<boolean> {
    if (this.starting !== undefined) return this.up ? Promise.resolve(true) : this.starting;
    this.cmd.connect().catch(() => {});
    this.sub.connect().catch(() => {});
    this.starting = new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.cmd.off('ready', ready);
        resolve(false);
      }, timeoutMs);
      const ready = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.cmd.once('ready', ready);
    });
    return this.starting;
  }

  /** Whether commands can be sent now. */
  get reachable(): boolean {
    return this.up;
  }

  /** Why Redis could not be reached last, in one line without the password. */
  get lastProblem(): string {
    return this.lastError === undefined
      ? `Redis at ${this.target.display} did not answer`
      : describeRedisError(this.target, this.lastError);
  }

  /** Calls `handler` with every message on `channel`, from now on and after every reconnect. */
  subscribe(channel: string, handler: (message: string) => void): void {
    const list = this.handlers.get(channel);
    if (list !== undefined) list.push(handler);
    else this.handlers.set(channel, [handler]);
    if (this.sub.status === 'ready') this.sub.subscribe(channel).catch(() => {});
  }

  /** Called whenever the link is back (and at the first connection): catch up on what was missed. */
  onReady(listener: () => void): void {
    this.readyListeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cmd.disconnect();
    this.sub.disconnect();
  }

  private async subscribeAll(): Promise<void> {
    if (this.handlers.size === 0) return;
    try {
      await this.sub.subscribe(...this.handlers.keys());
    } catch {
      // The next reconnect subscribes again.
    }
  }

  private connected(): void {
    const back = this.everUp && !this.up;
    this.up = true;
    this.everUp = true;
    if (back || this.outageLogged) {
      this.logger.info(`Redis at ${this.target.display} is reachable again; catching up`);
    }
    this.outageLogged = false;
    for (const l of this.readyListeners) l();
  }

  private disconnected(): void {
    if (this.closed) return;
    const wasUp = this.up;
    this.up = false;
    if (wasUp && !this.outageLogged) {
      this.outageLogged = true;
      this.logger.warn(
        `Redis at ${this.target.display} is unreachable; serving on what was last good and reconnecting`,
      );
    }
  }
}
