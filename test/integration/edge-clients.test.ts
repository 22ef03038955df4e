// Slow and malformed clients: header, request and keep-alive timeouts, the connection cap, and
// every refusal of node's HTTP parser answered in the error catalogue's form, on both tiers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Pool } from 'undici';
import { buildBackend } from '../../backend/server.js';
import type { ClientLimits } from '../../common/client-limits.js';
import { removeTempDirs, scrape, sampleValue, tempDir, waitFor } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';
import {
  type EdgeGateway,
  holdConnection,
  parseRawResponse,
  percentile,
  rawExchange,
  startEdgeGateway,
} from '../helpers/edge.js';
import { type FakeReplica, policyYaml, startFakeReplica } from '../helpers/gateway.js';

const BODY = '{"inputs":[]}';
const INFER = `POST /v2/models/m/infer HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`;
const HALF_HEAD = 'POST /v2/models/m/infer HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n';

let fake: FakeReplica;
const closers: (() => Promise<unknown>)[] = [];
before(async () => {
  fake = await startFakeReplica();
});
after(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  await fake.close();
  await removeTempDirs();
});

async function gateway(limits: Partial<ClientLimits>): Promise<EdgeGateway> {
  const policy = policyYaml({
    variants: { only: { endpoints: [fake.url] } },
    defaults: { healthCheck: { intervalMs: 0 } },
  });
  const g = await startEdgeGateway(policy, {
    clientLimits: {
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      keepAliveTimeoutMs: 30_000,
      maxConnections: 0,
      ...limits,
    },
  });
  closers.push(() => g.close());
  return g;
}

function errorOf(text: string): { status: number; body: { error: string; code: string; field?: string } } {
  const r = parseRawResponse(text);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers.connection, 'close');
  assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
  return { status: r.status, body: JSON.parse(r.body) };
}

describe('parser refusals are answered from the catalogue, then the connection closes', () => {
  let g: EdgeGateway;
  before(async () => {
    g = await gateway({});
  });

  test('Content-Length with Transfer-Encoding: 400 GW_ERR_BAD_REQUEST, field transfer-encoding', async () => {
    const r = await rawExchange(
      g.port,
      'POST /v2/models/m/infer HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc',
    );
    const e = errorOf(r.text);
    assert.equal(e.status, 400);
    assert.equal(e.body.code, 'GW_ERR_BAD_REQUEST');
    assert.equal(e.body.field, 'transfer-encoding');
    assert.match(e.body.error, /Transfer-Encoding can't be present with Content-Length/);
  });

  test('a bad HTTP version: 400 GW_ERR_BAD_REQUEST, field version', async () => {
    const e = errorOf((await rawExchange(g.port, 'GET /v2/health/live HTTP/9.9\r\nHost: gw\r\n\r\n')).text);
    assert.equal(e.status, 400);
    assert.equal(e.body.code, 'GW_ERR_BAD_REQUEST');
    assert.equal(e.body.field, 'version');
  });

  test('a 70 KB header: 431 GW_ERR_HEADERS_TOO_LARGE', async () => {
    const big = `GET /v2/health/live HTTP/1.1\r\nHost: gw\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`;
    const e = errorOf((await rawExchange(g.port, big)).text);
    assert.equal(e.status, 431);
    assert.equal(e.body.code, 'GW_ERR_HEADERS_TOO_LARGE');
    assert.equal(e.body.field, 'headers');
  });

  test('the refusals are counted by reason', async () => {
    const { samples } = await scrape(g.adminUrl);
    const count = (reason: string) => sampleValue(samples, 'infergate_client_refusals_total', { reason });
    assert.equal(count('bad_request'), 2);
    assert.equal(count('headers_too_large'), 1);
    assert.equal(count('timeout'), 0);
  });

  test('the admin port answers its parser refusals the same way', async () => {
    const port = Number(new URL(g.adminUrl).port);
    const e = errorOf((await rawExchange(port, 'GET /metrics HTTP/9.9\r\nHost: gw\r\n\r\n')).text);
    assert.equal(e.body.code, 'GW_ERR_BAD_REQUEST');
  });
});

describe('timeouts', () => {
  test('a head that never ends: 408 GW_ERR_REQUEST_TIMEOUT after the header timeout, then closed', async () => {
    const g = await gateway({ headersTimeoutMs: 500, requestTimeoutMs: 5000 });
    const r = await rawExchange(g.port, HALF_HEAD);
    const e = errorOf(r.text);
    assert.equal(e.status, 408);
    assert.equal(e.body.code, 'GW_ERR_REQUEST_TIMEOUT');
    assert.ok(r.ms >= 400, `closed after ${r.ms} ms`);
    // A connection that sends nothing at all is closed by the same timeout.
    assert.equal(errorOf((await rawExchange(g.port, '')).text).status, 408);
  });

  test('a body that never ends: 408 after the request timeout', async () => {
    const g = await gateway({ headersTimeoutMs: 300, requestTimeoutMs: 800 });
    const head = 'POST /v2/models/m/infer HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n{"inputs":';
    const r = await rawExchange(g.port, head);
    assert.equal(errorOf(r.text).body.code, 'GW_ERR_REQUEST_TIMEOUT');
    assert.ok(r.ms >= 700, `closed after ${r.ms} ms`);
  });

  test('an idle keep-alive connection is closed after the keep-alive timeout', async () => {
    const g = await gateway({ keepAliveTimeoutMs: 300 });
    const held = await holdConnection(g.port, INFER);
    const text = await held.closed;
    assert.equal(parseRawResponse(text).status, 200);
  });
});

describe('the connection cap', () => {
  test('beyond --max-connections a connection is closed as it is accepted; the others are served', async () => {
    const g = await gateway({ maxConnections: 3 });
    const held = await Promise.all([1, 2, 3].map(() => holdConnection(g.port, '')));
    const refused = await rawExchange(g.port, INFER, 5000);
    assert.equal(refused.text, '', 'nothing is answered on a connection over the cap');
    held[0]?.socket.write(INFER.replace('Host: gw', 'Host: gw\r\nConnection: close'));
    assert.equal(parseRawResponse((await held[0]?.closed) ?? '').status, 200);
    // The server counts the closed connection out when its side closes: poll with a deadline.
    const served = await waitFor('a connection under the cap again', async () => {
      const r = await rawExchange(g.port, INFER.replace('Host: gw', 'Host: gw\r\nConnection: close'));
      return r.text === '' ? undefined : r;
    });
    assert.equal(parseRawResponse(served.text).status, 200);
    const { samples } = await scrape(g.adminUrl);
    assert.ok(
      (sampleValue(samples, 'infergate_client_refusals_total', { reason: 'connection_limit' }) ?? 0) >= 1,
    );
    for (const h of held) h.socket.destroy();
  });
});

describe('1,000 slow-header connections', () => {
  test('are held while other clients are served, then closed by the header timeout', async () => {
    const g = await gateway({ headersTimeoutMs: 4000, requestTimeoutMs: 8000, maxConnections: 0 });
    const pool = new Pool(g.url, { connections: 4 });
    closers.push(() => pool.close());
    const timed = async (n: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        const res = await pool.request({
          method: 'POST',
          path: '/v2/models/m/infer',
          headers: { 'content-type': 'application/json' },
          body: BODY,
        });
        await res.body.text();
        assert.equal(res.statusCode, 200);
        out.push(performance.now() - t);
      }
      return out;
    };
    await timed(20); // warm-up
    const baseline = await timed(100);

    const opened = performance.now();
    const slow = await Promise.all(Array.from({ length: 1000 }, () => holdConnection(g.port, HALF_HEAD)));
    let closedEarly = 0;
    for (const s of slow) void s.closed.then(() => closedEarly++);
    const during = await timed(100);
    const servedWithin = performance.now() - opened;
    if (servedWithin < 3500)
      assert.equal(closedEarly, 0, 'the slow connections were still open while others were served');

    const b50 = percentile(baseline, 50);
    const d50 = percentile(during, 50);
    const d99 = percentile(during, 99);
    process.stdout.write(
      `# normal clients: p50 ${b50.toFixed(2)} ms alone, ${d50.toFixed(2)} ms (p99 ${d99.toFixed(2)} ms) beside 1,000 slow heads\n`,
    );
    // Loose: served, and not slowed by an order of magnitude.
    assert.ok(d50 < b50 * 10 + 20, `p50 ${d50} ms beside the slow connections, ${b50} ms alone`);

    let timer: NodeJS.Timeout | undefined;
    const answers = await Promise.race([
      Promise.all(slow.map((s) => s.closed)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error('the slow connections were not all closed within 30 s')),
          30_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    for (const text of answers) assert.equal(errorOf(text).body.code, 'GW_ERR_REQUEST_TIMEOUT');
    const { samples } = await scrape(g.adminUrl);
    assert.equal(sampleValue(samples, 'infergate_client_refusals_total', { reason: 'timeout' }), 1000);
  });
});

describe('the backend', () => {
  test('answers parser refusals and slow heads from its own catalogue', async () => {
    const backend = await buildBackend({
      modelRepository: await tempDir(),
      loadAll: false,
      processMetrics: false,
      clientLimits: {
        headersTimeoutMs: 300,
        requestTimeoutMs: 1000,
        keepAliveTimeoutMs: 1000,
        maxConnections: 0,
      },
    });
    const port = Number(new URL(await backend.app.listen({ host: '127.0.0.1', port: 0 })).port);
    closers.push(() => backend.shutdown());
    const bad = errorOf((await rawExchange(port, 'GET /v2 HTTP/9.9\r\nHost: be\r\n\r\n')).text);
    assert.deepEqual([bad.status, bad.body.code, bad.body.field], [400, 'BE_ERR_BAD_REQUEST', 'version']);
    const big = `GET /v2 HTTP/1.1\r\nHost: be\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`;
    assert.equal(errorOf((await rawExchange(port, big)).text).body.code, 'BE_ERR_HEADERS_TOO_LARGE');
    assert.equal(errorOf((await rawExchange(port, HALF_HEAD)).text).body.code, 'BE_ERR_REQUEST_TIMEOUT');
  });
});

describe('the flags', () => {
  test('a request timeout shorter than the header timeout is a usage error (exit 2)', async () => {
    const p = runCli([
      'gateway',
      '--policy',
      '/nonexistent.yaml',
      '--headers-timeout-ms',
      '5000',
      '--request-timeout-ms',
      '1000',
    ]);
    assert.equal((await p.exited).code, 2);
    assert.match(p.stderr(), /--request-timeout-ms \(1000\) must be at least --headers-timeout-ms \(5000\)/);
  });

  test('a malformed value names its flag', async () => {
    const p = runCli(['backend', '--model-repository', '/tmp', '--max-connections', 'many']);
    assert.equal((await p.exited).code, 2);
    assert.match(p.stderr(), /--max-connections must be a non-negative integer, not 'many'/);
  });
});
