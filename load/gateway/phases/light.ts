/**
 * Phase `light`: latency at a light fixed rate (default 200 req/s), open loop: requests are sent
 * on a fixed schedule whatever the answers do, so the figure is the latency of one lone request,
 * not of a burst. autocannon's own rate limit sends each second's requests back to back and
 * records whole milliseconds, so this phase uses its own paced client and a microsecond clock.
 * It also reads the proxy's CPU per request at that rate, and what it burns while idle (measured
 * just before, after a pause), since at 200 req/s that is not negligible.
 */
import { type LatencyStats, latencyStats, postSimple, sleep, turnOrder } from '../../common.js';
import { type PhaseContext, metered, part } from '../meter.js';
import type { TargetName } from '../options.js';
import { Pool } from 'undici';

export interface Latency extends LatencyStats {
  requests: number;
  failed: number;
  /** The proxy processes' CPU while idle just before, ms per second (undefined for direct). */
  idleCpuMsPerSecond?: number;
  /** CPU microseconds per request at this light rate (proxy processes; undefined for direct). */
  proxyCpuUsPerRequest?: number;
  /** The same less what the processes burn while idle over the same time. */
  proxyCpuUsPerRequestNetOfIdle?: number;
  backendCpuUsPerRequest: number;
}

/**
 * `count` requests sent on a fixed schedule of `rate` per second, each timed from its send to the
 * last byte of its answer.
 */
async function paced(
  url: string,
  rate: number,
  count: number,
): Promise<{ latencies: number[]; failed: number }> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 8, keepAliveTimeout: 30_000 });
  const latencies: number[] = [];
  let failed = 0;
  const one = async () => {
    const t0 = performance.now();
    try {
      const res = await postSimple(pool, u.pathname);
      await res.body.arrayBuffer();
      if (res.statusCode === 200) latencies.push(performance.now() - t0);
      else failed++;
    } catch {
      failed++;
    }
  };
  try {
    await one(); // opens a connection
    latencies.length = 0;
    failed = 0;
    const interval = 1000 / rate;
    const pending: Promise<void>[] = [];
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 0) await sleep(wait);
      pending.push(one());
    }
    await Promise.all(pending);
  } finally {
    await pool.close();
  }
  return { latencies, failed };
}

export async function lightPhase(
  ctx: PhaseContext,
  rate: number,
): Promise<Partial<Record<TargetName, Latency>>> {
  const { targets, upstream, counts } = ctx;
  // V8 keeps working for a few seconds after a burst (concurrent GC, the memory reducer,
  // compilation): let that settle before reading what the processes burn while idle.
  await sleep(counts.settleMs);
  const acc = new Map<
    TargetName,
    { latencies: number[]; failed: number; proxyUs: number; backendUs: number; seconds: number; idle: number }
  >();
  for (const t of targets) {
    const idle = await metered(await t.pids(), upstream.pid, () => sleep(counts.idleMs));
    acc.set(t.name, {
      latencies: [],
      failed: 0,
      proxyUs: 0,
      backendUs: 0,
      seconds: 0,
      idle: idle.proxyUs / idle.seconds,
    });
  }
  for (let slice = 0; slice < counts.slices; slice++) {
    for (const t of turnOrder(targets, ctx.run * counts.slices + slice)) {
      const a = acc.get(t.name)!;
      const m = await metered(await t.pids(), upstream.pid, () =>
        paced(t.url, rate, part(counts, counts.latency)),
      );
      a.latencies.push(...m.value.latencies);
      a.failed += m.value.failed;
      a.proxyUs += m.proxyUs;
      a.backendUs += m.upstreamUs;
      a.seconds += m.seconds;
    }
  }
  const out: Partial<Record<TargetName, Latency>> = {};
  for (const t of targets) {
    const a = acc.get(t.name)!;
    const n = a.latencies.length + a.failed;
    out[t.name] = {
      requests: n,
      ...latencyStats(a.latencies),
      failed: a.failed,
      ...(t.name !== 'direct'
        ? {
            idleCpuMsPerSecond: a.idle / 1000,
            proxyCpuUsPerRequest: a.proxyUs / n,
            proxyCpuUsPerRequestNetOfIdle: (a.proxyUs - a.idle * a.seconds) / n,
          }
        : {}),
      backendCpuUsPerRequest: a.backendUs / n,
    };
  }
  return out;
}
