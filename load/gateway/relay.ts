/**
 * The relay target of bench:gateway: node:http in, undici `dispatch` out, the whole body buffered
 * both ways (as the gateway does), only content-type passed on: the floor for a Node proxy.
 * Run as its own process: `node --import tsx load/gateway/relay.ts ORIGIN`.
 */
import { createServer, type ServerResponse } from 'node:http';
import { type Dispatcher, Pool } from 'undici';

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
  const server = createServer((req, res) => {
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

const origin = process.argv[2];
if (origin === undefined) throw new Error('usage: relay.ts ORIGIN');
await runRelay(origin);
