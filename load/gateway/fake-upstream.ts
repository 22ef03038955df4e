/**
 * The fake upstream of bench:gateway's moderate phase: a bare node:http server that answers every
 * POST with one fixed OIP v2 answer (the shape of `simple`'s) after a fixed delay, and the health
 * routes at once. The delay keeps 8 closed-loop connections at a moderate rate (about 1,000-1,500
 * requests a second at 5 ms), where a proxy's added latency, not its throughput, is what shows.
 * Run as its own process: `node --import tsx load/gateway/fake-upstream.ts DELAY_MS`.
 */
import { createServer } from 'node:http';
import { simpleAnswer } from '../common.js';

function serve(delayMs: number): void {
  const answer = Buffer.from(simpleAnswer);
  const headers = { 'content-type': 'application/json', 'content-length': answer.length };
  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
      res.end('{}');
      req.resume();
      return;
    }
    req.resume(); // the body is read and dropped
    req.once('end', () => {
      setTimeout(() => {
        res.writeHead(200, headers);
        res.end(answer);
      }, delayMs);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('fake upstream: no address');
    process.stdout.write(`fake upstream listening on http://127.0.0.1:${address.port}\n`);
  });
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}

serve(Number(process.argv[2] ?? '5'));
