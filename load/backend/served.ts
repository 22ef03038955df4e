/**
 * Part 1 of bench:backend, the load table: mlp-large served by one backend at concurrency 1, 16
 * and 64 (binary tensor extension) and 64 (JSON), with each load's mean batch and the share of
 * its wall time onnxruntime was busy, from the backend's histograms.
 */
import { ClosedLoop } from '../closed-loop.js';
import { type ChildServer, type LoadResult, load } from '../lib.js';
import type { Bench } from './setup.js';

/** One mlp-large sample, FP32 [1, 512], with the binary tensor extension (and a binary answer). */
export function binaryBody(): { body: Buffer; headers: Record<string, string> } {
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

export interface ServedRow {
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
export async function served(b: Bench, server: ChildServer, batching: 'on' | 'off'): Promise<ServedRow[]> {
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
  await load({ url, connections: 16, amount: b.n(400), ...bin }); // warm-up
  for (const concurrency of [1, 16, 64]) {
    await run('binary', concurrency, b.n(concurrency === 1 ? 1500 : batching === 'on' ? 12000 : 4000));
  }
  await run('json', 64, b.n(batching === 'on' ? 8000 : 4000));
  return rows;
}

/**
 * A closed-loop client of mlp-large, not autocannon: on a small machine the client shares the
 * cores with the backend, and the leaner it is, the more of them the backend gets.
 */
export function mlpClient(server: ChildServer, connections: number, encoding: 'binary' | 'json'): ClosedLoop {
  const url = `${server.url}/v2/models/mlp-large/infer`;
  if (encoding === 'json') return new ClosedLoop(url, connections, jsonMlpBody);
  const bin = binaryBody();
  return new ClosedLoop(url, connections, bin.body, bin.headers);
}

/** Sums and counts of the backend's batch-size and compute histograms for one model. */
export async function histogramTotals(
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
