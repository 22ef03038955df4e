/** Phase `saturation`: throughput at saturation (autocannon, 32 connections, a fixed request count). */
import { median } from '../../common.js';
import type { PhaseContext } from '../meter.js';
import type { TargetName } from '../options.js';
import { perTarget, slicedLoads } from './sliced.js';

export interface Saturation {
  requests: number;
  /** Medians over the slices. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  sliceRps: number[];
  non2xx: number;
  errors: number;
  proxyCpuUsPerRequest?: number;
  backendCpuUsPerRequest: number;
  /** Cores busy on average while requests were in flight. */
  proxyCpuCores: number;
  backendCpuCores: number;
  /** This process: autocannon. */
  clientCpuCores: number;
}

export async function saturationPhase(ctx: PhaseContext): Promise<Partial<Record<TargetName, Saturation>>> {
  const sliced = await slicedLoads(ctx, ctx.counts.saturationConnections, ctx.counts.saturation);
  return perTarget(ctx, sliced, (acc, requests, proxy) => {
    // Busy time: from each slice's first request to its last answer (the call itself ends on
    // autocannon's next one-second tick).
    const busy = acc.slices.reduce((a, x) => a + x.requests / x.rps, 0);
    return {
      requests,
      rps: median(acc.slices.map((x) => x.rps)),
      p50Ms: median(acc.slices.map((x) => x.p50Ms)),
      p99Ms: median(acc.slices.map((x) => x.p99Ms)),
      non2xx: acc.slices.reduce((a, x) => a + x.non2xx, 0),
      errors: acc.slices.reduce((a, x) => a + x.errors, 0),
      sliceRps: acc.slices.map((x) => x.rps),
      ...(proxy ? { proxyCpuUsPerRequest: acc.proxyUs / requests } : {}),
      backendCpuUsPerRequest: acc.backendUs / requests,
      proxyCpuCores: acc.proxyUs / 1e6 / busy,
      backendCpuCores: acc.backendUs / 1e6 / busy,
      clientCpuCores: acc.clientUs / 1e6 / busy,
    };
  });
}
