/**
 * Part 2 of bench:backend: simple (overhead-bound), the backend's CPU time per request beside a
 * bare fastify route that only parses the same JSON body and answers a fixed reply. Aim: <= 1.5x.
 */
import { median, simpleBody } from '../common.js';
import { ClosedLoop } from '../closed-loop.js';
import { type LoadResult, startServer } from '../lib.js';
import { histogramTotals } from './served.js';
import { type Bench, bareArgs } from './setup.js';

export interface OverheadRun {
  backend: LoadResult;
  bare: LoadResult;
  cpuRatio: number;
  /** Requests per session run of `simple` over the round, from the backend's batch histogram. */
  meanBatch: number;
}

/** Merges slices of one load into one result: CPU and requests summed, latencies as the median slice's. */
function mergeSlices(slices: readonly LoadResult[]): LoadResult {
  const sum = (f: (r: LoadResult) => number) => slices.reduce((acc, r) => acc + f(r), 0);
  const requests = sum((r) => r.requests);
  const seconds = sum((r) => r.requests / r.rps);
  return {
    requests,
    rps: requests / seconds,
    p50Ms: median(slices.map((r) => r.p50Ms)),
    p99Ms: median(slices.map((r) => r.p99Ms)),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    cpuUsPerRequest: sum((r) => r.cpuUsPerRequest! * r.requests) / requests,
  };
}

/**
 * The backend and the bare route, both up and warmed, measured in `runs` rounds. Each round is
 * cut into slices and the two take turns slice by slice, so that a burst of someone else's work
 * on this shared machine weighs on both alike rather than on one.
 */
export async function overhead(b: Bench, repo: string): Promise<OverheadRun[]> {
  const slices = 10;
  const amount = b.n(2000);
  const backend = await startServer(b.backendArgs(repo));
  try {
    const bare = await startServer(bareArgs);
    try {
      const targets = [
        { pid: backend.pid, client: new ClosedLoop(`${backend.url}/v2/models/simple/infer`, 8, simpleBody) },
        { pid: bare.pid, client: new ClosedLoop(`${bare.url}/v2/models/simple/infer`, 8, simpleBody) },
      ] as const;
      try {
        for (const { client } of targets) if (b.o.warmup > 0) await client.run(b.o.warmup); // JIT, connections
        const out: OverheadRun[] = [];
        // Round 0 is not kept: the first slices after the other server's warm-up ran slower in
        // every trial (V8 tidying a heap that sat idle), which a median of few rounds feels.
        for (let i = -1; i < b.o.runs; i++) {
          const parts: [LoadResult[], LoadResult[]] = [[], []];
          const batchesBefore = await histogramTotals(backend.url, 'simple');
          for (let slice = 0; slice < slices; slice++) {
            for (const k of slice % 2 === 0 ? [0, 1] : [1, 0]) {
              const { pid, client } = targets[k]!;
              parts[k]!.push(await client.run(amount, pid));
            }
          }
          const batchesAfter = await histogramTotals(backend.url, 'simple');
          if (i < 0) continue;
          const be = mergeSlices(parts[0]);
          const ba = mergeSlices(parts[1]);
          out.push({
            backend: be,
            bare: ba,
            cpuRatio: be.cpuUsPerRequest! / ba.cpuUsPerRequest!,
            meanBatch:
              (batchesAfter.batchSum - batchesBefore.batchSum) /
              (batchesAfter.batchCount - batchesBefore.batchCount),
          });
        }
        return out;
      } finally {
        for (const { client } of targets) client.close();
      }
    } finally {
      await bare.stop();
    }
  } finally {
    await backend.stop();
  }
}
