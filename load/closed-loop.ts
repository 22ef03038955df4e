/**
 * The benchmarks' closed-loop client (see ClosedLoop). Talks to 127.0.0.1 only, runs a bounded
 * number of requests, and fails a run rather than wait forever.
 */
import { createConnection, type Socket } from 'node:net';
import { cpuOf, type LoadResult } from './lib.js';

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
