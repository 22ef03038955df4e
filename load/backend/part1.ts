/**
 * Part 1 of bench:backend: mlp-large (compute-bound) served at concurrency 1, 16 and 64 with
 * dynamic batching on and off, beside in-process onnxruntime at its best batch size with the same
 * threads (the limit of this machine). The verdicts come from rounds in which the in-process
 * limit and both backends take turns.
 */
import { median } from '../common.js';
import { type ChildServer, startServer, table } from '../lib.js';
import { type Limit, openLimit } from './limit.js';
import { mlpClient, type ServedRow, served } from './served.js';
import type { Bench } from './setup.js';

export interface HeadlineRound {
  limit: number;
  batched: number;
  unbatched: number;
  batchedVsUnbatched: number;
  batchedVsLimit: number;
}

export interface ServedPart {
  limit: { batch: number; samplesPerSec: number }[];
  rows: ServedRow[];
  rounds: HeadlineRound[];
  batchedVsUnbatched: number;
  batchedVsLimit: number;
  best: { batch: number; samplesPerSec: number };
}

/**
 * The verdicts, in rounds: the in-process limit at its best batch, the batched backend and the
 * unbatched one at concurrency 64 (binary), taking turns, so that a drift in this shared
 * machine's speed over the minutes of the run weighs on all three alike. Round 0 is not kept.
 */
async function headline(
  b: Bench,
  limit: Limit,
  batch: number,
  batched: ChildServer,
  unbatched: ChildServer,
): Promise<HeadlineRound[]> {
  const clients = [mlpClient(batched, 64, 'binary'), mlpClient(unbatched, 64, 'binary')] as const;
  try {
    const out: HeadlineRound[] = [];
    for (let i = -1; i < b.o.runs; i++) {
      const limitRate = await limit.at(batch, 1000 * Math.max(b.scale, 0.5));
      const bat = (await clients[0].run(b.n(4000))).rps;
      const unb = (await clients[1].run(b.n(800))).rps;
      if (i < 0) continue;
      out.push({
        limit: limitRate,
        batched: bat,
        unbatched: unb,
        batchedVsUnbatched: bat / unb,
        batchedVsLimit: bat / limitRate,
      });
    }
    return out;
  } finally {
    for (const c of clients) c.close();
  }
}

function servedTable(rows: readonly ServedRow[], best: number): string {
  const head = ['mlp-large served', 'batching', 'conc', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx'];
  head.push('mean batch', 'run busy', 'x in-process limit');
  return table(
    head,
    rows.map((r) => [
      r.encoding,
      r.batching,
      r.concurrency,
      r.result.rps,
      r.result.p50Ms,
      r.result.p99Ms,
      r.result.non2xx + r.result.errors,
      r.meanBatch,
      `${Math.round(r.busy * 100)}%`,
      r.result.rps / best,
    ]),
  );
}

function roundsTable(rounds: readonly HeadlineRound[], batch: number): string {
  const head = [`verdict rounds, concurrency 64 (binary)`, `in-process batch ${batch}`, 'batched req/s'];
  head.push('unbatched req/s', 'batched / unbatched', 'batched / limit');
  return table(
    head,
    rounds.map((r, i) => [
      `round ${i + 1}`,
      r.limit,
      r.batched,
      r.unbatched,
      r.batchedVsUnbatched,
      r.batchedVsLimit,
    ]),
  );
}

export async function servedPart(b: Bench): Promise<ServedPart> {
  const limiter = await openLimit(b);
  try {
    const limit: { batch: number; samplesPerSec: number }[] = [];
    for (const batch of [1, 8, 16, 32, 64, 128]) {
      limit.push({ batch, samplesPerSec: await limiter.at(batch, 1500 * Math.max(b.scale, 0.5)) });
    }
    const best = limit.reduce((x, y) => (y.samplesPerSec > x.samplesPerSec ? y : x));
    const limitRows = limit.map((r) => [r.batch, r.samplesPerSec]);
    process.stdout.write(`${table(['in-process batch', 'samples/s'], limitRows)}\n\n`);
    // Both backends stay up for the whole part (an idle one costs nothing), so that the verdict
    // rounds can alternate between them.
    const batched = await startServer(b.backendArgs(await b.variant('batched', 64)));
    try {
      const unbatched = await startServer(b.backendArgs(await b.variant('unbatched', 0)));
      try {
        const rows = [...(await served(b, batched, 'on')), ...(await served(b, unbatched, 'off'))];
        process.stdout.write(`${servedTable(rows, best.samplesPerSec)}\n\n`);
        const rounds = await headline(b, limiter, best.batch, batched, unbatched);
        process.stdout.write(`${roundsTable(rounds, best.batch)}\n\n`);
        return {
          limit,
          rows,
          rounds,
          best,
          batchedVsUnbatched: median(rounds.map((r) => r.batchedVsUnbatched)),
          batchedVsLimit: median(rounds.map((r) => r.batchedVsLimit)),
        };
      } finally {
        await unbatched.stop();
      }
    } finally {
      await batched.stop();
    }
  } finally {
    await limiter.release();
  }
}
