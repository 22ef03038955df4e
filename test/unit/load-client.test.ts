// The benchmark's closed-loop client decides the figures bench:backend reports: these tests hold it
// to what it claims against a real HTTP server on port 0 (requests counted, statuses read,
// connections kept, bad answers refused).
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { ClosedLoop } from '../../load/closed-loop.js';
import { cpuOf } from '../../load/lib.js';

let server: Server;
let url: string;
const seen = { requests: 0, bodies: new Set<string>(), sockets: new Set<unknown>(), maxInFlight: 0 };
let inFlight = 0;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
  });
}

before(async () => {
  server = createServer(async (req, res) => {
    inFlight++;
    seen.maxInFlight = Math.max(seen.maxInFlight, inFlight);
    seen.requests++;
    seen.sockets.add(req.socket);
    seen.bodies.add(`${req.headers['content-type']} ${await readBody(req)}`);
    const n = seen.requests;
    // Answer out of order now and then, so that connections overlap.
    setImmediate(() => {
      inFlight--;
      if (req.url === '/chunked') {
        res.write('no length');
        res.end();
        return;
      }
      const body = JSON.stringify({ n });
      res.writeHead(n % 5 === 0 ? 503 : 200, {
        'content-type': 'application/json',
        'content-length': body.length,
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('ClosedLoop sends exactly the requests asked for, on its connections kept open, and counts non-2xx', async () => {
  const before = seen.requests;
  const client = new ClosedLoop(`${url}/x`, 4, '{"a":1}');
  try {
    const first = await client.run(50);
    const second = await client.run(50);
    assert.equal(seen.requests - before, 100);
    assert.equal(first.requests + second.requests, 100);
    // The server answers its every fifth request with 503.
    const fifths = Math.floor((before + 100) / 5) - Math.floor(before / 5);
    assert.equal(first.non2xx + second.non2xx, fifths);
    assert.equal(seen.sockets.size, 4, 'the same 4 connections served both runs');
    assert.ok(seen.maxInFlight > 1, 'requests overlapped');
    assert.deepEqual([...seen.bodies], ['application/json {"a":1}']);
    assert.ok(first.rps > 0 && first.p50Ms > 0 && first.p99Ms >= first.p50Ms, JSON.stringify(first));
  } finally {
    client.close();
  }
});

test('ClosedLoop sends a binary body with its own headers', async () => {
  seen.bodies.clear();
  const client = new ClosedLoop(`${url}/bin`, 1, Buffer.from([1, 2, 3]), {
    'content-type': 'application/octet-stream',
  });
  try {
    await client.run(3);
    assert.deepEqual([...seen.bodies], ['application/octet-stream \u0001\u0002\u0003']);
  } finally {
    client.close();
  }
});

test('ClosedLoop refuses an answer without Content-Length rather than miscount', async () => {
  const client = new ClosedLoop(`${url}/chunked`, 1, '{}');
  try {
    await assert.rejects(client.run(1), /answer without content-length/);
  } finally {
    client.close();
  }
});

test('ClosedLoop opens afresh the connections a server closed between runs (keep-alive timeout)', async () => {
  const sockets = new Set<unknown>();
  const short = createServer((req, res) => {
    sockets.add(req.socket);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-length': 2 }).end('{}'));
  });
  short.keepAliveTimeout = 50;
  await new Promise<void>((resolve) => short.listen(0, '127.0.0.1', resolve));
  const client = new ClosedLoop(`http://127.0.0.1:${(short.address() as AddressInfo).port}/`, 2, '{}');
  try {
    await client.run(10);
    const closed = new Promise<void>((resolve) => {
      let open = 2;
      for (const s of sockets) (s as Socket).once('close', () => --open === 0 && resolve());
    });
    await closed; // the server's keep-alive timeout ends both idle connections
    const second = await client.run(10);
    assert.equal(second.requests, 10);
    assert.equal(sockets.size, 4, 'two fresh connections for the second run');
  } finally {
    client.close();
    short.closeAllConnections();
    await new Promise<void>((resolve) => short.close(() => resolve()));
  }
});

test('ClosedLoop fails a run whose connection the server closes mid-run, rather than wait forever', async () => {
  const rude = createServer((req) => req.socket.destroy());
  await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve));
  const client = new ClosedLoop(`http://127.0.0.1:${(rude.address() as AddressInfo).port}/`, 1, '{}');
  try {
    await assert.rejects(client.run(1), /closed a connection mid-run|ECONNRESET/);
  } finally {
    client.close();
    await new Promise<void>((resolve) => rude.close(() => resolve()));
  }
});

test('cpuOf reads a process CPU time that grows as it works', async () => {
  const t0 = await cpuOf([process.pid]);
  const start = process.cpuUsage();
  let x = 0;
  // 30 ms of CPU by the process's own count, however long the machine makes that take.
  while (cpuMs(process.cpuUsage(start)) < 30) x += Math.sqrt(x + 1);
  const t1 = await cpuOf([process.pid]);
  assert.ok(x > 0, 'the work was done');
  assert.ok(t1 - t0 >= 0.025, `CPU grew by ${t1 - t0} s over 30 ms of work`);
});

function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}
