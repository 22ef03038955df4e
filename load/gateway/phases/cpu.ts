/**
 * Phase `cpu`: CPU microseconds per request of the proxy process itself (nginx: master and
 * workers) and of the backend, over a fixed request count at 8 connections: the steadiest figure
 * on a noisy machine, and the one `--baseline` pairs. CPU time is read from
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds, every thread); /proc/<pid>/stat (10 ms ticks) is
 * kept as a cross-check.
 */
import { median } from '../../common.js';
import type { PhaseContext } from '../meter.js';
import type { TargetName } from '../options.js';
import { perTarget, slicedLoads } from './sliced.js';

export interface Cpu {
  requests: number;
  rps: number;
  failed: number;
  proxyCpuUsPerRequest?: number;
  /** The same from /proc/<pid>/stat (10 ms ticks): a cross-check. */
  proxyCpuUsPerRequestFromTicks?: number;
  backendCpuUsPerRequest: number;
}

export async function cpuPhase(ctx: PhaseContext): Promise<Partial<Record<TargetName, Cpu>>> {
  const sliced = await slicedLoads(ctx, ctx.counts.cpuConnections, ctx.counts.cpu);
  return perTarget(ctx, sliced, (acc, n, proxy) => ({
    requests: n,
    rps: median(acc.slices.map((x) => x.rps)),
    failed: acc.slices.reduce((a, x) => a + x.non2xx + x.errors, 0),
    ...(proxy
      ? { proxyCpuUsPerRequest: acc.proxyUs / n, proxyCpuUsPerRequestFromTicks: acc.ticksUs / n }
      : {}),
    backendCpuUsPerRequest: acc.backendUs / n,
  }));
}
