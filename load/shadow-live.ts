/**
 * `npm run bench:shadow -- --live`: the primary's latency at a light fixed rate and the gateway's
 * CPU per request, with shadowing at 100% on and off, in one run. Two backend replicas (the
 * primary serves mlp v1, the shadow mlp v2) and two gateways on the same primary replica, one
 * mirroring every request to the other replica and comparing, one not; the client paces requests
 * (open loop) and the two gateways take turns by slices, the order reversed each slice.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { buildModelRepository } from '../models/build.js';
import { latencyStats, root, sleep } from './common.js';
import { type ChildServer, cpuOf, startServer } from './lib.js';

const BODY = JSON.stringify({
  inputs: [
    { name: 'x', shape: [1, 64], datatype: 'FP32', data: Array.from({ length: 64 }, (_, i) => Math.sin(i)) },
  ],
});

async function paced(url: string, rate: number, count: number): Promise<number[]> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 8 });
  const latencies: number[] = [];
  const one = async () => {
    const t0 = performance.now();
    const res = await pool.request({
      method: 'POST',
      path: u.pathname,
      body: BODY,
      headers: { 'content-type': 'application/json' },
    });
    await res.body.arrayBuffer();
    if (res.statusCode === 200) latencies.push(performance.now() - t0);
  };
  try {
    await one();
    latencies.length = 0;
    const start = performance.now();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const wait = start + (i * 1000) / rate - performance.now();
      if (wait > 0) await sleep(wait);
      pending.push(one());
    }
    await Promise.all(pending);
  } finally {
    await pool.close();
  }
  return latencies;
}

/** One gateway's figures in the live run: the primary's latency and the gateway's CPU per request. */
export interface ShadowSide {
  requests: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number;
}

export interface ShadowLive {
  off: ShadowSide;
  on: ShadowSide;
  /** The table, Markdown. */
  text: string;
}

export async function shadowLive(opts: {
  rate: number;
  perSlice: number;
  slices: number;
  /** Requests to each gateway before the slices (200). */
  warmup?: number;
}): Promise<ShadowLive> {
  const work = await mkdtemp(join(tmpdir(), 'infergate-shadow-bench-'));
  const children: ChildServer[] = [];
  try {
    const repo = join(work, 'repository');
    await buildModelRepository(repo);
    const cli = join(root, 'bin', 'infergate.js');
    const backend = async () => {
      const s = await startServer([
        cli,
        'backend',
        '--model-repository',
        repo,
        '--port',
        '0',
        '--models',
        'mlp',
      ]);
      children.push(s);
      return s;
    };
    const primary = await backend();
    const shadowReplica = await backend();
    const gateway = async (name: string, shadow: boolean) => {
      const file = join(work, `${name}.yaml`);
      await writeFile(
        file,
        `version: 1
backends:
  primary: { endpoints: [${primary.url}] }
  shadow: { endpoints: [${shadowReplica.url}] }
models:
  mlp:
    variants:
      stable: { backend: primary, model: mlp, version: "1" }
      candidate: { backend: shadow, model: mlp, version: "2" }
    split: { stable: 1 }
${shadow ? '    shadow: { variant: candidate, percent: 100, classifications: [y] }\n' : ''}`,
      );
      const s = await startServer([cli, 'gateway', '--policy', file, '--port', '0', '--admin-port', '0']);
      children.push(s);
      return s;
    };
    const targets = { off: await gateway('off', false), on: await gateway('on', true) };
    const acc = { off: { lat: [] as number[], cpu: 0, n: 0 }, on: { lat: [] as number[], cpu: 0, n: 0 } };
    for (const name of ['off', 'on'] as const)
      await paced(`${targets[name].url}/v2/models/mlp/infer`, opts.rate, opts.warmup ?? 200);
    for (let slice = 0; slice < opts.slices; slice++) {
      const order = slice % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
      for (const name of order) {
        await sleep(300);
        const before = await cpuOf([targets[name].pid]);
        const lat = await paced(`${targets[name].url}/v2/models/mlp/infer`, opts.rate, opts.perSlice);
        await sleep(200); // the last copies' comparisons
        acc[name].cpu += (await cpuOf([targets[name].pid])) - before;
        acc[name].lat.push(...lat);
        acc[name].n += opts.perSlice;
      }
    }
    const rows = [
      '| gateway | requests | p50 ms | p99 ms | gateway CPU µs per request |',
      '|---|---|---|---|---|',
    ];
    const side = (name: 'off' | 'on'): ShadowSide => {
      const s = latencyStats(acc[name].lat);
      return {
        requests: acc[name].lat.length,
        p50Ms: s.p50Ms,
        p99Ms: s.p99Ms,
        cpuUsPerRequest: (1e6 * acc[name].cpu) / acc[name].n,
      };
    };
    const out = { off: side('off'), on: side('on') };
    for (const name of ['off', 'on'] as const) {
      const s = out[name];
      rows.push(
        `| shadow ${name} | ${s.requests} | ${s.p50Ms.toFixed(3)} | ${s.p99Ms.toFixed(3)} | ${s.cpuUsPerRequest.toFixed(0)} |`,
      );
    }
    return { ...out, text: rows.join('\n') };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await rm(work, { recursive: true, force: true });
  }
}
