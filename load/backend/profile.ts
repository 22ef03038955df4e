/**
 * `bench:backend --profile`: where the CPU of the backend (or, with --profile-target bare, of the
 * bare route) goes under part 2's load, from `node --cpu-prof`. Writes
 * load/results/backend-profile[-bare].json and keeps the .cpuprofile.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machine, root, simpleBody, writeResult } from '../common.js';
import { fmt, type LoadResult, load, startServer } from '../lib.js';
import { profileClockUs, profileIn, profileTables, summariseProfile } from '../profile.js';
import { type Bench, bareArgs } from './setup.js';

export async function profile(b: Bench, repo: string): Promise<void> {
  const target = b.o.profileTarget;
  const profDir = await mkdtemp(join(tmpdir(), `infergate-${target}-prof-`));
  const flags = ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', profDir];
  const server = await startServer(
    target === 'bare' ? [...flags, ...bareArgs] : [...flags, ...b.backendArgs(repo)],
  );
  let res: LoadResult;
  let start: number;
  let end: number;
  try {
    const url = `${server.url}/v2/models/simple/infer`;
    if (b.o.warmup > 0) await load({ url, connections: 8, amount: b.o.warmup, body: simpleBody });
    start = profileClockUs();
    res = await load({ url, connections: 8, amount: b.n(20000), body: simpleBody, pid: server.pid });
    end = profileClockUs();
  } finally {
    await server.stop(); // the profile is written as the process exits
  }
  const summary = await summariseProfile(await profileIn(profDir), { start, end }, res.requests, root);
  process.stdout.write(
    `${target} profile: ${res.requests} requests of simple at 8 connections, ${fmt(res.rps)} req/s; ` +
      `process CPU ${fmt(res.cpuUsPerRequest!)} us/request (profiler on); main thread busy ${fmt(summary.mainThreadBusyUsPerRequest)} us/request\n\n` +
      `${profileTables(summary)}\n\nprofile kept: ${summary.file}\n`,
  );
  await writeResult(`backend-profile${target === 'bare' ? '-bare' : ''}.json`, {
    date: new Date().toISOString(),
    machine: machine(),
    settings: { target, compiled: b.o.compiled },
    load: res,
    ...summary,
  });
}
