// `infergate keys`: the keys it makes (prefix, 192 random bits, base64url), expiry arguments, the
// policy entry printed without --redis (whose hash is the key's, and which compiles), and usage
// errors with exit status 2.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generateKey, parseExpiry } from '../../cli/keys.js';
import { compilePolicy } from '../../gateway/policy/compile.js';
import { Redis } from 'ioredis';
import { fleetKeys } from '../../common/redis/keys.js';
import { RedisKeyStore } from '../../gateway/fleet/redis-keys.js';
import { RedisPolicyStore } from '../../gateway/fleet/redis-store.js';
import { runCli } from '../helpers/cli.js';
import { startRedis } from '../helpers/redis.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('keys', () => {
  test('igk_ and 32 base64url characters (192 bits), never twice the same', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const k = generateKey();
      assert.match(k, /^igk_[A-Za-z0-9_-]{32}$/);
      assert.equal(Buffer.from(k.slice(4), 'base64url').length * 8, 192);
      seen.add(k);
    }
    assert.equal(seen.size, 1000);
  });

  test('--expires: durations and RFC 3339 times; the past and nonsense refused', () => {
    const now = Date.UTC(2026, 0, 1);
    assert.equal(parseExpiry('30d', now), now + 30 * 86_400_000);
    assert.equal(parseExpiry('12h', now), now + 12 * 3_600_000);
    assert.equal(parseExpiry('90m', now), now + 90 * 60_000);
    assert.equal(parseExpiry('2027-01-31T00:00:00Z', now), Date.UTC(2027, 0, 31));
    assert.throws(() => parseExpiry('2020-01-01', now), /in the past/);
    assert.throws(() => parseExpiry('soon', now), /duration \(90m, 12h, 30d\) or an RFC 3339 time/);
    assert.throws(() => parseExpiry('-1d', now), /duration/);
  });
});

describe('infergate keys (the command)', () => {
  test('create without --redis: the key on stdout once, the policy entry on stderr, and it compiles', async () => {
    const p = runCli([
      'keys',
      'create',
      '--id',
      'team-a',
      '--models',
      'mlp',
      '--rps',
      '5',
      '--burst',
      '10',
      '--expires',
      '30d',
    ]);
    assert.equal((await p.exited).code, 0, p.stderr());
    const key = p.stdout().trim();
    assert.match(key, /^igk_[A-Za-z0-9_-]{32}$/);
    const entry = p
      .stderr()
      .split('\n')
      .find((l) => l.includes('sha256')) as string;
    const hash = createHash('sha256').update(key).digest('hex');
    assert.ok(entry.includes(`sha256: "${hash}"`), entry);
    assert.ok(!p.stderr().includes(key));
    const policy = `version: 1
backends: { pool: { endpoints: [http://127.0.0.1:1] } }
models: { mlp: { variants: { v: { backend: pool, model: mlp } } } }
auth:
  required: true
  apiKeys:
${entry}
`;
    const r = compilePolicy(policy);
    assert.ok(r.ok, JSON.stringify(r.ok ? '' : r.errors));
    const rec = r.policy.auth?.keys.get(hash);
    assert.deepEqual(rec?.rateLimit, { requestsPerSecond: 5, burst: 10 });
    assert.ok((rec?.expiresAt ?? 0) > Date.now() + 29 * 86_400_000);
  });

  const usage: [string[], RegExp][] = [
    [['keys', 'create'], /--id is required/],
    [['keys', 'create', '--id', 'a b'], /--id is required/],
    [['keys', 'create', '--id', 'a', '--rps', '0'], /--rps must be a positive number/],
    [['keys', 'create', '--id', 'a', '--burst', '5'], /--burst needs --rps/],
    [['keys', 'create', '--id', 'a', '--models', 'ok,no/pe'], /--models: 'no\/pe' is not a model name/],
    [['keys', 'list'], /list needs --redis URL/],
    [['keys', 'revoke', 'a'], /revoke needs --redis URL/],
    [['keys', 'rotate', '--redis', 'redis://127.0.0.1:1'], /unknown verb 'rotate'/],
  ];
  for (const [args, message] of usage) {
    test(`${args.slice(1).join(' ')}: exit 2, ${message.source}`, async () => {
      const p = runCli(args);
      assert.equal((await p.exited).code, 2);
      assert.match(p.stderr(), message);
      assert.equal(p.stdout(), '');
    });
  }

  test('create in a store whose policy has no auth section: stored, with a warning', async () => {
    const redis = await startRedis();
    try {
      const conn = new Redis(redis.url);
      const text = `version: 1
backends: { pool: { endpoints: [http://127.0.0.1:1] } }
models: { mlp: { variants: { v: { backend: pool, model: mlp } } } }
`;
      await new RedisPolicyStore(conn, fleetKeys()).apply({
        source: text,
        sha256: sha(text),
        author: 't',
        message: 'm',
      });
      conn.disconnect();
      const p = runCli(['keys', 'create', '--id', 'k', '--redis', redis.url]);
      assert.equal((await p.exited).code, 0, p.stderr());
      assert.match(p.stderr(), /warning: the newest policy in the store has no auth section/);
    } finally {
      await redis.close();
    }
  });

  test('create --key-file: the key made beforehand is stored, never printed; run again, exit 0', async () => {
    const redis = await startRedis();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'infergate-key-'));
    try {
      const key = generateKey();
      const file = path.join(dir, 'api.key');
      writeFileSync(file, `${key}\n`);
      const args = ['keys', 'create', '--id', 'deploy', '--key-file', file, '--redis', redis.url];
      const p = runCli(args);
      assert.equal((await p.exited).code, 0, p.stderr());
      assert.equal(p.stdout(), '');
      assert.ok(!p.stderr().includes(key));
      const conn = new Redis(redis.url);
      const stored = await new RedisKeyStore(conn, fleetKeys()).list();
      conn.disconnect();
      assert.deepEqual(
        stored.map((k) => [k.id, k.sha256]),
        [['deploy', sha(key)]],
      );
      const again = runCli(args);
      assert.equal((await again.exited).code, 0, again.stderr());
      assert.match(again.stderr(), /stored already/);
      // Another key under the same id is a conflict, as without --key-file.
      writeFileSync(file, generateKey());
      const other = runCli(args);
      assert.equal((await other.exited).code, 3, other.stderr());
      // Not a key: exit 2, naming the flag and the file, without its content.
      writeFileSync(file, 'hunter2-not-a-key');
      const bad = runCli(['keys', 'create', '--id', 'x', '--key-file', file]);
      assert.equal((await bad.exited).code, 2);
      assert.match(bad.stderr(), /--key-file .*api\.key: not an infergate key/);
      assert.ok(!bad.stderr().includes('hunter2'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await redis.close();
    }
  });

  test('Redis unreachable: exit 4, one line without the password', async () => {
    const p = runCli(['keys', 'list', '--redis', 'redis://user:s3cret@127.0.0.1:1']);
    assert.equal((await p.exited).code, 4);
    assert.match(p.stderr(), /refused the connection/);
    assert.ok(!p.stderr().includes('s3cret'));
  });
});
