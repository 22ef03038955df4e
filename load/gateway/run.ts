/**
 * bench:gateway as a function (load/bench-gateway.ts is its CLI; load/bench-all.ts calls it too):
 * starts the upstreams and targets, runs the phases, prints the report and returns its JSON
 * (undefined with --profile). See load/bench-gateway.ts for the targets, phases and options.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientHeaders, machine, root, simpleBody } from '../common.js';
import { baselineWorktree, differsFrom } from './baseline.js';
import type { PhaseContext } from './meter.js';
import { nginxVersion } from './nginx.js';
import { type Counts, countsFor, type Options, type TargetName } from './options.js';
import { cpuPhase } from './phases/cpu.js';
import { lightPhase } from './phases/light.js';
import { moderatePhase, prepareWrk } from './phases/moderate.js';
import { saturationPhase } from './phases/saturation.js';
import { stopAll, stopOnSignals, whichSync } from './processes.js';
import { profile } from './profile.js';
import { type GatewayReport, report } from './report.js';
import type { RunResult } from './runs.js';
import {
  check,
  inferPath,
  startBackend,
  startFakeUpstream,
  startTargets,
  stopTargets,
  type TargetSetup,
  type Upstream,
} from './targets.js';
import { type RedisServer, startRedis } from '../../test/helpers/redis.js';
import { load } from '../lib.js';

/** Runs bench:gateway with `options`; `countsOverride` scales its request counts (bench-all --quick). */
export async function benchGateway(
  options: Options,
  countsOverride: Partial<Counts> = {},
): Promise<GatewayReport | undefined> {
  if (options.compiled && !existsSync(join(root, 'dist', 'cli', 'main.js'))) {
    throw new Error('--compiled needs `npm run build` first (dist/cli/main.js is missing)');
  }
  const counts = { ...countsFor(options), ...countsOverride };
  const phases = new Set(options.phases);
  const onBackend = phases.has('light') || phases.has('saturation') || phases.has('cpu');

  const work = await mkdtemp(join(tmpdir(), 'infergate-bench-gw-'));
  let redis: RedisServer | undefined;
  const forget = stopOnSignals(async () => {
    await redis?.close();
    await rm(work, { recursive: true, force: true });
  });
  let result: GatewayReport | undefined;
  try {
    const setup: TargetSetup = { options, work, baselineCli: undefined };
    if (options.security !== 'off') {
      const key = `igk_${randomBytes(24).toString('base64url')}`;
      clientHeaders['x-api-key'] = key;
      const keySha256 = createHash('sha256').update(key).digest('hex');
      if (options.security === 'redis') {
        redis = await startRedis();
        setup.security = { mode: 'redis', keySha256, redisUrl: redis.url };
      } else {
        setup.security = { mode: options.security, keySha256 };
      }
    }
    const securityNote =
      options.security === 'off'
        ? undefined
        : `security: the gateway target's policy asks for an API key (sent by every client to every target) and ` +
          `checks ${options.security === 'redis' ? 'global rate limits in Redis (one EVALSHA per request) on the model, the key and the key on the model, none of them reached' : options.security === 'auth' ? 'no rate limit' : 'local rate limits on the model, the key and the key on the model, none of them reached'}; ` +
          'the baseline serves the plain policy';
    const notes: string[] = securityNote === undefined ? [] : [securityNote];
    let baseline: { ref: string; commit: string } | undefined;
    if (options.baseline !== undefined && !options.profile) {
      const tree = await baselineWorktree(options.baseline);
      setup.baselineCli = tree.cli;
      baseline = { ref: options.baseline, commit: tree.commit };
      const differs = await differsFrom(tree.commit);
      notes.push(
        `baseline: ${options.baseline} = ${tree.commit.slice(0, 12)}; this checkout's gateway/common/cli/bin ` +
          (differs.length === 0
            ? 'are the same (an A/A run)'
            : `differ in ${differs.length} files: ${differs.join(', ')}`),
      );
    }
    if (options.targets.includes('nginx') && whichSync('nginx') === undefined) {
      notes.push('nginx: not on PATH, not measured');
    }
    let backend: Upstream | undefined;
    if (onBackend || options.profile) backend = await startBackend(options, work);
    if (options.profile) {
      await profile(options, counts, work, backend!, setup.security);
    } else {
      const wrk = phases.has('moderate') && options.wrk ? await prepareWrk(work) : undefined;
      if (phases.has('moderate') && options.wrk && wrk === undefined)
        notes.push('wrk: not on PATH, no cross-check');
      const fake = phases.has('moderate') ? await startFakeUpstream(options.upstreamDelayMs) : undefined;
      const replyBytes = (await check(`${(backend ?? fake)!.url}${inferPath}`)).bytes;
      const versions = { nginx: await nginxVersion(), ...(baseline !== undefined ? { baseline } : {}) };
      const m = machine();
      process.stdout.write(
        `infergate bench:gateway  (${m.cpu ?? 'cpu'}, ${m.cores} cores, node ${m.node}, ` +
          `${versions.nginx ?? 'no nginx'}, ${options.compiled ? 'compiled (dist/)' : 'through tsx'}${options.quick ? ', --quick' : ''})\n` +
          `simple: ${simpleBody.length}-byte request, ${replyBytes}-byte reply; phases ${options.phases.join(', ')}; ` +
          `light ${options.rate} req/s x ${counts.latency} (open loop); saturation ${counts.saturationConnections} connections x ${counts.saturation}; ` +
          `CPU ${counts.cpuConnections} connections x ${counts.cpu}; moderate ${counts.moderateConnections} connections x ${counts.moderate} ` +
          `(closed loop, fake upstream ${options.upstreamDelayMs} ms); each phase in ${counts.slices} slices, the targets taking turns; ` +
          'the proxies started afresh for each run\n' +
          (notes.length > 0 ? `${notes.join('\n')}\n` : '') +
          '\n',
      );
      const results: RunResult[] = [];
      let names: TargetName[] = [];
      let moderateNames: TargetName[] = [];
      for (let run = 0; run < options.runs; run++) {
        // Fresh proxy processes every run: two processes of one program can differ by several
        // percent for their whole life (code and heap placement), so each run pairs a new couple.
        const r: RunResult = { latency: {}, saturation: {}, cpu: {}, moderate: {} };
        if (backend !== undefined) {
          const targets = await startTargets(setup, backend);
          names = targets.map((t) => t.name);
          // Warm-up: JIT, connection pools.
          for (const t of targets) {
            await load({
              url: t.url,
              connections: counts.cpuConnections,
              amount: counts.warmup,
              body: simpleBody,
              headers: clientHeaders,
            });
          }
          const ctx: PhaseContext = { targets, upstream: backend, counts, run };
          if (phases.has('light')) r.latency = await lightPhase(ctx, options.rate);
          if (phases.has('saturation')) r.saturation = await saturationPhase(ctx);
          if (phases.has('cpu')) r.cpu = await cpuPhase(ctx);
          await stopTargets(backend);
        }
        if (fake !== undefined) {
          const targets = await startTargets(setup, fake);
          moderateNames = targets.map((t) => t.name);
          const wrkRun = wrk === undefined ? undefined : { ...wrk, seconds: counts.wrkSeconds };
          const moderate = await moderatePhase(
            targets,
            counts.moderateConnections,
            counts.moderateWarmup,
            wrkRun,
          );
          try {
            r.moderate = await moderate.run({ targets, upstream: fake, counts, run });
          } finally {
            moderate.close();
          }
          await stopTargets(fake);
        }
        results.push(r);
        if (options.runs > 1) process.stdout.write(`run ${run + 1}/${options.runs} done\n`);
      }
      result = report({ options, names, moderateNames, results, counts, versions, notes, replyBytes });
    }
  } finally {
    await stopAll();
    await redis?.close();
    await rm(work, { recursive: true, force: true });
    delete clientHeaders['x-api-key'];
    forget();
  }
  return result;
}
