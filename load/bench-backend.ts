/**
 * `npm run bench:backend`: what one backend replica costs and gains, every figure a ratio taken in
 * one run on this machine.
 *
 * 1. mlp-large (compute-bound) served at concurrency 1, 16 and 64 with dynamic batching on and
 *    off, beside in-process onnxruntime at its best batch size with the same threads (the limit of
 *    this machine). Aims: batched at 64 >= 3x unbatched, and >= 0.7x the in-process limit. The
 *    verdicts come from rounds in which the in-process limit and both backends take turns.
 * 2. simple (overhead-bound): backend CPU time per request beside a bare fastify route that only
 *    parses the same JSON body and answers a fixed reply. Aim: <= 1.5x.
 *
 * Options: --quick (fewer requests), --threads N (onnxruntime intra-op threads, default the
 * cores less one: the event loop and the load client need a core),
 * --delay-ms N (mlp-large max_queue_delay_ms, default 1), --only overhead (part 2 alone),
 * --runs N (each part's verdicts in N rounds, default 9, after one discarded round; in part 1
 * the in-process limit, the batched and the unbatched backend take turns; in part 2 both servers
 * stay up, warmed once, and take turns in 10 slices a round, CPU read per thread in nanoseconds;
 * the median of the rounds' ratios is the verdict), --compiled (the backend runs from `npm run build` output in dist/, not tsx),
 * --warmup N (requests to each server before part 2 measures, default 20000), --profile (instead of the
 * measurements: the backend under part 2's load with `node --cpu-prof`, then its hottest
 * functions; --profile-target bare profiles the bare fastify route instead; writes
 * load/results/backend-profile[-bare].json and keeps the .cpuprofile).
 * Parts: load/backend/part1.ts (and served.ts, limit.ts), load/backend/overhead.ts; --profile:
 * load/backend/profile.ts.
 * Writes a table to stdout and JSON to load/results/backend-<threads>t.json
 * (backend-overhead.json with --only overhead).
 */
import './usage.js';
import { benchBackend } from './backend/run.js';
import { parseBackendOptions } from './backend/setup.js';
import { writeResult } from './common.js';

const result = await benchBackend(parseBackendOptions(process.argv.slice(2)));
if (result !== undefined) await writeResult(result.file, result.data);
