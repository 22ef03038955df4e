/**
 * The chart's curve: latency against offered load through each target (direct, gateway, nginx,
 * the bare relay) in front of one backend serving `simple`, open loop (load/capacity/open-loop.ts)
 * at each rate in turn, the targets taking turns at every rate (turnOrder), so that the
 * machine's slow minutes fall on all of them alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLoop } from '../capacity/open-loop.js';
import { clientHeaders, simpleBody, turnOrder } from '../common.js';
import { parseOptions, type TargetName } from '../gateway/options.js';
import { stopAll } from '../gateway/processes.js';
import { startBackend, startTargets } from '../gateway/targets.js';

export interface CurvePoint {
  rate: number;
  p50Ms: number;
  p99Ms: number;
  achievedRps: number;
  failed: number;
  dropped: number;
}

export type Curve = Partial<Record<TargetName, CurvePoint[]>>;

export async function latencyCurve(
  rates: readonly number[],
  seconds: number,
  log: (line: string) => void,
): Promise<Curve> {
  const options = parseOptions(['--targets', 'direct,gateway,nginx,relay']);
  const work = await mkdtemp(join(tmpdir(), 'infergate-bench-curve-'));
  try {
    const backend = await startBackend(options, work);
    const targets = await startTargets({ options, work, baselineCli: undefined }, backend);
    const curve: Curve = {};
    for (const t of targets) {
      curve[t.name] = [];
      // Warm-up: JIT, connection pools.
      await openLoop({
        url: t.url,
        body: simpleBody,
        headers: clientHeaders,
        rate: rates[0]!,
        seconds: 1,
        maxInFlight: 64,
      });
    }
    for (const [i, rate] of rates.entries()) {
      for (const t of turnOrder(targets, i)) {
        const r = await openLoop({
          url: t.url,
          body: simpleBody,
          headers: clientHeaders,
          rate,
          seconds,
          maxInFlight: 256,
        });
        const point = {
          rate,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          achievedRps: r.achievedRps,
          failed: r.failed,
          dropped: r.dropped,
        };
        curve[t.name]!.push(point);
      }
      log(
        `  ${rate} req/s: ${targets.map((t) => `${t.name} p99 ${curve[t.name]!.at(-1)!.p99Ms.toFixed(2)} ms`).join(', ')}`,
      );
    }
    return curve;
  } finally {
    await stopAll();
    await rm(work, { recursive: true, force: true });
  }
}
