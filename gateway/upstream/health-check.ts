/**
 * An endpoint's active health checks: a timer, a connection of their own, and the runs of passes
 * and failures. What a verdict does to the endpoint's standing is the endpoint's to decide.
 */
import type { Dispatcher } from 'undici';
import type { Clock } from '../../common/clock.js';
import { createHealthCheckClient, type UpstreamTls } from './connection.js';
import { errorCode } from './outcome.js';

/** One check's answer: ready, or not (with the error code when nothing answered). */
export type CheckResult = { readonly ok: true } | { readonly ok: false; readonly code: string | undefined };

const PASSED: CheckResult = Object.freeze({ ok: true });
const NOT_READY: CheckResult = Object.freeze({ ok: false, code: undefined });

export type HealthCheckClientFactory = (origin: string, timeoutMs: number, tls?: UpstreamTls) => Dispatcher;

export class HealthCheck {
  /** Checks passed in a row, and failed in a row. */
  passes = 0;
  failures = 0;
  private timer: unknown;
  private client: Dispatcher | undefined;
  private checking = false;

  constructor(
    private readonly origin: string,
    private readonly clock: Clock,
    /** Called when a check is due (the timer has fired and is disarmed). */
    private readonly due: () => void,
    private readonly connect: HealthCheckClientFactory = createHealthCheckClient,
  ) {}

  /** Arms the next check in `intervalMs` (none when 0) unless one is armed; `restart` re-arms it. */
  arm(intervalMs: number, restart: boolean): void {
    if (restart) this.disarm();
    if (intervalMs <= 0 || this.timer !== undefined) return;
    const timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.due();
    }, intervalMs);
    (timer as { unref?: () => void }).unref?.();
    this.timer = timer;
  }

  disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  /** One `GET /v2/health/ready`; undefined when a check is already out. Counts the runs. */
  async probe(timeoutMs: number): Promise<CheckResult | undefined> {
    if (this.checking) return undefined;
    this.checking = true;
    let result = NOT_READY;
    try {
      this.client ??= this.connect(this.origin, timeoutMs);
      const res = await this.client.request({
        method: 'GET',
        path: '/v2/health/ready',
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.dump();
      if (res.statusCode === 200) result = PASSED;
    } catch (e) {
      result = { ok: false, code: errorCode(e) };
    } finally {
      this.checking = false;
    }
    if (result.ok) {
      this.failures = 0;
      this.passes += 1;
    } else {
      this.passes = 0;
      this.failures += 1;
    }
    return result;
  }

  async close(): Promise<void> {
    this.disarm();
    await this.client?.close().catch(() => {});
  }
}
