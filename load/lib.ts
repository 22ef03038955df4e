/**
 * Helpers of the in-repo benchmark harness: child servers, their CPU time, and autocannon runs.
 * Everything talks to 127.0.0.1 only, runs a bounded number of requests and stops by itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createConnection, type Socket } from 'node:net';
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

/**
 * A closed-loop client on connections that stay open between runs: `connections` requests in
 * flight, each sent as soon as the last one on its connection is answered. Unlike `load`
 * (autocannon, which opens its connections afresh and ends on a one-second tick), a run costs
 * the server nothing but its requests, so that short runs can take turns with another target.
 * It writes one prepared HTTP/1.1 request and reads answers by their Content-Length, which
 * keeps its own CPU per request below autocannon's: on a small machine the client's share
 * decides how many requests meet at the server.
 */
export class ClosedLoop {
  /** A run fails when a connection waits this long for an answer: runs stop by themselves. */
  static answerTimeoutMs = 30_000;
  private readonly request: Buffer;
  private sockets: Socket[] = [];

  constructor(
    private readonly url: string,
    private readonly connections: number,
    body: Buffer | string,
    headers: Record<string, string> = { 'content-type': 'application/json' },
  ) {
    const u = new URL(url);
    const payload = typeof body === 'string' ? Buffer.from(body) : body;
    let head = `POST ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\ncontent-length: ${payload.length}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    this.request = Buffer.concat([Buffer.from(`${head}\r\n`), payload]);
  }

  /**
   * Opens the connections that are missing: all at first, and afresh any that the server closed
   * while it sat idle between runs (a keep-alive timeout).
   */
  private async connect(): Promise<void> {
    this.sockets = this.sockets.filter((s) => !s.destroyed && s.readyState === 'open');
    if (this.sockets.length === this.connections) return;
    const u = new URL(this.url);
    const fresh = await Promise.all(
      Array.from(
        { length: this.connections - this.sockets.length },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const socket = createConnection({ host: u.hostname, port: Number(u.port) }, () => {
              socket.off('error', reject);
              resolve(socket);
            });
            socket.setNoDelay(true);
            socket.once('error', reject);
            // A close between runs is noticed by the next connect(); one mid-run fails that run.
            socket.on('error', () => {});
          }),
      ),
    );
    this.sockets.push(...fresh);
  }

  /**
   * Sends `amount` requests; with `pid`, reads that process's CPU over the run; with `sink`,
   * pushes each answered request's latency (ms, microsecond clock) onto it.
   */
  async run(amount: number, pid?: number, sink?: number[]): Promise<LoadResult> {
    await this.connect();
    const before = pid === undefined ? 0 : await cpuOf([pid]);
    const latencies: number[] = [];
    let non2xx = 0;
    let sent = 0;
    const started = performance.now();
    await Promise.all(
      this.sockets.map(
        (socket) =>
          new Promise<void>((resolve, reject) => {
            let buffered: Buffer = Buffer.alloc(0);
            let t0 = 0;
            const send = () => {
              if (sent >= amount) {
                done();
                resolve();
                return;
              }
              sent++;
              t0 = performance.now();
              socket.write(this.request);
            };
            const done = () => {
              socket.off('data', onData);
              socket.off('error', onError);
              socket.off('close', onClose);
              socket.off('timeout', onTimeout);
              socket.setTimeout(0);
            };
            const onError = (e: Error) => {
              done();
              reject(e);
            };
            const onClose = () => onError(new Error('the server closed a connection mid-run'));
            const onTimeout = () => onError(new Error(`no answer in ${ClosedLoop.answerTimeoutMs} ms`));
            const onData = (chunk: Buffer) => {
              buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
              const end = buffered.indexOf('\r\n\r\n');
              if (end < 0) return;
              const head = buffered.toString('latin1', 0, end);
              const m = /\r\ncontent-length: *(\d+)/i.exec(head);
              if (m === null) {
                onError(new Error(`answer without content-length: ${head.slice(0, 200)}`));
                return;
              }
              const total = end + 4 + Number(m[1]);
              if (buffered.length < total) return;
              if (buffered.length > total) {
                onError(new Error('more bytes than one answer: the server answered unasked'));
                return;
              }
              buffered = Buffer.alloc(0);
              latencies.push(performance.now() - t0);
              const status = Number(head.slice(9, 12));
              if (status < 200 || status > 299) non2xx++;
              send();
            };
            socket.on('data', onData);
            socket.on('error', onError);
            socket.on('close', onClose);
            socket.on('timeout', onTimeout);
            socket.setTimeout(ClosedLoop.answerTimeoutMs);
            send();
          }),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const after = pid === undefined ? 0 : await cpuOf([pid]);
    if (sink !== undefined) for (const l of latencies) sink.push(l);
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
    const out: LoadResult = {
      requests: amount,
      rps: amount / seconds,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      non2xx,
      errors: 0,
    };
    if (pid !== undefined) out.cpuUsPerRequest = ((after - before) * 1e6) / amount;
    return out;
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets = [];
  }
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
