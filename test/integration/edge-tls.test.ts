// Encryption: TLS at the ingress with certificate rotation that keeps connections, mTLS from the
// gateway to backend replicas that require client certificates, Redis over TLS, and bad files
// refused at start. Certificates are made with openssl (test/helpers/certs.ts).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { Agent, Client, request as undiciRequest } from 'undici';
import { openRedis, parseRedisUrl } from '../../common/redis/connection.js';
import { PolicyRejectedError } from '../../gateway/policy/runtime.js';
import {
  removeTempDirs,
  type RunningBackend,
  sampleRepository,
  sampleValue,
  scrape,
  startBackend,
  tempDir,
  waitFor,
} from '../helpers/backend.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { runCli } from '../helpers/cli.js';
import { type EdgeGateway, LogTap, rawExchange, startEdgeGateway } from '../helpers/edge.js';
import { deadPort, type FakeReplica, mlpBody, policyYaml, startFakeReplica } from '../helpers/gateway.js';

let certs: TestCerts;
let ca: Buffer;
let fake: FakeReplica;
let repo: string;
const closers: (() => Promise<unknown>)[] = [];
before(async () => {
  certs = await makeCerts();
  ca = await readFile(certs.ca);
  fake = await startFakeReplica();
  repo = await sampleRepository();
});
after(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  await fake.close();
  await removeTempDirs();
});

const fingerprintOf = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256;

/** The fingerprint of the certificate a new TLS connection to the port sees. */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', ca }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? '';
      s.end();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

async function edge(policy: string, opts: Parameters<typeof startEdgeGateway>[1] = {}): Promise<EdgeGateway> {
  const g = await startEdgeGateway(policy, opts);
  closers.push(() => g.close());
  return g;
}

const noChecks = { healthCheck: { intervalMs: 0 } };

describe('TLS at the ingress', () => {
  test('serves HTTPS; a rotation keeps open connections and new ones see the new certificate', async () => {
    const dir = await tempDir('infergate-tls-');
    const files = { cert: path.join(dir, 'tls.pem'), key: path.join(dir, 'tls-key.pem') };
    await copyFile(certs.server.cert, files.cert);
    await copyFile(certs.server.key, files.key);
    const tap = new LogTap();
    const g = await edge(policyYaml({ variants: { only: { endpoints: [fake.url] } }, defaults: noChecks }), {
      tls: files,
      tlsPollMs: 50,
      logger: tap.logger,
    });
    assert.match(g.url, /^https:\/\/127\.0\.0\.1:\d+$/);

    const client = new Client(g.url, { connect: { ca } });
    closers.push(() => client.close());
    let connects = 0;
    client.on('connect', () => connects++);
    const infer = async () => {
      const res = await client.request({
        method: 'POST',
        path: '/v2/models/m/infer',
        headers: { 'content-type': 'application/json' },
        body: '{"inputs":[]}',
      });
      await res.body.text();
      return res.statusCode;
    };
    assert.equal(await infer(), 200);
    assert.equal(await peerFingerprint(g.port), await fingerprintOf(certs.server.cert));

    // Rotate as a deployment does: each file replaced by a rename.
    const reloaded = tap.next(/^TLS certificate reloaded$/);
    await copyFile(certs.server2.key, `${files.key}.new`);
    await copyFile(certs.server2.cert, `${files.cert}.new`);
    await rename(`${files.key}.new`, files.key);
    await rename(`${files.cert}.new`, files.cert);
    await reloaded;
    assert.equal(await infer(), 200, 'the open connection still serves');
    assert.equal(connects, 1, 'on the same connection');
    assert.equal(await peerFingerprint(g.port), await fingerprintOf(certs.server2.cert));

    // A key that does not fit the certificate is skipped; the last good pair keeps serving.
    const refused = tap.next(/cannot be used/);
    await copyFile(certs.client.key, files.key);
    await refused;
    assert.match(
      tap.lines.at(-1)?.msg ?? '',
      /key .*tls-key\.pem: the key does not belong to the certificate/,
    );
    assert.equal(await peerFingerprint(g.port), await fingerprintOf(certs.server2.cert));
    assert.equal(await infer(), 200);
  });
});

describe('TLS at the ingress: failed handshakes', () => {
  test('plain HTTP on the HTTPS port and a client that does not trust the certificate are counted; HTTPS still serves', async () => {
    const g = await edge(policyYaml({ variants: { only: { endpoints: [fake.url] } }, defaults: noChecks }), {
      tls: { cert: certs.server.cert, key: certs.server.key },
    });
    const refusals = async () => {
      const text = await (await fetch(`${g.adminUrl}/metrics`)).text();
      const m = /infergate_client_refusals_total\{reason="tls_handshake"\} (\d+)/.exec(text);
      assert.ok(m, 'the tls_handshake series is exported');
      return Number(m[1]);
    };
    assert.equal(await refusals(), 0);
    // Plain text where a ClientHello belongs.
    await rawExchange(g.port, 'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n');
    // A client without the CA: it aborts the handshake itself.
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: g.port, servername: 'localhost' });
      s.on('error', () => resolve());
      s.on('secureConnect', () => {
        s.destroy();
        resolve();
      });
    });
    // The server counts each when it has read the failure; HTTPS serves meanwhile.
    await waitFor('both failed handshakes counted', async () => ((await refusals()) >= 2 ? true : undefined));
    const res = await undiciRequest(`${g.url}/v2/health/live`, {
      dispatcher: new Agent({ connect: { ca } }),
    });
    await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.equal(await refusals(), 2);
  });
});

describe('mTLS to the backends', () => {
  let be: RunningBackend;
  before(async () => {
    be = await startBackend({
      modelRepository: repo,
      models: [{ name: 'mlp', version: '1' }],
      tls: { cert: certs.server.cert, key: certs.server.key, clientCa: certs.ca },
    });
    closers.push(() => be.close());
  });

  const ready = async (connect: Record<string, unknown>) => {
    const dispatcher = new Agent({ connect: { ca, ...connect } });
    try {
      const res = await undiciRequest(`${be.url}/v2/health/ready`, { dispatcher });
      await res.body.text();
      return res.statusCode;
    } finally {
      await dispatcher.close();
    }
  };

  test('the backend requires a client certificate signed by its client CA', async () => {
    assert.match(be.url, /^https:\/\//);
    await assert.rejects(ready({}), 'no client certificate');
    const stranger = {
      cert: await readFile(certs.strangerClient.cert),
      key: await readFile(certs.strangerClient.key),
    };
    await assert.rejects(ready(stranger), 'a client certificate of another CA');
    const mine = { cert: await readFile(certs.client.cert), key: await readFile(certs.client.key) };
    assert.equal(await ready(mine), 200);
  });

  const mtlsPolicy = (
    tlsBlock: Record<string, string>,
    healthCheck: Record<string, number> = { intervalMs: 0 },
  ) =>
    [
      'version: 1',
      'defaults:',
      `  healthCheck: ${JSON.stringify(healthCheck)}`,
      '  retries: { attempts: 0 }',
      'backends:',
      `  pool: { endpoints: ["${be.url}"], tls: ${JSON.stringify(tlsBlock)} }`,
      'models:',
      '  m:',
      '    variants:',
      '      only: { backend: pool, model: mlp, version: "1" }',
      '',
    ].join('\n');

  const post = (g: EdgeGateway) =>
    fetch(`${g.url}/v2/models/m/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: mlpBody(3),
    });

  test('the gateway presents its client certificate from the policy; health checks go over mTLS too', async () => {
    const g = await edge(
      mtlsPolicy(
        { ca: certs.ca, cert: certs.client.cert, key: certs.client.key },
        { intervalMs: 100, timeoutMs: 100 },
      ),
    );
    const res = await post(g);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { model_name: string }).model_name, 'mlp');
    await waitFor('a passed health check over mTLS', async () => {
      const { samples } = await scrape(g.adminUrl);
      const v = sampleValue(samples, 'infergate_upstream_health_checks_total', {
        endpoint: be.url,
        result: 'pass',
      });
      return (v ?? 0) >= 1 ? v : undefined;
    });
  });

  test('without the client certificate the backend refuses the gateway: an upstream error', async () => {
    const g = await edge(mtlsPolicy({ ca: certs.ca }));
    const res = await post(g);
    const body = (await res.json()) as { code: string };
    assert.ok(res.status === 502 || res.status === 503, `status ${res.status}`);
    assert.match(body.code, /^GW_ERR_UPSTREAM_(ERROR|UNAVAILABLE)$/);
  });

  test('serverName: the name the backend certificate must carry', async () => {
    const named = await startBackend({
      modelRepository: repo,
      models: [{ name: 'mlp', version: '1' }],
      tls: { cert: certs.named.cert, key: certs.named.key, clientCa: certs.ca },
    });
    closers.push(() => named.close());
    const block = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key };
    const policy = (b: Record<string, string>) => mtlsPolicy(b).replace(be.url, named.url);
    const wrong = await post(await edge(policy(block)));
    assert.ok(wrong.status >= 502, 'the certificate is not for 127.0.0.1');
    const right = await post(await edge(policy({ ...block, serverName: 'replica.internal' })));
    assert.equal(right.status, 200);
  });

  test('a client certificate rotated on disk is used by new connections; requests keep being served', async () => {
    // A replica that records the certificate each new connection presents.
    const seen: string[] = [];
    const server = https.createServer(
      {
        cert: await readFile(certs.server.cert),
        key: await readFile(certs.server.key),
        ca,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"outputs":[]}'));
      },
    );
    server.on('secureConnection', (s: tls.TLSSocket) => {
      seen.push(s.getPeerX509Certificate()?.fingerprint256 ?? '');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    server.unref();
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const dir = await tempDir('infergate-client-tls-');
    const files = { cert: path.join(dir, 'client.pem'), key: path.join(dir, 'client-key.pem') };
    await copyFile(certs.client.cert, files.cert);
    await copyFile(certs.client.key, files.key);
    const tap = new LogTap();
    const g = await edge(mtlsPolicy({ ca: certs.ca, ...files }).replace(be.url, origin), {
      tlsPollMs: 50,
      logger: tap.logger,
    });
    assert.equal((await post(g)).status, 200);
    assert.deepEqual(seen, [await fingerprintOf(certs.client.cert)]);

    const changed = tap.next(/^upstream TLS files changed; new connections/);
    await copyFile(certs.client2.key, `${files.key}.new`);
    await copyFile(certs.client2.cert, `${files.cert}.new`);
    await rename(`${files.key}.new`, files.key);
    await rename(`${files.cert}.new`, files.cert);
    await changed;
    assert.equal((await post(g)).status, 200);
    assert.equal(
      seen.at(-1),
      await fingerprintOf(certs.client2.cert),
      'a new connection, with the new certificate',
    );
  });

  test('a policy whose tls files cannot be used here is rejected with the field', async () => {
    await assert.rejects(
      startEdgeGateway(mtlsPolicy({ ca: certs.ca, cert: '/nonexistent/client.pem', key: certs.client.key })),
      (e: unknown) =>
        e instanceof PolicyRejectedError &&
        e.errors.length === 1 &&
        e.errors[0]?.path === 'backends.pool.tls.cert' &&
        /cannot read \/nonexistent\/client\.pem \(ENOENT\)/.test(e.errors[0]?.message ?? ''),
    );
    await assert.rejects(
      startEdgeGateway(mtlsPolicy({ cert: certs.client.cert, key: certs.server.key })),
      (e: unknown) => e instanceof PolicyRejectedError && e.errors[0]?.path === 'backends.pool.tls.key',
    );
  });
});

describe('Redis over TLS', () => {
  let redis: ChildProcess | undefined;
  let port = 0;
  before(async () => {
    const dir = await tempDir('infergate-redis-tls-');
    port = await deadPort();
    // Only the TLS port, and clients must present a certificate of the CA.
    const args = ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', ''];
    args.push('--appendonly', 'no', '--dir', dir, '--tls-auth-clients', 'yes');
    args.push('--tls-cert-file', certs.server.cert, '--tls-key-file', certs.server.key);
    args.push('--tls-ca-cert-file', certs.ca);
    redis = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const child = redis;
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        output += `${line}\n`;
        if (line.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}): ${output}`));
      });
    });
  });
  after(async () => {
    const c = redis;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    await exited;
  });

  const url = () => `rediss://127.0.0.1:${port}`;

  test('with its CA and a client certificate ioredis connects; without them it is refused', async () => {
    const target = parseRedisUrl(url());
    /** PONG, or the error the connection met (ioredis rejects with 'Connection is closed'). */
    const ping = async (tlsOptions: typeof target.tlsOptions): Promise<string> => {
      const r = openRedis({ ...target, tlsOptions }, { role: 'cli', connectTimeoutMs: 3000 });
      let met = '';
      r.on('error', (e: Error) => {
        met ||= e.message;
      });
      try {
        await r.connect();
        return await r.ping();
      } catch (e) {
        return `error: ${met || (e as Error).message}`;
      } finally {
        r.disconnect();
      }
    };
    const mine = { cert: await readFile(certs.client.cert), key: await readFile(certs.client.key) };
    assert.equal(await ping({ ca, ...mine }), 'PONG');
    assert.match(await ping(mine), /^error: .*(self[- ]signed|unable to (get|verify))/i, 'an unknown CA');
    assert.match(await ping({ ca }), /^error: /, 'no client certificate');
  });

  test('infergate gateway --redis rediss:// --redis-tls-ca ... takes its policy from Redis over TLS', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'p.yaml');
    await writeFile(file, policyYaml({ variants: { only: { endpoints: [fake.url] } }, defaults: noChecks }));
    const tlsFlags = [
      '--redis-tls-ca',
      certs.ca,
      '--redis-tls-cert',
      certs.client.cert,
      '--redis-tls-key',
      certs.client.key,
    ];
    const p = runCli([
      'gateway',
      '--redis',
      url(),
      ...tlsFlags,
      '--policy',
      file,
      '--port',
      '0',
      '--admin-port',
      '0',
    ]);
    closers.push(() => p.stop());
    const line = await p.waitForLog('gateway listening', (r) => r.msg.startsWith('gateway listening on'));
    const res = await fetch(`${line.address as string}/v2/models/m/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"inputs":[]}',
    });
    assert.equal(res.status, 200);
    const status = runCli(['policy', 'status', '--redis', url(), ...tlsFlags]);
    assert.equal((await status.exited).code, 0, status.stderr());
    // Without the client certificate the server hangs up after the handshake: the CLI says what
    // to add, not ioredis's bare "Connection is closed" (exit 4: Redis unreachable).
    const bare = runCli(['policy', 'status', '--redis', url(), '--redis-tls-ca', certs.ca]);
    assert.equal((await bare.exited).code, 4, bare.stderr());
    assert.match(bare.stderr(), /closed the TLS connection .*--redis-tls-cert and --redis-tls-key/);
    assert.doesNotMatch(bare.stderr(), /Connection is closed/);
    p.child.kill('SIGTERM');
    assert.equal((await p.exited).code, 0);
  });
});

describe('bad TLS flags and files are refused at start (exit 2)', () => {
  const gw = (extra: string[]) =>
    runCli(['gateway', '--policy', '/nonexistent.yaml', '--port', '0', ...extra]);

  test('a certificate without its key, a client CA without a certificate, a CA for redis://', async () => {
    const a = gw(['--tls-cert', certs.server.cert]);
    assert.equal((await a.exited).code, 2);
    assert.match(a.stderr(), /--tls-cert and --tls-key go together/);
    const b = runCli(['backend', '--model-repository', '/tmp', '--tls-client-ca', certs.ca]);
    assert.equal((await b.exited).code, 2);
    assert.match(b.stderr(), /--tls-client-ca needs --tls-cert and --tls-key/);
    const c = gw(['--redis', 'redis://127.0.0.1:1', '--redis-tls-ca', certs.ca]);
    assert.equal((await c.exited).code, 2);
    assert.match(c.stderr(), /need a rediss:\/\/ URL/);
  });

  test('a missing file, a key of another certificate, a file that is not PEM', async () => {
    const missing = gw(['--tls-cert', '/nonexistent/cert.pem', '--tls-key', certs.server.key]);
    assert.equal((await missing.exited).code, 2);
    assert.match(missing.stderr(), /--tls-cert \/nonexistent\/cert\.pem: cannot read the file \(ENOENT\)/);
    const mismatch = gw(['--tls-cert', certs.server.cert, '--tls-key', certs.client.key]);
    assert.equal((await mismatch.exited).code, 2);
    assert.match(
      mismatch.stderr(),
      /--tls-key .*client-key\.pem: the key does not belong to the certificate/,
    );
    const notPem = runCli([
      'backend',
      '--model-repository',
      '/tmp',
      '--tls-cert',
      certs.server.key,
      '--tls-key',
      certs.server.key,
    ]);
    assert.equal((await notPem.exited).code, 2);
    assert.match(notPem.stderr(), /--tls-cert .*server-key\.pem: not a PEM certificate/);
  });
});
