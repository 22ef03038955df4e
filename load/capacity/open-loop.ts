/**
 * The capacity sweep's client: an open loop at a constant arrival rate. Requests are due on a
 * fixed schedule (the i-th at start + i/rate) whatever the answers do, as users arrive, and each
 * is timed from when it was due, not from when it went out, so a client that falls behind shows
 * as latency rather than hiding it (no coordinated omission). At most `maxInFlight` requests are
 * outstanding; an arrival beyond that is dropped and counted, as k6 counts dropped iterations.
 */
import { Pool } from 'undici';
import { type LatencyStats, latencyStats } from '../common.js';

export interface OpenLoopOptions {
  /** The infer URL. */
  url: string;
  body: Buffer | string;
  headers: Record<string, string>;
  /** Arrivals a second. */
  rate: number;
  seconds: number;
  maxInFlight: number;
}

export interface OpenLoopResult extends LatencyStats {
  offered: number;
  answered: number;
  /** Answers other than 200, and requests that failed outright. */
  failed: number;
  /** Arrivals not sent because `maxInFlight` requests were outstanding. */
  dropped: number;
  /** Answers a second over the wall time, from the first arrival to the last answer. */
  achievedRps: number;
  wallSeconds: number;
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

export async function openLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const u = new URL(o.url);
  const pool = new Pool(u.origin, { connections: o.maxInFlight, keepAliveTimeout: 30_000 });
  const latencies: number[] = [];
  let failed = 0;
  let dropped = 0;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  const send = (due: number) => {
    inFlight++;
    const p = pool
      .request({ path: u.pathname, method: 'POST', headers: o.headers, body: o.body })
      .then(async (res) => {
        await res.body.arrayBuffer();
        if (res.statusCode === 200) latencies.push(performance.now() - due);
        else failed++;
      })
      .catch(() => {
        failed++;
      })
      .finally(() => {
        inFlight--;
        pending.delete(p);
      });
    pending.add(p);
  };
  const offered = Math.max(1, Math.round(o.rate * o.seconds));
  const interval = 1000 / o.rate;
  const start = performance.now();
  try {
    let next = 0;
    while (next < offered) {
      const now = performance.now();
      // Every arrival due by now goes out in this turn of the event loop.
      while (next < offered && start + next * interval <= now) {
        if (inFlight >= o.maxInFlight) dropped++;
        else send(start + next * interval);
        next++;
      }
      if (next < offered) await tick();
    }
    while (pending.size > 0) await Promise.all([...pending]);
  } finally {
    await pool.close();
  }
  const wallSeconds = (performance.now() - start) / 1000;
  return {
    offered,
    answered: latencies.length,
    failed,
    dropped,
    achievedRps: latencies.length / wallSeconds,
    wallSeconds,
    ...latencyStats(latencies),
  };
}
