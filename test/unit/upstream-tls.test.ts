// A backend's `tls` as the gateway uses it: its files read and checked (the policy is rejected
// with the field when one cannot be used here), handed to the dispatcher factory, and a change of
// the `tls` block giving an origin a new endpoint while the old one serves out its grace.
import assert from 'node:assert/strict';
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Dispatcher } from 'undici';
import {
  type CompiledPolicy,
  compilePolicy,
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_OUTLIER_DETECTION,
} from '../../gateway/policy/compile.js';
import {
  checkUpstreamTls,
  createDispatcher,
  loadUpstreamTls,
  type UpstreamTls,
  upstreamPoolOptions,
} from '../../gateway/upstream/connection.js';
import { EndpointRegistry } from '../../gateway/upstream/endpoint.js';
import { removeTempDirs, tempDir } from '../helpers/backend.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { FakeClock } from '../helpers/fake-clock.js';

let certs: TestCerts;
before(async () => {
  certs = await makeCerts();
});
after(removeTempDirs);

const tlsOf = (t: Partial<Record<'ca' | 'cert' | 'key' | 'serverName', string>>) => ({
  ca: t.ca,
  cert: t.cert,
  key: t.key,
  serverName: t.serverName,
});

function policyWith(tls: string): CompiledPolicy {
  const r = compilePolicy(
    `version: 1\nbackends:\n  b: { endpoints: [https://127.0.0.1:1], tls: ${tls} }\nmodels:\n  m: { variants: { v: { backend: b, model: m } } }\n`,
  );
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.policy;
}

describe('loadUpstreamTls and checkUpstreamTls', () => {
  test('reads the files into connect options, with the server name for SNI', () => {
    const t = loadUpstreamTls(tlsOf({ ...certs.client, ca: certs.ca, serverName: 'replica.internal' }));
    assert.ok(t.ca?.toString().includes('BEGIN CERTIFICATE'));
    assert.ok(t.cert !== undefined && t.key !== undefined);
    assert.equal(t.servername, 'replica.internal');
    const opts = upstreamPoolOptions({}, t);
    assert.deepEqual(Object.keys(opts.connect as object).sort(), [
      'ca',
      'cert',
      'key',
      'rejectUnauthorized',
      'servername',
    ]);
    assert.equal((opts.connect as { rejectUnauthorized: boolean }).rejectUnauthorized, true);
    assert.equal(upstreamPoolOptions({}).connect, undefined, 'plain HTTP: no connect options');
  });

  test('each unusable file is reported with its field', () => {
    const issues = (tls: string) => checkUpstreamTls(policyWith(tls)).map((i) => `${i.path}: ${i.message}`);
    assert.deepEqual(issues(`{ ca: ${certs.ca}, cert: ${certs.client.cert}, key: ${certs.client.key} }`), []);
    assert.deepEqual(issues('{ ca: /nonexistent/ca.pem }'), [
      'backends.b.tls.ca: cannot read /nonexistent/ca.pem (ENOENT)',
    ]);
    assert.match(
      issues(`{ ca: ${certs.client.key} }`)[0] ?? '',
      /^backends\.b\.tls\.ca: .* is not a PEM certificate/,
    );
    assert.match(
      issues(`{ cert: ${certs.client.cert}, key: ${certs.server.key} }`)[0] ?? '',
      /^backends\.b\.tls\.key: .*server-key\.pem is not the key of the certificate .*client\.pem$/,
    );
  });
});

describe('the registry and a backend tls', () => {
  test('the factory gets the files; a changed tls block makes a new endpoint, the old one retires', async () => {
    const clock = new FakeClock();
    const made: { origin: string; tls: UpstreamTls | undefined; dispatcher: Dispatcher }[] = [];
    const registry = new EndpointRegistry(
      clock,
      {},
      {},
      {
        dispatcher: (origin, tls) => {
          const dispatcher = createDispatcher(origin, {}, tls);
          made.push({ origin, tls, dispatcher });
          return dispatcher;
        },
      },
    );
    const backend = (tls: ReturnType<typeof tlsOf> | undefined) => ({
      name: 'b',
      endpoints: ['https://127.0.0.1:1'],
      circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
      healthCheck: { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 },
      outlierDetection: DEFAULT_OUTLIER_DETECTION,
      tls,
    });
    const withCa = tlsOf({ ca: certs.ca });
    registry.sync([backend(withCa)]);
    const first = registry.get('https://127.0.0.1:1');
    assert.equal(made.length, 1);
    assert.ok(made[0]?.tls?.ca !== undefined);
    registry.sync([backend(tlsOf({ ca: certs.ca }))], 1000);
    assert.equal(registry.get('https://127.0.0.1:1'), first, 'the same tls: the same endpoint');
    registry.sync([backend(tlsOf({ ca: certs.ca, ...certs.client }))], 1000);
    const second = registry.get('https://127.0.0.1:1');
    assert.notEqual(second, first, 'another tls: a new endpoint');
    assert.ok(made[1]?.tls?.cert !== undefined);
    assert.equal(first.state(clock.now()), 'available', 'the old one serves older snapshots');
    clock.advance(1000);
    await new Promise((r) => setImmediate(r));
    assert.equal(first.state(clock.now()), 'closed');
    registry.sync([backend(undefined)], 1000);
    assert.equal(made.length, 3);
    assert.equal(made[2]?.tls, undefined);

    // The same block, files with new contents (a rotated client certificate): a new endpoint.
    const dir = await tempDir('infergate-rotate-');
    const pair = { cert: path.join(dir, 'c.pem'), key: path.join(dir, 'k.pem') };
    await copyFile(certs.client.cert, pair.cert);
    await copyFile(certs.client.key, pair.key);
    registry.sync([backend(tlsOf(pair))], 1000);
    const before = registry.get('https://127.0.0.1:1');
    registry.sync([backend(tlsOf(pair))], 1000);
    assert.equal(registry.get('https://127.0.0.1:1'), before, 'unchanged files: the same endpoint');
    await copyFile(certs.client2.cert, pair.cert);
    await copyFile(certs.client2.key, pair.key);
    registry.sync([backend(tlsOf(pair))], 1000);
    assert.notEqual(registry.get('https://127.0.0.1:1'), before);
    assert.deepEqual(made.at(-1)?.tls?.cert, await readFile(certs.client2.cert));
    // Files that cannot be used (the key of another certificate) throw before anything changes.
    const current = registry.get('https://127.0.0.1:1');
    await copyFile(certs.client.key, pair.key);
    assert.throws(() => registry.sync([backend(tlsOf(pair))], 1000), /is not the key of the certificate/);
    assert.equal(registry.get('https://127.0.0.1:1'), current);
    await registry.close();
  });
});
