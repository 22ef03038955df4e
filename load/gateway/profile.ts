/**
 * `bench:gateway --profile`: instead of the measurements, the gateway (or, with
 * --profile-target relay, the bare relay) under the CPU phase's load with `node --cpu-prof`,
 * then its hottest functions. Writes load/results/gateway-profile[-relay].json and keeps the
 * .cpuprofile.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientHeaders, machine, root, simpleBody, writeResult } from '../common.js';
import { fmt, load } from '../lib.js';
import { profileClockUs, profileIn, profileTables, summariseProfile } from '../profile.js';
import type { Counts, Options } from './options.js';
import { track, untrack } from './processes.js';
import {
  inferPath,
  startGateway,
  startRelay,
  type TargetSetup,
  thisCli,
  type Upstream,
  writePolicy,
  writeSecurityPolicy,
} from './targets.js';

export async function profile(
  o: Options,
  counts: Counts,
  work: string,
  backend: Upstream,
  security?: TargetSetup['security'],
): Promise<void> {
  const target = o.profileTarget;
  const profDir = await mkdtemp(join(tmpdir(), `infergate-${target}-prof-`));
  const profFlags = ['--cpu-prof', '--cpu-prof-dir', profDir];
  const server = track(
    target,
    target === 'relay'
      ? await startRelay(backend.url, profFlags)
      : await startGateway(
          thisCli(o),
          security === undefined
            ? await writePolicy(work, backend)
            : await writeSecurityPolicy(work, backend, security.mode, security.keySha256),
          profFlags,
          {
            args:
              security?.redisUrl === undefined
                ? []
                : ['--redis', security.redisUrl, '--redis-prefix', 'bench-prof:'],
            env: {},
          },
        ),
  );
  const url = `${server.url}${inferPath}`;
  await load({
    url,
    connections: counts.cpuConnections,
    amount: counts.warmup,
    body: simpleBody,
    headers: clientHeaders,
  });
  // Keep the samples taken during the measured load, not start-up (module loading) nor the warm-up.
  const start = profileClockUs();
  const res = await load({
    url,
    connections: counts.cpuConnections,
    amount: counts.cpu * 2,
    body: simpleBody,
    headers: clientHeaders,
    pid: server.pid,
  });
  const end = profileClockUs();
  // The profile is written when the process exits.
  untrack(target);
  await server.stop();
  const summary = await summariseProfile(await profileIn(profDir), { start, end }, res.requests, root);
  process.stdout.write(
    `${target} profile: ${res.requests} requests at ${counts.cpuConnections} connections, ${fmt(res.rps)} req/s; ` +
      `process CPU ${fmt(res.cpuUsPerRequest!)} us/request (profiler on); main thread busy ${fmt(summary.mainThreadBusyUsPerRequest)} us/request\n\n`,
  );
  process.stdout.write(`${profileTables(summary)}\n\n`);
  process.stdout.write(
    `profile kept: ${summary.file} (open in Chrome DevTools or speedscope)\n` +
      "note: V8's sampler over-counts native callbacks that enter the kernel (writev): on this VM, Linux\n" +
      '`perf` put the kernel at ~20% of the gateway where this profile gives writev ~40%; compare JS\n' +
      'frames between targets (--profile-target relay), and read the native split with perf.\n',
  );
  await writeResult(`gateway-profile${target === 'relay' ? '-relay' : ''}.json`, {
    date: new Date().toISOString(),
    machine: machine(),
    settings: { target, compiled: o.compiled, connections: counts.cpuConnections, requests: res.requests },
    load: res,
    ...summary,
    profileFile: summary.file,
  });
}
