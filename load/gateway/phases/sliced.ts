/**
 * autocannon loads of `amount` requests in all at `connections`, the targets taking turns slice
 * by slice (see turnOrder); each target's slices, and the CPU of its processes, summed.
 */
import { clientHeaders, simpleBody, turnOrder } from '../../common.js';
import { type LoadResult, load } from '../../lib.js';
import { type PhaseContext, metered, part } from '../meter.js';
import type { TargetName } from '../options.js';

export interface Sliced {
  slices: LoadResult[];
  proxyUs: number;
  ticksUs: number;
  backendUs: number;
  clientUs: number;
}

export async function slicedLoads(
  ctx: PhaseContext,
  connections: number,
  amount: number,
): Promise<Map<TargetName, Sliced>> {
  const accs = new Map<TargetName, Sliced>();
  for (const t of ctx.targets)
    accs.set(t.name, { slices: [], proxyUs: 0, ticksUs: 0, backendUs: 0, clientUs: 0 });
  for (let slice = 0; slice < ctx.counts.slices; slice++) {
    for (const t of turnOrder(ctx.targets, ctx.run * ctx.counts.slices + slice)) {
      const acc = accs.get(t.name)!;
      const m = await metered(await t.pids(), ctx.upstream.pid, () =>
        load({
          url: t.url,
          connections,
          amount: part(ctx.counts, amount),
          body: simpleBody,
          headers: clientHeaders,
        }),
      );
      acc.slices.push(m.value);
      acc.proxyUs += m.proxyUs;
      acc.ticksUs += m.proxyTicksUs;
      acc.backendUs += m.upstreamUs;
      acc.clientUs += m.clientUs;
    }
  }
  return accs;
}

/** One record per target from its summed slices (`requests`: their total). */
export function perTarget<T>(
  ctx: PhaseContext,
  sliced: Map<TargetName, Sliced>,
  f: (acc: Sliced, requests: number, proxy: boolean) => T,
): Partial<Record<TargetName, T>> {
  const out: Partial<Record<TargetName, T>> = {};
  for (const t of ctx.targets) {
    const acc = sliced.get(t.name)!;
    out[t.name] = f(
      acc,
      acc.slices.reduce((a, x) => a + x.requests, 0),
      t.name !== 'direct',
    );
  }
  return out;
}
