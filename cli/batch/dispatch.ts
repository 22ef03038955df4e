/**
 * One request of a batch run (a line, or a pack of lines) to its end: a slot of the adaptive
 * window for each try; back-pressure (429, 503) cuts the window and is retried, paced by the window
 * (at its floor: after `Retry-After`), until no answer at all came for `stallMs`; failures (502,
 * 504, the network) are retried `retries` times with jittered backoff.
 */
import type { WireBody } from './binary.js';
import type { Gate } from './gate.js';
import type { Attempt, GatewayClient } from './send.js';
import type { LatencyHistogram } from './stats.js';
import { type AdaptiveWindow, backoffMs, retryAfterMs } from './window.js';

export type Outcome =
  /** An answer, or a refusal for what the request is (400, 404, ...): retrying cannot help. */
  | Extract<Attempt, { kind: 'ok' | 'fail' }>
  /** Retries used up, or back-pressure with no answer for too long. */
  | { readonly kind: 'error'; readonly code: string; readonly message: string }
  /** The run is stopping: not answered, redone by the next run. */
  | { readonly kind: 'abandoned' };

export interface DispatchContext {
  readonly client: GatewayClient;
  readonly window: AdaptiveWindow;
  readonly gate: Gate;
  readonly hist: LatencyHistogram;
  readonly retries: number;
  readonly stallMs: number;
  readonly now: () => number;
  readonly stopping: () => boolean;
  readonly stats: { retries: number; backpressure: number };
}

export class Dispatcher {
  private sending = 0;
  private lastAnswer: number;

  constructor(private readonly c: DispatchContext) {
    this.lastAnswer = c.now();
  }

  /** Waits for a slot of the window (and the end of a Retry-After hold); false when stopping. */
  private async acquire(): Promise<boolean> {
    const { window, gate, now } = this.c;
    for (;;) {
      if (this.c.stopping()) return false;
      const wait = window.pausedUntil - now();
      if (wait > 0) await gate.sleep(wait);
      else if (this.sending < window.limit) break;
      else await gate.until(() => this.c.stopping() || this.sending < window.limit);
    }
    this.sending += 1;
    return true;
  }

  async send(body: WireBody): Promise<Outcome> {
    const { window, gate, now } = this.c;
    let failures = 0;
    for (;;) {
      if (!(await this.acquire())) return { kind: 'abandoned' };
      const epoch = window.epoch;
      const t0 = now();
      const a = await this.c.client.attempt(body);
      this.sending -= 1;
      gate.notify();
      if (a.kind === 'ok') {
        window.onSuccess();
        this.c.hist.observe(now() - t0);
        this.lastAnswer = now();
        return a;
      }
      if (a.kind === 'fail') return a;
      if (this.c.stopping()) return { kind: 'abandoned' };
      if (a.kind === 'backpressure') {
        this.c.stats.backpressure += 1;
        const ra = retryAfterMs(a.retryAfter, Date.now());
        const atFloor = window.limit <= window.min;
        window.onBackpressure(epoch, now(), ra);
        if (now() - this.lastAnswer > this.c.stallMs)
          return {
            kind: 'error',
            code: a.code,
            message: `${a.message} (no line answered for ${this.c.stallMs / 1000} s)`,
          };
        // Above the floor the cut window paces the retry (it waits for a slot to free); at the
        // floor the line, and with the hold every line, waits out Retry-After.
        await gate.sleep(
          atFloor ? (ra ?? backoffMs(1, Math.random, 100, 1000)) : backoffMs(1, Math.random, 20, 20),
        );
        continue;
      }
      failures += 1;
      if (failures > this.c.retries)
        return { kind: 'error', code: a.code, message: `${a.message} (after ${failures} tries)` };
      this.c.stats.retries += 1;
      await gate.sleep(backoffMs(failures, Math.random));
    }
  }
}
