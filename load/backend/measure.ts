/** bench:backend's measurements: part 1 (unless --only overhead), part 2, their tables, verdicts and JSON. */
import { machine, median } from '../common.js';
import { fmt, table } from '../lib.js';
import { simpleRunCost } from './limit.js';
import { type OverheadRun, overhead } from './overhead.js';
import { servedPart } from './part1.js';
import type { Bench } from './setup.js';

function overheadTable(runs: readonly OverheadRun[], several: boolean): string {
  const head = ['simple, 8 connections (closed loop)', 'req/s', 'p50 ms', 'p99 ms', 'CPU us/request'];
  head.push('CPU ratio', 'mean batch');
  return table(
    head,
    runs.flatMap((r, i) => {
      const run = several ? ` (round ${i + 1})` : '';
      const { backend: be, bare: ba } = r;
      return [
        [`backend${run}`, be.rps, be.p50Ms, be.p99Ms, be.cpuUsPerRequest!, r.cpuRatio, r.meanBatch],
        [`bare fastify (parse + fixed reply)${run}`, ba.rps, ba.p50Ms, ba.p99Ms, ba.cpuUsPerRequest!, '', ''],
      ];
    }),
  );
}

/** The file bench:backend writes its JSON to, and the JSON. */
export interface BackendReport {
  file: string;
  data: { ratios: Record<string, number> } & Record<string, unknown>;
}

/** Runs the parts, prints their tables and verdicts, and returns the JSON. */
export async function measure(b: Bench): Promise<BackendReport> {
  const { o } = b;
  const m = machine();
  process.stdout.write(
    `infergate bench:backend  (${m.cpu ?? 'cpu'}, ${m.cores} cores, node ${m.node}, ${o.threads} onnxruntime threads, mlp-large delay ${o.delayMs} ms, backend ${o.compiled ? 'compiled (dist/)' : 'through tsx'})\n\n`,
  );
  const part1 = o.overheadOnly ? undefined : await servedPart(b);

  const overheadRuns = await overhead(b, await b.variant('simple-overhead', 64));
  process.stdout.write(`${overheadTable(overheadRuns, o.runs > 1)}\n\n`);
  const cpuRatio = median(overheadRuns.map((r) => r.cpuRatio));
  const meanBatch = median(overheadRuns.map((r) => r.meanBatch));
  const runBatch = Math.max(1, Math.round(meanBatch));
  const runUs = await simpleRunCost(b, runBatch);
  const backendUs = median(overheadRuns.map((r) => r.backend.cpuUsPerRequest!));
  const bareUs = median(overheadRuns.map((r) => r.bare.cpuUsPerRequest!));
  process.stdout.write(
    `onnxruntime session.run of simple in-process at batch ${runBatch}: ${fmt(runUs)} us CPU a run, ` +
      `${fmt(runUs / meanBatch)} us a request at the mean batch of ${fmt(meanBatch)}; ` +
      `the backend less that: ${fmt((backendUs - runUs / meanBatch) / bareUs)}x bare fastify (medians)\n\n`,
  );
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const summary: string[] = [];
  if (part1 !== undefined) {
    const { batchedVsUnbatched, batchedVsLimit, best } = part1;
    summary.push(
      `batched / unbatched at concurrency 64:      ${fmt(batchedVsUnbatched)}x (median of ${o.runs})   (aim >= 3x: ${verdict(batchedVsUnbatched >= 3)})`,
      `batched at 64 / in-process limit (batch ${best.batch}): ${fmt(batchedVsLimit)}x (median of ${o.runs})   (aim >= 0.7x: ${verdict(batchedVsLimit >= 0.7)})`,
    );
  }
  summary.push(
    `simple: backend CPU / bare fastify CPU:     ${fmt(cpuRatio)}x${o.runs > 1 ? ` (median of ${o.runs})` : ''}   (aim <= 1.5x: ${verdict(cpuRatio <= 1.5)})`,
  );
  process.stdout.write(`${summary.join('\n')}\n`);
  const last = overheadRuns[overheadRuns.length - 1]!;
  return {
    file: o.overheadOnly ? 'backend-overhead.json' : `backend-${o.threads}t.json`,
    data: {
      date: new Date().toISOString(),
      machine: machine(),
      settings: {
        threads: o.threads,
        delayMs: o.delayMs,
        compiled: o.compiled,
        runs: o.runs,
        warmup: o.warmup,
      },
      quick: o.quick,
      ...(part1 === undefined
        ? {}
        : { inProcess: part1.limit, served: part1.rows, verdictRounds: part1.rounds }),
      overhead: { backend: last.backend, bare: last.bare },
      overheadRuns,
      simpleSessionRun: {
        batch: runBatch,
        cpuUsPerRun: runUs,
        meanBatch,
        cpuUsPerRequest: runUs / meanBatch,
      },
      ratios: {
        ...(part1 === undefined
          ? {}
          : { batchedVsUnbatched: part1.batchedVsUnbatched, batchedVsLimit: part1.batchedVsLimit }),
        simpleCpuVsBareFastify: cpuRatio,
      },
    },
  };
}
