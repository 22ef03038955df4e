/**
 * `npm run bench:batch`: offline batch inference, every figure a ratio taken in one run on this
 * machine.
 *
 * 1. Throughput of mlp-large through `infergate batch` (client, gateway and backend each their own
 *    process, all on 127.0.0.1) beside in-process onnxruntime on the same model with the same
 *    threads at its best batch (the limit of this machine). Aim: >= 0.6x.
 * 2. Online p99 of mlp-large (closed loop, --online-connections) alone, and with a batch job
 *    running beside it through the same gateway and backend. Aim: + <= 20%.
 *
 * Options: --lines N (input lines, default 4000), --concurrency N (the batch client's, default
 * 32), --online N (online requests per phase, default 400), --online-connections N (default 4),
 * --max-in-flight N and --max-share S (the model's concurrency and batch share in the policy,
 * default 16 and 0.25), --threads N (onnxruntime intra-op threads for the backend and the limit,
 * default 2), --pack K (the batch client's --pack, default 1). Writes a table to stdout and JSON to load/results/batch-latest.json.
 */
import './usage.js';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { buildModelRepository } from '../models/build.js';
import { machine, root, writeResult } from './common.js';
import { type ChildServer, cpuOf, fmt, load, startServer, table } from './lib.js';

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '32' },
    online: { type: 'string', default: '400' },
    'online-connections': { type: 'string', default: '4' },
    'max-in-flight': { type: 'string', default: '16' },
    'max-share': { type: 'string', default: '0.25' },
    threads: { type: 'string', default: '2' },
    pack: { type: 'string', default: '1' },
  },
});
const o = {
  lines: Number(values.lines),
  concurrency: Number(values.concurrency),
  online: Number(values.online),
  onlineConnections: Number(values['online-connections']),
  maxInFlight: Number(values['max-in-flight']),
  maxShare: Number(values['max-share']),
  threads: Number(values.threads),
  pack: Number(values.pack),
};
const cli = join(root, 'bin', 'infergate.js');

function row(seed: number): Float32Array {
  const x = new Float32Array(512);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(seed * 31 + i);
  return x;
}
const body = (seed: number) =>
  JSON.stringify({ inputs: [{ name: 'x', shape: [1, 512], datatype: 'FP32', data: Array.from(row(seed)) }] });

/** In-process onnxruntime: samples a second at its best batch, same threads as the backend. */
async function inProcessLimit(
  repo: string,
): Promise<{ rate: number; batch: number; byBatch: Record<number, number> }> {
  const session = await ort.InferenceSession.create(join(repo, 'mlp-large', '1', 'model.onnx'), {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  let best = { rate: 0, batch: 0 };
  const byBatch: Record<number, number> = {};
  try {
    for (const batch of [1, 8, 32, 64]) {
      const data = new Float32Array(batch * 512);
      for (let b = 0; b < batch; b++) data.set(row(b), b * 512);
      const x = new ort.Tensor('float32', data, [batch, 512]);
      for (let i = 0; i < 3; i++) await session.run({ x });
      let runs = 0;
      const started = performance.now();
      while (performance.now() - started < 1500) {
        await session.run({ x });
        runs++;
      }
      const rate = (batch * runs * 1000) / (performance.now() - started);
      byBatch[batch] = Math.round(rate);
      if (rate > best.rate) best = { rate, batch };
    }
  } finally {
    await session.release();
  }
  return { ...best, byBatch };
}

interface BatchRun {
  seconds: number;
  linesPerSecond: number;
  ok: number;
  shed: number;
  exit: number | null;
  clientCpuSeconds: number;
}

function runBatch(url: string, input: string, output: string): Promise<BatchRun> {
  const args = [cli, 'batch', '--url', url, '--model', 'mlp-large', '--input', input, '--output', output];
  args.push('--concurrency', String(o.concurrency), '--pack', String(o.pack), '--overwrite', '--json');
  args.push('--progress-interval-s', '3600');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        const s = JSON.parse(last);
        resolve({
          seconds: s.run.seconds,
          linesPerSecond: s.run.linesPerSecond,
          ok: s.counts.ok,
          shed: s.run.backpressure,
          clientCpuSeconds: s.run.cpuSeconds,
          exit: code,
        });
      } catch {
        reject(new Error(`infergate batch exited ${code}: ${err.slice(-2000)}`));
      }
    });
  });
}

const work = await mkdtemp(join(tmpdir(), 'infergate-bench-batch-'));
const servers: ChildServer[] = [];
try {
  const repo = join(work, 'models');
  await buildModelRepository(repo);
  await writeFile(
    join(repo, 'mlp-large', 'config.yaml'),
    `max_batch_size: 64\nmax_queue_delay_ms: 1\nintra_op_threads: ${o.threads}\ninter_op_threads: 1\nexecution: worker\n`,
  );
  const limitBefore = await inProcessLimit(repo);

  const backend = await startServer([
    cli,
    'backend',
    '--model-repository',
    repo,
    '--port',
    '0',
    '--models',
    'mlp-large',
  ]);
  servers.push(backend);
  const policy = join(work, 'policy.yaml');
  await writeFile(
    policy,
    [
      'version: 1',
      'defaults: { timeoutMs: 30000 }',
      `backends: { pool: { endpoints: ["${backend.url}"] } }`,
      'models:',
      '  mlp-large:',
      '    variants: { v: { backend: pool, model: mlp-large } }',
      `    concurrency: { maxInFlight: ${o.maxInFlight}, maxQueue: 1024, queueTimeoutMs: 10000 }`,
      `    batch: { maxShare: ${o.maxShare} }`,
      '',
    ].join('\n'),
  );
  const gateway = await startServer([cli, 'gateway', '--policy', policy, '--port', '0', '--admin-port', '0']);
  servers.push(gateway);

  const input = join(work, 'in.jsonl');
  const lines: string[] = [];
  for (let i = 0; i < o.lines; i++) lines.push(body(i));
  await writeFile(input, `${lines.join('\n')}\n`);
  const onlineUrl = `${gateway.url}/v2/models/mlp-large/infer`;
  const online = () =>
    load({ url: onlineUrl, connections: o.onlineConnections, amount: o.online, body: body(7) });

  // Warm both paths, then the measured runs.
  await load({ url: onlineUrl, connections: o.onlineConnections, amount: 100, body: body(1) });
  const warmInput = join(work, 'warm.jsonl');
  await writeFile(warmInput, `${lines.slice(0, Math.min(500, lines.length)).join('\n')}\n`);
  await runBatch(gateway.url, warmInput, join(work, 'warm-out.jsonl'));
  const cpu0 = [await cpuOf([gateway.pid]), await cpuOf([backend.pid])];
  const alone = await runBatch(gateway.url, input, join(work, 'out-0.jsonl'));
  const cpu1 = [await cpuOf([gateway.pid]), await cpuOf([backend.pid])];
  // The limit again right after: the machine is shared, so the two batch figures sit between two
  // limit figures taken minutes apart, and their mean is the yardstick.
  const limitAfter = await inProcessLimit(repo);
  const limit = {
    rate: (limitBefore.rate + limitAfter.rate) / 2,
    batch: limitBefore.rate >= limitAfter.rate ? limitBefore.batch : limitAfter.batch,
    byBatch: limitAfter.byBatch,
    before: Math.round(limitBefore.rate),
    after: Math.round(limitAfter.rate),
  };
  const perLine = (sec: number) => (sec * 1e6) / o.lines;
  const cpuPerLine = {
    client: perLine(alone.clientCpuSeconds),
    gateway: perLine((cpu1[0] as number) - (cpu0[0] as number)),
    backend: perLine((cpu1[1] as number) - (cpu0[1] as number)),
  };
  const quiet = await online();
  const beside = runBatch(gateway.url, input, join(work, 'out-1.jsonl'));
  // The batch job takes its share first; online load starts once it runs.
  await new Promise((r) => setTimeout(r, 1000));
  const loaded = await online();
  const besideRun = await beside;
  const quiet2 = await online();
  const quietP99 = (quiet.p99Ms + quiet2.p99Ms) / 2;

  const throughputRatio = alone.linesPerSecond / limit.rate;
  const p99Ratio = loaded.p99Ms / quietP99;
  const m = machine();
  process.stdout.write(
    `infergate bench:batch  (${m.cpu ?? 'cpu'}, ${m.cores} cores, node ${m.node}); mlp-large, ${o.lines} lines, ` +
      `batch --concurrency ${o.concurrency} --pack ${o.pack}, ${o.threads} onnxruntime threads, policy maxInFlight ${o.maxInFlight}, batch.maxShare ${o.maxShare}\n\n`,
  );
  process.stdout.write(
    `${table(
      ['what', 'lines/s or req/s', 'p50 ms', 'p99 ms', 'note'],
      [
        [
          'in-process onnxruntime',
          fmt(limit.rate),
          '-',
          '-',
          `before ${limit.before}, after ${limit.after}; by batch ${JSON.stringify(limit.byBatch)}`,
        ],
        ['infergate batch alone', fmt(alone.linesPerSecond), '-', '-', `${alone.ok} ok, ${alone.shed} shed`],
        [
          'online alone (before)',
          fmt(quiet.rps),
          fmt(quiet.p50Ms),
          fmt(quiet.p99Ms),
          `${quiet.non2xx} non-2xx`,
        ],
        [
          'online beside batch',
          fmt(loaded.rps),
          fmt(loaded.p50Ms),
          fmt(loaded.p99Ms),
          `${loaded.non2xx} non-2xx`,
        ],
        [
          'online alone (after)',
          fmt(quiet2.rps),
          fmt(quiet2.p50Ms),
          fmt(quiet2.p99Ms),
          `${quiet2.non2xx} non-2xx`,
        ],
        [
          'infergate batch beside',
          fmt(besideRun.linesPerSecond),
          '-',
          '-',
          `${besideRun.ok} ok, ${besideRun.shed} shed`,
        ],
      ],
    )}\n\n`,
  );
  process.stdout.write(
    `CPU per line of the batch run alone: client ${fmt(cpuPerLine.client)} us, gateway ${fmt(cpuPerLine.gateway)} us, backend ${fmt(cpuPerLine.backend)} us (onnxruntime threads included)\n`,
  );
  process.stdout.write(
    `batch throughput / in-process limit:        ${throughputRatio.toFixed(3)}x   (aim >= 0.6: ${throughputRatio >= 0.6 ? 'met' : 'NOT met'})\n` +
      `online p99 beside batch / alone (mean of before and after): ${p99Ratio.toFixed(3)}x   (aim <= 1.2: ${p99Ratio <= 1.2 ? 'met' : 'NOT met'})\n`,
  );
  await writeResult('batch-latest.json', {
    machine: m,
    options: o,
    limit,
    alone,
    cpuPerLine,
    online: { quiet, loaded, quiet2 },
    besideRun,
    throughputRatio,
    p99Ratio,
  });
} finally {
  await Promise.all(servers.map((s) => s.stop()));
  await rm(work, { recursive: true, force: true });
}
