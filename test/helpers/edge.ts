// Helpers for the edge tests (client limits, the admin port, TLS): a gateway built with the edge
// options, raw sockets that send exactly what a test writes, and the close events tests await.
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { pino } from 'pino';
import { FilePolicySource } from '../../gateway/policy/file-source.js';
import { buildGateway, type Gateway, type GatewayOptions } from '../../gateway/server.js';
import { tempDir } from './backend.js';

export interface EdgeGateway {
  gateway: Gateway;
  url: string;
  adminUrl: string;
  port: number;
  close(): Promise<void>;
}

/** A gateway on 127.0.0.1:0 over a policy file, with any of buildGateway's options. */
export async function startEdgeGateway(
  policy: string,
  opts: Partial<Omit<GatewayOptions, 'policySource'>> = {},
  adminHost = '127.0.0.1',
): Promise<EdgeGateway> {
  const dir = await tempDir('infergate-edge-');
  const file = path.join(dir, 'policy.yaml');
  await writeFile(file, policy);
  const gateway = await buildGateway({
    policySource: new FilePolicySource(file, { pollMs: 200 }),
    processMetrics: false,
    ...opts,
  });
  const url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  const adminUrl = await gateway.admin.listen({ host: adminHost, port: 0 });
  let closed = false;
  return {
    gateway,
    url,
    adminUrl,
    port: Number(new URL(url).port),
    async close() {
      if (closed) return;
      closed = true;
      await gateway.shutdown();
    },
  };
}

export interface RawExchange {
  /** Everything the server sent until it closed the connection. */
  readonly text: string;
  /** ms from the connection to its close. */
  readonly ms: number;
}

/** Writes `text` on a fresh connection and resolves when the server closes it (or `timeoutMs`). */
export function rawExchange(port: number, text: string, timeoutMs = 10_000): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `the server did not close the connection within ${timeoutMs} ms; got: ${data.slice(0, 200)}`,
        ),
      );
    }, timeoutMs);
    socket.on('data', (c: Buffer) => {
      data += c.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text: data, ms: Date.now() - started });
    });
  });
}

/** A raw HTTP response: its status, headers (lower-cased) and body. */
export function parseRawResponse(text: string): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const status = Number((statusLine ?? '').split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, body: text.slice(end + 4) };
}

/** A client socket that has connected and written `text`, with a promise of its close. */
export interface HeldSocket {
  readonly socket: net.Socket;
  /** Resolves with what the server sent, when the server closes the connection. */
  readonly closed: Promise<string>;
}

/** Opens a connection, writes `text` (e.g. half a request head) and keeps it open. */
export function holdConnection(
  port: number,
  text: string,
  secure?: tls.ConnectionOptions,
): Promise<HeldSocket> {
  return new Promise((resolve, reject) => {
    const onConnect = () => {
      socket.write(text);
      resolve({ socket, closed });
    };
    const socket: net.Socket =
      secure === undefined
        ? net.connect(port, '127.0.0.1', onConnect)
        : tls.connect({ port, host: '127.0.0.1', ...secure }, onConnect);
    let data = '';
    socket.on('data', (c: Buffer) => {
      data += c.toString('latin1');
    });
    const closed = new Promise<string>((resolveClose) => socket.on('close', () => resolveClose(data)));
    socket.once('error', reject);
  });
}

/** Nearest-rank percentile of a list of numbers. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

/** A logger whose JSON lines a test can await (`waitFor`), e.g. 'TLS certificate reloaded'. */
export class LogTap {
  readonly lines: { msg: string; level: number; [k: string]: unknown }[] = [];
  private readonly waiters: { match: (msg: string) => boolean; resolve: () => void }[] = [];
  readonly logger = pino(
    { level: 'info' },
    new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const text of chunk.toString('utf8').split('\n')) {
          if (text === '') continue;
          const line = JSON.parse(text) as LogTap['lines'][number];
          this.lines.push(line);
          for (const w of [...this.waiters]) {
            if (w.match(line.msg)) {
              this.waiters.splice(this.waiters.indexOf(w), 1);
              w.resolve();
            }
          }
        }
        done();
      },
    }),
  );

  /** Resolves at the next line (from now on) whose message matches; fails after `timeoutMs`. */
  next(pattern: RegExp, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no log line ${pattern} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        match: (msg) => pattern.test(msg),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}
