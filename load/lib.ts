/**
 * Helpers of the in-repo benchmark harness: child servers, their CPU time, autocannon runs and
 * tables (the closed-loop client: closed-loop.ts).
 * Everything talks to 127.0.0.1 only, runs a bounded number of requests and stops by itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

export interface ChildServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const CLK_TCK = 100;

/**
 * Starts `node ARGS...` and resolves with the URL it prints ("listening on http://...").
 * The child is killed if it does not announce itself within `timeoutMs`.
 */
export function startServer(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<ChildServer> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, INFERGATE_LOG_LEVEL: 'info', ...env, FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in ${timeoutMs} ms: ${stderr.join('').slice(-2000)}`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const m = /listening on (http:\/\/[^\s"]+)/.exec(line);
      if (m === null) return;
      clearTimeout(timer);
      resolve({ url: m[1]!, pid: child.pid!, stop: () => stopChild(child) });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${stderr.join('').slice(-2000)}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** User + system CPU seconds a process has used so far (Linux /proc). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/**
 * CPU seconds used so far by these processes, all their threads: from /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds on CPU), where the kernel has it; else /proc/<pid>/stat (10 ms ticks).
 */
export async function cpuOf(pids: readonly number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    let ns = 0;
    let ok = true;
    try {
      for (const tid of await readdir(`/proc/${pid}/task`)) {
        try {
          ns += Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')).split(' ')[0]);
        } catch {
          // the thread ended meanwhile
        }
      }
    } catch {
      ok = false;
    }
    total += ok && ns > 0 ? ns / 1e9 : await cpuSeconds(pid);
  }
  return total;
}

export interface LoadResult {
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  /** CPU microseconds the measured process spent per request, when a pid was given. */
  cpuUsPerRequest?: number;
}

export interface LoadOptions {
  url: string;
  connections: number;
  amount: number;
  body: Buffer | string;
  headers?: Record<string, string>;
  /** Measure this process's CPU over the run. */
  pid?: number;
}

export async function load(opts: LoadOptions): Promise<LoadResult> {
  const before = opts.pid === undefined ? 0 : await cpuOf([opts.pid]);
  // autocannon ends a run on its one-second tick, so its own duration is rounded up to whole
  // seconds; time the run from the first request to the last response instead.
  let first = 0;
  let last = 0;
  const result = await new Promise<autocannon.Result>((resolveRun, rejectRun) => {
    const instance = autocannon(
      {
        url: opts.url,
        method: 'POST',
        connections: opts.connections,
        amount: opts.amount,
        body: opts.body,
        headers: { 'content-type': 'application/json', ...opts.headers },
        timeout: 30,
      },
      (err, res) => (err ? rejectRun(err) : resolveRun(res)),
    );
    first = performance.now();
    instance.on('response', () => {
      last = performance.now();
    });
  });
  const after = opts.pid === undefined ? 0 : await cpuOf([opts.pid]);
  const requests = result.requests.total;
  const out: LoadResult = {
    requests,
    rps: (requests * 1000) / (last - first),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
  if (opts.pid !== undefined) out.cpuUsPerRequest = ((after - before) * 1e6) / requests;
  return out;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  const line = (r: (string | number)[]) => r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join(
    '\n',
  );
}

export function fmt(n: number): string {
  if (!Number.isFinite(n) || Number.isInteger(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}
