/** CPU read around a piece of load: the target's processes, the upstream's, and this client's. */
import { cpuOf, cpuSeconds } from '../lib.js';
import type { Counts } from './options.js';
import type { Target, Upstream } from './targets.js';

/** What every phase is given: the targets in front of one upstream, taking turns. */
export interface PhaseContext {
  targets: readonly Target[];
  upstream: Upstream;
  counts: Counts;
  /** The run's index, from 0: each run starts the turn order one slice pair further on. */
  run: number;
}

/** Each slice's share of `total` requests. */
export const part = (counts: Counts, total: number) => Math.max(1, Math.round(total / counts.slices));

export interface Metered<T> {
  value: T;
  /** CPU of the target's processes, all threads (schedstat, nanoseconds), in µs. */
  proxyUs: number;
  /** The same from /proc/<pid>/stat (10 ms ticks): a cross-check. */
  proxyTicksUs: number;
  upstreamUs: number;
  /** This process: the load client. */
  clientUs: number;
  seconds: number;
}

/** Runs `fn` and says how much CPU the target's processes and the upstream used meanwhile. */
export async function metered<T>(
  pids: readonly number[],
  upstreamPid: number,
  fn: () => Promise<T>,
): Promise<Metered<T>> {
  const ticks = async () => {
    let total = 0;
    for (const pid of pids) total += await cpuSeconds(pid);
    return total;
  };
  const proxyBefore = await cpuOf(pids);
  const ticksBefore = await ticks();
  const upstreamBefore = await cpuOf([upstreamPid]);
  const client = process.cpuUsage();
  const started = performance.now();
  const value = await fn();
  const seconds = (performance.now() - started) / 1000;
  const clientUsage = process.cpuUsage(client);
  const proxyUs = ((await cpuOf(pids)) - proxyBefore) * 1e6;
  const ticksAfter = await ticks();
  const upstreamUs = ((await cpuOf([upstreamPid])) - upstreamBefore) * 1e6;
  return {
    value,
    proxyUs,
    proxyTicksUs: (ticksAfter - ticksBefore) * 1e6,
    upstreamUs,
    clientUs: clientUsage.user + clientUsage.system,
    seconds,
  };
}
