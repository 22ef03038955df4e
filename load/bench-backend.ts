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
 * Writes a table to stdout and JSON to load/results/backend-<threads>t.json
 * (backend-overhead.json with --only overhead).
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { sessionOptions } from '../backend/model.js';
import { buildModelRepository } from '../models/build.js';
import { type ChildServer, ClosedLoop, fmt, type LoadResult, load, startServer, table } from './lib.js';
import { profileClockUs, profileIn, profileTables, summariseProfile } from './profile.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    // One core is left to the backend's event loop and, here, the load client on the same machine.
    threads: { type: 'string', default: String(Math.max(1, availableParallelism() - 1)) },
    'delay-ms': { type: 'string', default: '1' },
    only: { type: 'string' },
    runs: { type: 'string', default: '9' },
    compiled: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '20000' },
    profile: { type: 'boolean', default: false },
    'profile-target': { type: 'string', default: 'backend' },
  },
});
if (values.only !== undefined && values.only !== 'overhead') {
  throw new Error(`--only takes 'overhead', not '${values.only}'`);
}
const overheadOnly = values.only === 'overhead';
const profileTarget = values['profile-target'];
if (profileTarget !== 'backend' && profileTarget !== 'bare') {
  throw new Error(`--profile-target takes backend or bare, not '${profileTarget}'`);
}
const runs = Number(values.runs);
if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer`);
const warmup = Number(values.warmup);
if (!Number.isSafeInteger(warmup) || warmup < 0) throw new Error(`--warmup must be a whole number`);
const threads = Number(values.threads);
const delayMs = Number(values['delay-ms']);
const scale = values.quick ? 0.25 : 1;
const n = (count: number) => Math.max(200, Math.round(count * scale));

const work = await mkdtemp(join(tmpdir(), 'infergate-bench-'));
const base = join(work, 'base');
await buildModelRepository(base);

/** A repository holding mlp-large (with the given batching) and simple. */
async function variant(name: string, maxBatchSize: number): Promise<string> {
  const dir = join(work, name);
  const models: [string, string][] = [
    ['mlp-large', `max_batch_size: ${maxBatchSize}\nmax_queue_delay_ms: ${delayMs}\nmax_queue_size: 4096\n`],
    [
      'simple',
      `max_batch_size: ${maxBatchSize}\nmax_queue_delay_ms: 0\nmax_queue_size: 4096\nexecution: inline\n`,
    ],
  ];
  for (const [model, config] of models) {
    await mkdir(join(dir, model, '1'), { recursive: true });
    await symlink(join(base, model, '1', 'model.onnx'), join(dir, model, '1', 'model.onnx'));
    await writeFile(
      join(dir, model, 'config.yaml'),
      `${config}intra_op_threads: ${model === 'simple' ? 1 : threads}\ninter_op_threads: 1\n`,
    );
  }
  return dir;
}

// --- in-process onnxruntime: the machine's limit ------------------------------------------------
interface Limit {
  /** Samples a second at `batch`, over about `ms` of back-to-back runs. */
  at(batch: number, ms: number): Promise<number>;
  release(): Promise<void>;
}

async function openLimit(): Promise<Limit> {
  const session = await ort.InferenceSession.create(join(base, 'mlp-large', '1', 'model.onnx'), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const inputs = new Map<number, ort.Tensor>();
  return {
    async at(batch, ms) {
      let x = inputs.get(batch);
      if (x === undefined) {
        x = new ort.Tensor(
          'float32',
          Float32Array.from({ length: batch * 512 }, (_, i) => Math.sin(i)),
          [batch, 512],
        );
        inputs.set(batch, x);
        for (let i = 0; i < 3; i++) await session.run({ x });
      }
      let runs = 0;
      const started = performance.now();
      while (performance.now() - started < ms) {
        await session.run({ x });
        runs++;
      }
      return (batch * runs * 1000) / (performance.now() - started);
    },
    release: () => session.release(),
  };
}

/**
 * CPU of one onnxruntime session.run of `simple` in this process, at `batch` rows, with the
 * backend's session options for it (one thread, no spinning): the share of the backend's CPU per
 * request that is inference itself, a floor (the served run also pays for a cache that the rest
 * of the request has cooled).
 */
async function simpleRunCost(batch: number): Promise<number> {
  // The options the backend gives `simple` here (variant(): one intra-op and one inter-op thread).
  const session = await ort.InferenceSession.create(join(base, 'simple', '1', 'model.onnx'), {
    ...sessionOptions({ intra_op_threads: 1, inter_op_threads: 1 }),
    executionProviders: ['cpu'],
  });
  try {
    const feeds = () => ({
      INPUT0: new ort.Tensor(
        'int32',
        Int32Array.from({ length: batch * 16 }, (_, i) => i),
        [batch, 16],
      ),
      INPUT1: new ort.Tensor(
        'int32',
        Int32Array.from({ length: batch * 16 }, (_, i) => i),
        [batch, 16],
      ),
    });
    for (let i = 0; i < 2000; i++) await session.run(feeds());
    const count = n(20000);
    const before = process.cpuUsage();
    for (let i = 0; i < count; i++) await session.run(feeds());
    const used = process.cpuUsage(before);
    return (used.user + used.system) / count;
  } finally {
    await session.release();
  }
}

function binaryBody(): { body: Buffer; headers: Record<string, string> } {
  const x = Float32Array.from({ length: 512 }, (_, i) => Math.cos(i));
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: 'x', shape: [1, 512], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } },
      ],
      outputs: [{ name: 'y', parameters: { binary_data: true } }],
    }),
  );
  return {
    body: Buffer.concat([header, Buffer.from(x.buffer)]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
  };
}

const jsonMlpBody = JSON.stringify({
  inputs: [
    {
      name: 'x',
      shape: [1, 512],
      datatype: 'FP32',
      data: Array.from({ length: 512 }, (_, i) => Math.cos(i)),
    },
  ],
});
const simpleBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
  ],
});

const backendArgs = (repo: string) => [
  values.compiled ? join(root, 'dist', 'cli', 'main.js') : join(root, 'bin', 'infergate.js'),
  'backend',
  '--model-repository',
  repo,
  '--port',
  '0',
];

interface ServedRow {
  batching: 'on' | 'off';
  concurrency: number;
  encoding: 'binary' | 'json';
  result: LoadResult;
  /** Requests per session run over the load, from the backend's batch-size histogram. */
  meanBatch: number;
  /** Share of the load's wall time that onnxruntime spent in session.run (compute histogram). */
  busy: number;
}

/** The load table's rows for one running backend: binary at concurrency 1, 16 and 64, and JSON at 64. */
async function served(server: ChildServer, batching: 'on' | 'off'): Promise<ServedRow[]> {
  const url = `${server.url}/v2/models/mlp-large/infer`;
  const bin = binaryBody();
  const rows: ServedRow[] = [];
  const run = async (encoding: 'binary' | 'json', concurrency: number, amount: number) => {
    const client = mlpClient(server, concurrency, encoding);
    try {
      const before = await histogramTotals(server.url, 'mlp-large');
      const result = await client.run(amount);
      const after = await histogramTotals(server.url, 'mlp-large');
      const seconds = result.requests / result.rps;
      rows.push({
        batching,
        concurrency,
        encoding,
        result,
        meanBatch: (after.batchSum - before.batchSum) / (after.batchCount - before.batchCount),
        busy: (after.computeSum - before.computeSum) / seconds,
      });
    } finally {
      client.close();
    }
  };
  await load({ url, connections: 16, amount: n(400), ...bin }); // warm-up
  for (const concurrency of [1, 16, 64]) {
    await run('binary', concurrency, n(concurrency === 1 ? 1500 : batching === 'on' ? 12000 : 4000));
  }
  await run('json', 64, n(batching === 'on' ? 8000 : 4000));
  return rows;
}

/**
 * A closed-loop client of mlp-large, not autocannon: on a small machine the client shares the
 * cores with the backend, and the leaner it is, the more of them the backend gets.
 */
function mlpClient(server: ChildServer, connections: number, encoding: 'binary' | 'json'): ClosedLoop {
  const url = `${server.url}/v2/models/mlp-large/infer`;
  if (encoding === 'json') return new ClosedLoop(url, connections, jsonMlpBody);
  const bin = binaryBody();
  return new ClosedLoop(url, connections, bin.body, bin.headers);
}

interface HeadlineRound {
  limit: number;
  batched: number;
  unbatched: number;
  batchedVsUnbatched: number;
  batchedVsLimit: number;
}

/**
 * Part 1's verdicts, in rounds: the in-process limit at its best batch, the batched backend and
 * the unbatched one at concurrency 64 (binary), taking turns, so that a drift in this shared
 * machine's speed over the minutes of the run weighs on all three alike. Round 0 is not kept.
 */
async function headline(
  limit: Limit,
  batch: number,
  batched: ChildServer,
  unbatched: ChildServer,
): Promise<HeadlineRound[]> {
  const clients = [mlpClient(batched, 64, 'binary'), mlpClient(unbatched, 64, 'binary')] as const;
  try {
    const out: HeadlineRound[] = [];
    for (let i = -1; i < runs; i++) {
      const limitRate = await limit.at(batch, 1000 * Math.max(scale, 0.5));
      const b = (await clients[0].run(n(4000))).rps;
      const u = (await clients[1].run(n(800))).rps;
      if (i < 0) continue;
      out.push({
        limit: limitRate,
        batched: b,
        unbatched: u,
        batchedVsUnbatched: b / u,
        batchedVsLimit: b / limitRate,
      });
    }
    return out;
  } finally {
    for (const c of clients) c.close();
  }
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
 * Part 2: the backend and the bare route, both up and warmed, measured in `runs` rounds. Each
 * round is cut into slices and the two take turns slice by slice, so that a burst of someone
 * else's work on this shared machine weighs on both alike rather than on one.
 */
async function overhead(repo: string): Promise<OverheadRun[]> {
  const slices = 10;
  const amount = n(2000);
  const backend = await startServer(backendArgs(repo));
  try {
    const bare = await startServer(bareArgs);
    try {
      const targets = [
        { pid: backend.pid, client: new ClosedLoop(`${backend.url}/v2/models/simple/infer`, 8, simpleBody) },
        { pid: bare.pid, client: new ClosedLoop(`${bare.url}/v2/models/simple/infer`, 8, simpleBody) },
      ] as const;
      try {
        for (const { client } of targets) if (warmup > 0) await client.run(warmup); // JIT, connections
        const out: OverheadRun[] = [];
        // Round 0 is not kept: the first slices after the other server's warm-up ran slower in
        // every trial (V8 tidying a heap that sat idle), which a median of few rounds feels.
        for (let i = -1; i < runs; i++) {
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
          const b = mergeSlices(parts[0]);
          const f = mergeSlices(parts[1]);
          out.push({
            backend: b,
            bare: f,
            cpuRatio: b.cpuUsPerRequest! / f.cpuUsPerRequest!,
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

const bareArgs = ['--import', 'tsx', join(root, 'load', 'bare-fastify.ts')];

/** --profile: where the CPU of the backend (or of the bare route) goes under part 2's load. */
async function profile(repo: string): Promise<void> {
  const profDir = await mkdtemp(join(tmpdir(), `infergate-${profileTarget}-prof-`));
  const flags = ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', profDir];
  const server = await startServer(
    profileTarget === 'bare' ? [...flags, ...bareArgs] : [...flags, ...backendArgs(repo)],
  );
  let res: LoadResult;
  let start: number;
  let end: number;
  try {
    const url = `${server.url}/v2/models/simple/infer`;
    if (warmup > 0) await load({ url, connections: 8, amount: warmup, body: simpleBody });
    start = profileClockUs();
    res = await load({ url, connections: 8, amount: n(20000), body: simpleBody, pid: server.pid });
    end = profileClockUs();
  } finally {
    await server.stop(); // the profile is written as the process exits
  }
  const summary = await summariseProfile(await profileIn(profDir), { start, end }, res.requests, root);
  process.stdout.write(
    `${profileTarget} profile: ${res.requests} requests of simple at 8 connections, ${fmt(res.rps)} req/s; ` +
      `process CPU ${fmt(res.cpuUsPerRequest!)} us/request (profiler on); main thread busy ${fmt(summary.mainThreadBusyUsPerRequest)} us/request\n\n` +
      `${profileTables(summary)}\n\nprofile kept: ${summary.file}\n`,
  );
  const file = `backend-profile${profileTarget === 'bare' ? '-bare' : ''}.json`;
  const report = {
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model, cores: availableParallelism(), node: process.version },
    settings: { target: profileTarget, compiled: values.compiled },
    load: res,
    ...summary,
  };
  await mkdir(join(root, 'load', 'results'), { recursive: true });
  await writeFile(join(root, 'load', 'results', file), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`wrote load/results/${file}\n`);
}

interface OverheadRun {
  backend: LoadResult;
  bare: LoadResult;
  cpuRatio: number;
  /** Requests per session run of `simple` over the round, from the backend's batch histogram. */
  meanBatch: number;
}

/** Sums and counts of the backend's batch-size and compute histograms for one model. */
async function histogramTotals(
  url: string,
  model: string,
): Promise<{ batchSum: number; batchCount: number; computeSum: number }> {
  const lines = (await (await fetch(`${url}/metrics`)).text()).split('\n');
  const read = (name: string) => {
    const line = lines.find((l) => l.startsWith(`infergate_backend_${name}{model="${model}"`));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  return {
    batchSum: read('batch_size_sum'),
    batchCount: read('batch_size_count'),
    computeSum: read('compute_seconds_sum'),
  };
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

type ServedPart = {
  limit: { batch: number; samplesPerSec: number }[];
  rows: ServedRow[];
  rounds: HeadlineRound[];
  batchedVsUnbatched: number;
  batchedVsLimit: number;
  best: { batch: number; samplesPerSec: number };
};

async function servedPart(): Promise<ServedPart> {
  const limiter = await openLimit();
  try {
    const limit: { batch: number; samplesPerSec: number }[] = [];
    for (const batch of [1, 8, 16, 32, 64, 128]) {
      limit.push({ batch, samplesPerSec: await limiter.at(batch, 1500 * Math.max(scale, 0.5)) });
    }
    const best = limit.reduce((a, b) => (b.samplesPerSec > a.samplesPerSec ? b : a));
    process.stdout.write(
      `${table(
        ['in-process batch', 'samples/s'],
        limit.map((r) => [r.batch, r.samplesPerSec]),
      )}\n\n`,
    );
    // Both backends stay up for the whole part (an idle one costs nothing), so that the verdict
    // rounds can alternate between them.
    const batched = await startServer(backendArgs(await variant('batched', 64)));
    try {
      const unbatched = await startServer(backendArgs(await variant('unbatched', 0)));
      try {
        const rows = [...(await served(batched, 'on')), ...(await served(unbatched, 'off'))];
        process.stdout.write(
          `${table(
            [
              'mlp-large served',
              'batching',
              'conc',
              'req/s',
              'p50 ms',
              'p99 ms',
              'non-2xx',
              'mean batch',
              'run busy',
              'x in-process limit',
            ],
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
              r.result.rps / best.samplesPerSec,
            ]),
          )}\n\n`,
        );
        const rounds = await headline(limiter, best.batch, batched, unbatched);
        process.stdout.write(
          `${table(
            [
              `verdict rounds, concurrency 64 (binary)`,
              `in-process batch ${best.batch}`,
              'batched req/s',
              'unbatched req/s',
              'batched / unbatched',
              'batched / limit',
            ],
            rounds.map((r, i) => [
              `round ${i + 1}`,
              r.limit,
              r.batched,
              r.unbatched,
              r.batchedVsUnbatched,
              r.batchedVsLimit,
            ]),
          )}\n\n`,
        );
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

async function measure(): Promise<void> {
  process.stdout.write(
    `infergate bench:backend  (${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, node ${process.version}, ${threads} onnxruntime threads, mlp-large delay ${delayMs} ms, backend ${values.compiled ? 'compiled (dist/)' : 'through tsx'})\n\n`,
  );
  const part1 = overheadOnly ? undefined : await servedPart();

  const repo = await variant('simple-overhead', 64);
  const overheadRuns = await overhead(repo);
  process.stdout.write(
    `${table(
      [
        'simple, 8 connections (closed loop)',
        'req/s',
        'p50 ms',
        'p99 ms',
        'CPU us/request',
        'CPU ratio',
        'mean batch',
      ],
      overheadRuns.flatMap((r, i) => {
        const run = runs > 1 ? ` (round ${i + 1})` : '';
        return [
          [
            `backend${run}`,
            r.backend.rps,
            r.backend.p50Ms,
            r.backend.p99Ms,
            r.backend.cpuUsPerRequest!,
            r.cpuRatio,
            r.meanBatch,
          ],
          [
            `bare fastify (parse + fixed reply)${run}`,
            r.bare.rps,
            r.bare.p50Ms,
            r.bare.p99Ms,
            r.bare.cpuUsPerRequest!,
            '',
            '',
          ],
        ];
      }),
    )}\n\n`,
  );
  const cpuRatio = median(overheadRuns.map((r) => r.cpuRatio));
  const meanBatch = median(overheadRuns.map((r) => r.meanBatch));
  const runBatch = Math.max(1, Math.round(meanBatch));
  const runUs = await simpleRunCost(runBatch);
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
      `batched / unbatched at concurrency 64:      ${fmt(batchedVsUnbatched)}x (median of ${runs})   (aim >= 3x: ${verdict(batchedVsUnbatched >= 3)})`,
      `batched at 64 / in-process limit (batch ${best.batch}): ${fmt(batchedVsLimit)}x (median of ${runs})   (aim >= 0.7x: ${verdict(batchedVsLimit >= 0.7)})`,
    );
  }
  summary.push(
    `simple: backend CPU / bare fastify CPU:     ${fmt(cpuRatio)}x${runs > 1 ? ` (median of ${runs})` : ''}   (aim <= 1.5x: ${verdict(cpuRatio <= 1.5)})`,
  );
  process.stdout.write(`${summary.join('\n')}\n`);
  const last = overheadRuns[overheadRuns.length - 1]!;
  const report = {
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model, cores: availableParallelism(), node: process.version },
    settings: { threads, delayMs, compiled: values.compiled, runs, warmup },
    quick: values.quick,
    ...(part1 === undefined
      ? {}
      : { inProcess: part1.limit, served: part1.rows, verdictRounds: part1.rounds }),
    overhead: { backend: last.backend, bare: last.bare },
    overheadRuns,
    simpleSessionRun: { batch: runBatch, cpuUsPerRun: runUs, meanBatch, cpuUsPerRequest: runUs / meanBatch },
    ratios: {
      ...(part1 === undefined
        ? {}
        : { batchedVsUnbatched: part1.batchedVsUnbatched, batchedVsLimit: part1.batchedVsLimit }),
      simpleCpuVsBareFastify: cpuRatio,
    },
  };
  const file = overheadOnly ? 'backend-overhead.json' : `backend-${threads}t.json`;
  await mkdir(join(root, 'load', 'results'), { recursive: true });
  await writeFile(join(root, 'load', 'results', file), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`wrote load/results/${file}\n`);
}

try {
  if (values.profile) await profile(await variant('simple-overhead', 64));
  else await measure();
} finally {
  await rm(work, { recursive: true, force: true });
}
