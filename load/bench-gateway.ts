/**
 * `npm run bench:gateway`: what the gateway adds in front of one backend replica, every figure a
 * ratio taken in one run on this machine, on the cheap `simple` model (~300-byte JSON replies).
 *
 * Targets, all in front of the same backend replica:
 * - direct:  the backend itself (the baseline);
 * - gateway: `infergate gateway` with a one-model policy;
 * - nginx:   a plain reverse proxy (upstream keep-alive, HTTP/1.1), when `nginx` is on PATH;
 * - relay:   a bare node:http server relaying with undici `dispatch`: the floor for a Node proxy.
 *
 * Measured for each target, the targets taking turns in each phase:
 * 1. latency at a light fixed rate (default 200 req/s, open loop: requests are sent on a fixed
 *    schedule whatever the answers do, so the figure is the latency of one lone request, not of a
 *    burst). autocannon's own rate limit sends each second's requests back to back and records
 *    whole milliseconds, so this phase uses its own paced client and a microsecond clock;
 * 2. throughput at saturation (autocannon, 32 connections, a fixed request count);
 * 3. CPU microseconds per request of the proxy process itself (nginx: master and workers) and of
 *    the backend over a fixed request count at 8 connections: the steadiest figure on a noisy
 *    machine. CPU time is read from /proc/<pid>/task/<tid>/schedstat (nanoseconds, every thread);
 *    /proc/<pid>/stat (10 ms ticks) is kept in the JSON as a cross-check.
 * The light-load phase also reports the proxy's CPU per request at that rate, and what the
 * process burns while idle (measured just before), since at 200 req/s that is not negligible.
 *
 * Options: --quick (fewer requests, for a sanity run), --runs N (the whole round N times; the
 * table shows medians), --rate R (the light-load rate), --targets LIST (default
 * direct,gateway,nginx,relay), --compiled (backend and gateway from `npm run build` output in
 * dist/, not through tsx), --profile (instead of the measurements: the gateway under load with
 * `node --cpu-prof`, then its hottest functions; writes load/results/gateway-profile.json and
 * keeps the .cpuprofile; --profile-target relay profiles the bare relay instead, for comparison).
 * Writes a table to stdout and JSON to load/results/gateway-latest.json.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Dispatcher, Pool } from 'undici';
import { buildModelRepository } from '../models/build.js';
import {
  type ChildServer,
  cpuOf,
  cpuSeconds,
  fmt,
  type LoadResult,
  load,
  startServer,
  table,
} from './lib.js';
import { profileClockUs, profileIn, profileTables, summariseProfile } from './profile.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const thisFile = fileURLToPath(import.meta.url);

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string', default: '1' },
    rate: { type: 'string', default: '200' },
    targets: { type: 'string', default: 'direct,gateway,nginx,relay' },
    compiled: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-target': { type: 'string', default: 'gateway' },
    // Internal: this file started as the relay target.
    'relay-child': { type: 'string' },
  },
});

// ------------------------------------------------------------------------------------------------
// The relay target: node:http in, undici dispatch out, the whole body buffered both ways (as the
// gateway does), only content-type passed on. Started as a child of the benchmark.

class RelayHandler implements Dispatcher.DispatchHandler {
  private status = 502;
  private contentType: string | undefined;
  private readonly chunks: Buffer[] = [];

  constructor(private readonly res: ServerResponse) {}

  /** Its presence tells undici that this handler speaks the new (v7) handler API. */
  onRequestStart(): void {}

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, unknown>): void {
    this.status = status;
    const ct = headers['content-type'];
    if (typeof ct === 'string') this.contentType = ct;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const headers: Record<string, string | number> = { 'content-length': body.length };
    if (this.contentType !== undefined) headers['content-type'] = this.contentType;
    this.res.writeHead(this.status, headers);
    this.res.end(body);
  }

  onResponseError(_c: Dispatcher.DispatchController, _err: Error): void {
    if (!this.res.headersSent) this.res.writeHead(502, { 'content-length': 0 });
    this.res.end();
  }
}

async function runRelay(origin: string): Promise<void> {
  const pool = new Pool(origin, {
    connections: 128,
    keepAliveTimeout: 30_000,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      const ct = req.headers['content-type'];
      if (ct !== undefined) headers['content-type'] = ct;
      pool.dispatch(
        {
          method: req.method as Dispatcher.HttpMethod,
          path: req.url ?? '/',
          headers,
          body: chunks.length === 0 ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
        },
        new RelayHandler(res),
      );
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay: no address');
  process.stdout.write(`relay listening on http://127.0.0.1:${address.port}\n`);
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    void pool.close().finally(() => process.exit(0));
  });
}

// ------------------------------------------------------------------------------------------------
// The benchmark.

type TargetName = 'direct' | 'gateway' | 'nginx' | 'relay';
const TARGET_NAMES: readonly TargetName[] = ['direct', 'gateway', 'nginx', 'relay'];

interface Target {
  name: TargetName;
  /** The URL of `simple`'s infer endpoint through this target. */
  url: string;
  /** The processes whose CPU is the target's own (none for direct). */
  pids(): Promise<number[]>;
}

interface Latency {
  requests: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  failed: number;
  /** The proxy processes' CPU while idle just before, ms per second (undefined for direct). */
  idleCpuMsPerSecond?: number;
  /** CPU microseconds per request at this light rate (proxy processes; undefined for direct). */
  proxyCpuUsPerRequest?: number;
  /** The same less what the processes burn while idle over the same time. */
  proxyCpuUsPerRequestNetOfIdle?: number;
  backendCpuUsPerRequest: number;
}

interface Saturation {
  requests: number;
  /** Medians over the slices. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  sliceRps: number[];
  non2xx: number;
  errors: number;
  proxyCpuUsPerRequest?: number;
  backendCpuUsPerRequest: number;
  /** Cores busy on average while requests were in flight. */
  proxyCpuCores: number;
  backendCpuCores: number;
  /** This process: autocannon. */
  clientCpuCores: number;
}

interface Cpu {
  requests: number;
  rps: number;
  failed: number;
  proxyCpuUsPerRequest?: number;
  /** The same from /proc/<pid>/stat (10 ms ticks): a cross-check. */
  proxyCpuUsPerRequestFromTicks?: number;
  backendCpuUsPerRequest: number;
}

interface RunResult {
  latency: Partial<Record<TargetName, Latency>>;
  saturation: Partial<Record<TargetName, Saturation>>;
  cpu: Partial<Record<TargetName, Cpu>>;
}

/** Stops what the benchmark started, newest first; each by its pid, SIGKILL if it lingers. */
const cleanups: { name: string; pids: () => number[]; stop: () => Promise<void> }[] = [];

async function stopAll(): Promise<void> {
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    const pids = c.pids();
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      c.stop().then(
        () => true,
        () => false,
      ),
      new Promise<false>((ok) => {
        timer = setTimeout(() => ok(false), 10_000);
      }),
    ]);
    clearTimeout(timer);
    if (!stopped) for (const pid of pids) killQuietly(pid, 'SIGKILL');
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function track(name: string, server: ChildServer, extraPids: () => number[] = () => []): ChildServer {
  cleanups.push({ name, pids: () => [server.pid, ...extraPids()], stop: () => server.stop() });
  return server;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

/** Children of `pid`, from /proc (nginx's workers). */
async function childPids(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Runs `fn` and says how much CPU the proxy's processes and the backend used meanwhile, in us. */
async function metered<T>(
  pids: readonly number[],
  backendPid: number,
  fn: () => Promise<T>,
): Promise<{
  value: T;
  proxyUs: number;
  proxyTicksUs: number;
  backendUs: number;
  clientUs: number;
  seconds: number;
}> {
  const proxyBefore = await cpuOf(pids);
  let ticksBefore = 0;
  for (const pid of pids) ticksBefore += await cpuSeconds(pid);
  const backendBefore = await cpuOf([backendPid]);
  const client = process.cpuUsage();
  const started = performance.now();
  const value = await fn();
  const seconds = (performance.now() - started) / 1000;
  const clientUsage = process.cpuUsage(client);
  const proxyUs = ((await cpuOf(pids)) - proxyBefore) * 1e6;
  let ticksAfter = 0;
  for (const pid of pids) ticksAfter += await cpuSeconds(pid);
  const backendUs = ((await cpuOf([backendPid])) - backendBefore) * 1e6;
  return {
    value,
    proxyUs,
    proxyTicksUs: (ticksAfter - ticksBefore) * 1e6,
    backendUs,
    clientUs: clientUsage.user + clientUsage.system,
    seconds,
  };
}

function whichSync(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  for (const dir of ['/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

function nginxConfig(dir: string, listenPort: number, backendOrigin: string): string {
  const upstream = new URL(backendOrigin).host;
  return `# generated by load/bench-gateway.ts: nginx as a plain reverse proxy in front of one backend
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream backend {
    server ${upstream};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${listenPort};
    client_max_body_size 64m;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** nginx in the foreground; ready when a health request through it answers 200. */
async function startNginx(bin: string, dir: string, backendOrigin: string): Promise<ChildServer> {
  const port = await freePort();
  await writeFile(join(dir, 'nginx.conf'), nginxConfig(dir, port, backendOrigin));
  const child: ChildProcess = spawn(
    bin,
    ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const output: string[] = [];
  child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  let exited = false;
  const exit = new Promise<void>((ok) =>
    child.once('exit', () => {
      exited = true;
      ok();
    }),
  );
  const masterPid = child.pid!;
  let workers: number[] = [];
  const server: ChildServer = {
    url: `http://127.0.0.1:${port}`,
    pid: masterPid,
    stop: async () => {
      if (!exited) {
        child.kill('SIGQUIT'); // graceful: the master stops its workers
        await exit;
      }
    },
  };
  track('nginx', server, () => workers);
  const deadline = performance.now() + 15_000;
  const probe = new Pool(server.url, { connections: 1 });
  try {
    for (;;) {
      if (exited) throw new Error(`nginx exited: ${output.join('').slice(-2000)}`);
      try {
        const res = await probe.request({ path: '/v2/health/live', method: 'GET' });
        await res.body.dump();
        if (res.statusCode === 200) break;
      } catch {
        // not listening yet
      }
      if (performance.now() > deadline) throw new Error(`nginx did not answer: ${output.join('')}`);
      await sleep(100);
    }
  } finally {
    await probe.close();
  }
  workers = await childPids(masterPid);
  return server;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * Open-loop light load: `count` requests sent on a fixed schedule of `rate` per second, each timed
 * from its send to the last byte of its answer.
 */
async function paced(
  url: string,
  body: string,
  rate: number,
  count: number,
): Promise<{ latencies: number[]; failed: number }> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 8, keepAliveTimeout: 30_000 });
  const path = u.pathname;
  const latencies: number[] = [];
  let failed = 0;
  const one = async () => {
    const t0 = performance.now();
    try {
      const res = await pool.request({
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      await res.body.arrayBuffer();
      if (res.statusCode === 200) latencies.push(performance.now() - t0);
      else failed++;
    } catch {
      failed++;
    }
  };
  try {
    await one(); // opens a connection
    latencies.length = 0;
    failed = 0;
    const interval = 1000 / rate;
    const pending: Promise<void>[] = [];
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 0) await sleep(wait);
      pending.push(one());
    }
    await Promise.all(pending);
  } finally {
    await pool.close();
  }
  return { latencies, failed };
}

function latencyStats(latencies: number[]): Pick<Latency, 'p50Ms' | 'p90Ms' | 'p99Ms' | 'maxMs' | 'meanMs'> {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
  };
}

const simpleBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
  ],
});

/** One request through a target: status 200 and the same outputs as the backend's. */
async function check(url: string): Promise<{ outputs: unknown; bytes: number }> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 1 });
  try {
    const res = await pool.request({
      path: u.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: simpleBody,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}: ${text.slice(0, 500)}`);
    return { outputs: (JSON.parse(text) as { outputs: unknown }).outputs, bytes: Buffer.byteLength(text) };
  } finally {
    await pool.close();
  }
}

const sleep = (ms: number) => new Promise<void>((ok) => setTimeout(ok, ms));

function median(xs: readonly number[]): number {
  const sorted = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function repository(work: string): Promise<string> {
  const sample = join(root, 'models', 'repository');
  if (existsSync(join(sample, 'simple', '1', 'model.onnx'))) return sample;
  const dir = join(work, 'repository');
  await buildModelRepository(dir);
  return dir;
}

function policyYaml(backendOrigin: string): string {
  return `# generated by load/bench-gateway.ts
version: 1
defaults:
  timeoutMs: 2000
  retries: { attempts: 2, budgetPercent: 20 }
backends:
  bench: { endpoints: [${backendOrigin}] }
models:
  simple:
    variants:
      default: { backend: bench, model: simple, version: "1" }
`;
}

const cli = () =>
  values.compiled ? join(root, 'dist', 'cli', 'main.js') : join(root, 'bin', 'infergate.js');

async function startBackend(repo: string): Promise<ChildServer> {
  return track(
    'backend',
    await startServer([cli(), 'backend', '--model-repository', repo, '--port', '0', '--models', 'simple']),
  );
}

async function startGateway(policyFile: string, nodeFlags: string[] = []): Promise<ChildServer> {
  return track(
    'gateway',
    await startServer([
      ...nodeFlags,
      cli(),
      'gateway',
      '--policy',
      policyFile,
      '--port',
      '0',
      '--admin-port',
      '0',
    ]),
  );
}

async function main(): Promise<void> {
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const rate = Number(values.rate);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 5000) throw new Error('--rate must be in (0, 5000]');
  const wanted = values.targets.split(',').map((t) => t.trim());
  for (const t of wanted) {
    if (!TARGET_NAMES.includes(t as TargetName)) throw new Error(`--targets: unknown target '${t}'`);
  }
  if (values['profile-target'] !== 'gateway' && values['profile-target'] !== 'relay') {
    throw new Error(`--profile-target takes gateway or relay, not '${values['profile-target']}'`);
  }
  if (values.compiled && !existsSync(join(root, 'dist', 'cli', 'main.js'))) {
    throw new Error('--compiled needs `npm run build` first (dist/cli/main.js is missing)');
  }
  const quick = values.quick;
  const counts = {
    warmup: quick ? 1000 : 3000,
    latency: Math.round(rate * (quick ? 2 : 6)),
    saturation: quick ? 6000 : 30000,
    cpu: quick ? 4000 : 20000,
    idleMs: quick ? 500 : 1000,
    settleMs: quick ? 500 : 3000,
    slices: quick ? 2 : 3,
    saturationConnections: 32,
    cpuConnections: 8,
  };

  const work = await mkdtemp(join(tmpdir(), 'infergate-bench-gw-'));
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping the servers\n`);
    void stopAll()
      .then(() => rm(work, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Last resort (an exception that skips the finally below): nothing outlives the benchmark.
  process.once('exit', () => {
    for (const c of cleanups) for (const pid of c.pids()) killQuietly(pid, 'SIGKILL');
  });

  try {
    const repo = await repository(work);
    const backend = await startBackend(repo);
    const backendOrigin = backend.url;
    const policyFile = join(work, 'policy.yaml');
    await writeFile(policyFile, policyYaml(backendOrigin));
    const inferPath = '/v2/models/simple/infer';

    if (values.profile) {
      await profile(policyFile, backendOrigin, inferPath, counts);
      return;
    }

    const targets: Target[] = [];
    const notes: string[] = [];
    if (wanted.includes('direct')) {
      targets.push({ name: 'direct', url: `${backendOrigin}${inferPath}`, pids: async () => [] });
    }
    if (wanted.includes('gateway')) {
      const gw = await startGateway(policyFile);
      targets.push({ name: 'gateway', url: `${gw.url}${inferPath}`, pids: async () => [gw.pid] });
    }
    if (wanted.includes('nginx')) {
      const bin = whichSync('nginx');
      if (bin === undefined) {
        notes.push('nginx: not on PATH, not measured');
      } else {
        const dir = join(work, 'nginx');
        await mkdir(dir, { recursive: true });
        const ngx = await startNginx(bin, dir, backendOrigin);
        targets.push({
          name: 'nginx',
          url: `${ngx.url}${inferPath}`,
          pids: async () => [ngx.pid, ...(await childPids(ngx.pid))],
        });
      }
    }
    if (wanted.includes('relay')) {
      const relay = track(
        'relay',
        await startServer(['--import', 'tsx', thisFile, '--relay-child', backendOrigin]),
      );
      targets.push({ name: 'relay', url: `${relay.url}${inferPath}`, pids: async () => [relay.pid] });
    }

    // Every target answers, with the backend's own outputs.
    const reference = await check(`${backendOrigin}${inferPath}`);
    for (const t of targets) {
      const got = await check(t.url);
      if (JSON.stringify(got.outputs) !== JSON.stringify(reference.outputs)) {
        throw new Error(`${t.name} answered other outputs than the backend`);
      }
    }

    const versions = { nginx: await nginxVersion() };
    process.stdout.write(
      `infergate bench:gateway  (${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, node ${process.version}, ` +
        `${versions.nginx ?? 'no nginx'}, ${values.compiled ? 'compiled (dist/)' : 'through tsx'}${quick ? ', --quick' : ''})\n` +
        `simple: ${simpleBody.length}-byte request, ${reference.bytes}-byte reply; light load ${rate} req/s x ${counts.latency} (open loop); ` +
        `saturation ${counts.saturationConnections} connections x ${counts.saturation}; CPU ${counts.cpuConnections} connections x ${counts.cpu}; ` +
        `each phase in ${counts.slices} slices, the targets taking turns\n` +
        (notes.length > 0 ? `${notes.join('\n')}\n` : '') +
        '\n',
    );

    // Warm-up: JIT, connection pools.
    for (const t of targets) {
      await load({ url: t.url, connections: counts.cpuConnections, amount: counts.warmup, body: simpleBody });
    }

    // Each phase is cut into slices and the targets take turns slice by slice, so that a burst of
    // someone else's work on this shared machine spreads over every target rather than one.
    const results: RunResult[] = [];
    const part = (total: number) => Math.max(1, Math.round(total / counts.slices));
    for (let run = 0; run < runs; run++) {
      const r: RunResult = { latency: {}, saturation: {}, cpu: {} };

      // V8 keeps working for a few seconds after a burst (concurrent GC, the memory reducer,
      // compilation): let that settle before reading what the processes burn while idle.
      await sleep(counts.settleMs);
      const lat = new Map<
        TargetName,
        {
          latencies: number[];
          failed: number;
          proxyUs: number;
          backendUs: number;
          seconds: number;
          idleUsPerSecond: number;
        }
      >();
      for (const t of targets) {
        // What the processes burn doing nothing, for a fair read of the light-load CPU.
        const idle = await metered(await t.pids(), backend.pid, () => sleep(counts.idleMs));
        lat.set(t.name, {
          latencies: [],
          failed: 0,
          proxyUs: 0,
          backendUs: 0,
          seconds: 0,
          idleUsPerSecond: idle.proxyUs / idle.seconds,
        });
      }
      for (let slice = 0; slice < counts.slices; slice++) {
        for (const t of targets) {
          const acc = lat.get(t.name)!;
          const m = await metered(await t.pids(), backend.pid, () =>
            paced(t.url, simpleBody, rate, part(counts.latency)),
          );
          acc.latencies.push(...m.value.latencies);
          acc.failed += m.value.failed;
          acc.proxyUs += m.proxyUs;
          acc.backendUs += m.backendUs;
          acc.seconds += m.seconds;
        }
      }
      for (const t of targets) {
        const acc = lat.get(t.name)!;
        const n = acc.latencies.length + acc.failed;
        r.latency[t.name] = {
          requests: n,
          ...latencyStats(acc.latencies),
          failed: acc.failed,
          ...(t.name !== 'direct'
            ? {
                idleCpuMsPerSecond: acc.idleUsPerSecond / 1000,
                proxyCpuUsPerRequest: acc.proxyUs / n,
                proxyCpuUsPerRequestNetOfIdle: (acc.proxyUs - acc.idleUsPerSecond * acc.seconds) / n,
              }
            : {}),
          backendCpuUsPerRequest: acc.backendUs / n,
        };
      }

      /**
       * autocannon loads of `amount` requests in all at `connections`, the targets taking turns
       * slice by slice; each target's slices, and the CPU of its processes, summed.
       */
      const slicedLoads = async (connections: number, amount: number) => {
        const accs = new Map<
          TargetName,
          { slices: LoadResult[]; proxyUs: number; ticksUs: number; backendUs: number; clientUs: number }
        >();
        for (const t of targets) {
          accs.set(t.name, { slices: [], proxyUs: 0, ticksUs: 0, backendUs: 0, clientUs: 0 });
        }
        for (let slice = 0; slice < counts.slices; slice++) {
          for (const t of targets) {
            const acc = accs.get(t.name)!;
            const m = await metered(await t.pids(), backend.pid, () =>
              load({ url: t.url, connections, amount: part(amount), body: simpleBody }),
            );
            acc.slices.push(m.value);
            acc.proxyUs += m.proxyUs;
            acc.ticksUs += m.proxyTicksUs;
            acc.backendUs += m.backendUs;
            acc.clientUs += m.clientUs;
          }
        }
        return accs;
      };

      const sat = await slicedLoads(counts.saturationConnections, counts.saturation);
      for (const t of targets) {
        const acc = sat.get(t.name)!;
        const requests = acc.slices.reduce((a, x) => a + x.requests, 0);
        // Busy time: from each slice's first request to its last answer (the call itself ends on
        // autocannon's next one-second tick).
        const busy = acc.slices.reduce((a, x) => a + x.requests / x.rps, 0);
        r.saturation[t.name] = {
          requests,
          rps: median(acc.slices.map((x) => x.rps)),
          p50Ms: median(acc.slices.map((x) => x.p50Ms)),
          p99Ms: median(acc.slices.map((x) => x.p99Ms)),
          non2xx: acc.slices.reduce((a, x) => a + x.non2xx, 0),
          errors: acc.slices.reduce((a, x) => a + x.errors, 0),
          sliceRps: acc.slices.map((x) => x.rps),
          ...(t.name !== 'direct' ? { proxyCpuUsPerRequest: acc.proxyUs / requests } : {}),
          backendCpuUsPerRequest: acc.backendUs / requests,
          proxyCpuCores: acc.proxyUs / 1e6 / busy,
          backendCpuCores: acc.backendUs / 1e6 / busy,
          clientCpuCores: acc.clientUs / 1e6 / busy,
        };
      }

      const cpu = await slicedLoads(counts.cpuConnections, counts.cpu);
      for (const t of targets) {
        const acc = cpu.get(t.name)!;
        const n = acc.slices.reduce((a, x) => a + x.requests, 0);
        r.cpu[t.name] = {
          requests: n,
          rps: median(acc.slices.map((x) => x.rps)),
          failed: acc.slices.reduce((a, x) => a + x.non2xx + x.errors, 0),
          ...(t.name !== 'direct'
            ? { proxyCpuUsPerRequest: acc.proxyUs / n, proxyCpuUsPerRequestFromTicks: acc.ticksUs / n }
            : {}),
          backendCpuUsPerRequest: acc.backendUs / n,
        };
      }
      results.push(r);
      if (runs > 1) process.stdout.write(`run ${run + 1}/${runs} done\n`);
    }

    await report(targets, results, counts, rate, versions, notes, reference.bytes);
  } finally {
    await stopAll();
    await rm(work, { recursive: true, force: true });
  }
}

async function nginxVersion(): Promise<string | undefined> {
  const bin = whichSync('nginx');
  if (bin === undefined) return undefined;
  return new Promise((ok) => {
    const child = spawn(bin, ['-v'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let text = '';
    child.stderr!.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.once('error', () => ok(undefined));
    child.once('exit', () => ok(/nginx\/[\d.]+/.exec(text)?.[0]));
  });
}

function report(
  targets: readonly Target[],
  results: readonly RunResult[],
  counts: Record<string, number>,
  rate: number,
  versions: { nginx: string | undefined },
  notes: readonly string[],
  replyBytes: number,
): Promise<void> {
  const med = (f: (r: RunResult) => number | undefined) => median(results.map((r) => f(r) ?? Number.NaN));
  const summary = Object.fromEntries(
    targets.map((t) => {
      const n = t.name;
      return [
        n,
        {
          lightP50Ms: med((r) => r.latency[n]?.p50Ms),
          lightP99Ms: med((r) => r.latency[n]?.p99Ms),
          lightCpuUsPerRequest: med((r) => r.latency[n]?.proxyCpuUsPerRequest),
          lightCpuNetOfIdleUsPerRequest: med((r) => r.latency[n]?.proxyCpuUsPerRequestNetOfIdle),
          idleCpuMsPerSecond: med((r) => r.latency[n]?.idleCpuMsPerSecond),
          saturationRps: med((r) => r.saturation[n]?.rps),
          saturationP99Ms: med((r) => r.saturation[n]?.p99Ms),
          cpuUsPerRequest: med((r) => r.cpu[n]?.proxyCpuUsPerRequest),
          backendCpuUsPerRequest: med((r) => r.cpu[n]?.backendCpuUsPerRequest),
          failures: results.reduce(
            (a, r) =>
              a +
              (r.latency[n]?.failed ?? 0) +
              (r.saturation[n]?.non2xx ?? 0) +
              (r.saturation[n]?.errors ?? 0) +
              (r.cpu[n]?.failed ?? 0),
            0,
          ),
        },
      ];
    }),
  ) as Record<
    TargetName,
    {
      lightP50Ms: number;
      lightP99Ms: number;
      lightCpuUsPerRequest: number;
      lightCpuNetOfIdleUsPerRequest: number;
      idleCpuMsPerSecond: number;
      saturationRps: number;
      saturationP99Ms: number;
      cpuUsPerRequest: number;
      backendCpuUsPerRequest: number;
      failures: number;
    }
  >;
  const dash = (x: number | undefined, f: (v: number) => string | number = (v) => v) =>
    x === undefined || !Number.isFinite(x) ? '-' : f(x);
  const plus = (v: number) => `${v >= 0 ? '+' : ''}${fmt(v)}`;
  // Each ratio is taken within a run (both sides measured minutes apart at most), then the median
  // over runs.
  const has = (n: TargetName) => targets.some((t) => t.name === n);
  const perRun = (a: TargetName, b: TargetName, f: (r: RunResult, n: TargetName) => number | undefined) =>
    has(a) && has(b) ? med((r) => f(r, a)! / f(r, b)!) : undefined;
  const perRunDiff = (
    a: TargetName,
    b: TargetName,
    f: (r: RunResult, n: TargetName) => number | undefined,
  ) => (has(a) && has(b) ? med((r) => f(r, a)! - f(r, b)!) : undefined);
  const cpuOfRun = (r: RunResult, n: TargetName) => r.cpu[n]?.proxyCpuUsPerRequest;
  const rows = targets.map((t) => {
    const s = summary[t.name];
    return [
      t.name,
      s.lightP50Ms,
      s.lightP99Ms,
      dash(
        t.name !== 'direct' ? perRunDiff(t.name, 'direct', (r, n) => r.latency[n]?.p50Ms) : undefined,
        plus,
      ),
      dash(
        t.name !== 'direct' ? perRunDiff(t.name, 'direct', (r, n) => r.latency[n]?.p99Ms) : undefined,
        plus,
      ),
      s.saturationRps,
      dash(perRun(t.name, 'direct', (r, n) => r.saturation[n]?.rps)),
      dash(s.cpuUsPerRequest),
      dash(t.name !== 'direct' ? perRun(t.name, 'nginx', cpuOfRun) : undefined),
      dash(s.lightCpuUsPerRequest),
      dash(s.idleCpuMsPerSecond),
      s.backendCpuUsPerRequest,
      s.failures,
    ];
  });
  const head = [
    'target',
    'p50 ms',
    'p99 ms',
    'added p50',
    'added p99',
    'sat req/s',
    'x direct',
    'CPU us/req',
    'x nginx',
    `CPU @${rate}/s`,
    'idle ms/s',
    'backend us/req',
    'failed',
  ];
  let out = `${table(head, rows)}\n`;
  out +=
    `  p50/p99: open-loop ${rate} req/s, whole request; sat req/s: ${counts.saturationConnections} connections\n` +
    `  CPU us/req: the proxy's own process(es), all threads, at ${counts.cpuConnections} connections (nginx: master + worker)\n` +
    `  CPU @${rate}/s: the same at the light rate, idle burn included (idle ms/s: measured just before, after a pause)\n` +
    '  added, x direct, x nginx: taken within each run, then the median over runs\n';
  if (results.length > 1) {
    out += `\n${table(
      ['CPU us/req per run', ...results.map((_, i) => `run ${i + 1}`)],
      targets
        .filter((t) => t.name !== 'direct')
        .map((t) => [t.name, ...results.map((r) => dash(r.cpu[t.name]?.proxyCpuUsPerRequest))]),
    )}\n`;
  }
  const ratios = {
    gatewayAddedP50Ms: perRunDiff('gateway', 'direct', (r, n) => r.latency[n]?.p50Ms),
    gatewayAddedP99Ms: perRunDiff('gateway', 'direct', (r, n) => r.latency[n]?.p99Ms),
    gatewayVsDirectThroughput: perRun('gateway', 'direct', (r, n) => r.saturation[n]?.rps),
    gatewayVsNginxCpu: perRun('gateway', 'nginx', cpuOfRun),
    gatewayVsRelayCpu: perRun('gateway', 'relay', cpuOfRun),
    relayVsNginxCpu: perRun('relay', 'nginx', cpuOfRun),
    nginxAddedP50Ms: perRunDiff('nginx', 'direct', (r, n) => r.latency[n]?.p50Ms),
    nginxVsDirectThroughput: perRun('nginx', 'direct', (r, n) => r.saturation[n]?.rps),
    relayAddedP50Ms: perRunDiff('relay', 'direct', (r, n) => r.latency[n]?.p50Ms),
    relayVsDirectThroughput: perRun('relay', 'direct', (r, n) => r.saturation[n]?.rps),
  };
  const gw = summary.gateway;
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const lines: string[] = [];
  if (ratios.gatewayAddedP50Ms !== undefined) {
    const added = ratios.gatewayAddedP50Ms;
    lines.push(
      `gateway added p50 at ${rate} req/s:          ${fmt(added * 1000)} us   (aim <= 500 us: ${verdict(added <= 0.5)})`,
      `gateway added p99 at ${rate} req/s:          ${fmt(ratios.gatewayAddedP99Ms! * 1000)} us   (noisy on a shared machine)`,
      `gateway / direct throughput at saturation: ${fmt(ratios.gatewayVsDirectThroughput!)}x`,
    );
  }
  if (gw !== undefined) {
    lines.push(
      `gateway CPU per request:                   ${fmt(gw.cpuUsPerRequest)} us   (aim <= 100 us: ${verdict(gw.cpuUsPerRequest <= 100)})`,
    );
  }
  if (ratios.gatewayVsNginxCpu !== undefined) {
    const x = ratios.gatewayVsNginxCpu;
    lines.push(`gateway CPU / nginx CPU:                   ${fmt(x)}x   (aim <= 4x: ${verdict(x <= 4)})`);
  }
  if (ratios.gatewayVsRelayCpu !== undefined) {
    lines.push(`gateway CPU / bare node relay CPU:         ${fmt(ratios.gatewayVsRelayCpu)}x`);
  }
  if (ratios.relayVsNginxCpu !== undefined) {
    lines.push(
      `bare node relay CPU / nginx CPU:           ${fmt(ratios.relayVsNginxCpu)}x   (the floor for a Node proxy)`,
    );
  }
  if (results.length > 1) lines.push(`(medians over ${results.length} runs; each ratio taken within a run)`);
  out += `\n${lines.join('\n')}\n`;
  process.stdout.write(out);

  const json = {
    date: new Date().toISOString(),
    machine: {
      cpu: cpus()[0]?.model,
      cores: availableParallelism(),
      node: process.version,
      nginx: versions.nginx,
    },
    settings: {
      quick: values.quick,
      compiled: values.compiled,
      runs: results.length,
      rate,
      counts,
      requestBytes: simpleBody.length,
      replyBytes,
    },
    notes,
    summary,
    ratios: Object.fromEntries(Object.entries(ratios).filter(([, v]) => v !== undefined)),
    runs: results,
  };
  return writeResult('gateway-latest.json', json);
}

async function writeResult(file: string, data: unknown): Promise<void> {
  await mkdir(join(root, 'load', 'results'), { recursive: true });
  await writeFile(join(root, 'load', 'results', file), `${JSON.stringify(data, null, 2)}\n`);
  process.stdout.write(`wrote load/results/${file}\n`);
}

// ------------------------------------------------------------------------------------------------
// --profile: where the gateway's CPU goes.

async function profile(
  policyFile: string,
  backendOrigin: string,
  inferPath: string,
  counts: Record<string, number>,
): Promise<void> {
  const target = values['profile-target'];
  const profDir = await mkdtemp(join(tmpdir(), `infergate-${target}-prof-`));
  const profFlags = ['--cpu-prof', '--cpu-prof-dir', profDir];
  const gw =
    target === 'relay'
      ? track(
          'relay',
          await startServer([...profFlags, '--import', 'tsx', thisFile, '--relay-child', backendOrigin]),
        )
      : await startGateway(policyFile, profFlags);
  const url = `${gw.url}${inferPath}`;
  await load({ url, connections: counts.cpuConnections!, amount: counts.warmup!, body: simpleBody });
  // Keep the samples taken during the measured load, not start-up (module loading) nor the warm-up.
  const start = profileClockUs();
  const res = await load({
    url,
    connections: counts.cpuConnections!,
    amount: counts.cpu! * 2,
    body: simpleBody,
    pid: gw.pid,
  });
  const end = profileClockUs();
  // The profile is written when the process exits.
  const entry = cleanups.findIndex((c) => c.name === target);
  if (entry >= 0) cleanups.splice(entry, 1);
  await gw.stop();
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
    machine: { cpu: cpus()[0]?.model, cores: availableParallelism(), node: process.version },
    settings: {
      target,
      compiled: values.compiled,
      connections: counts.cpuConnections,
      requests: res.requests,
    },
    load: res,
    ...summary,
    profileFile: summary.file,
  });
}

// ------------------------------------------------------------------------------------------------

if (values['relay-child'] !== undefined) {
  await runRelay(values['relay-child']);
} else {
  await main();
}
