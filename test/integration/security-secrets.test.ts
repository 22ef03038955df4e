// Secrets stay secret: a real gateway process (fleet mode, real Redis) with an API key in its
// policy, another created with the CLI and then revoked, and a bearer token; requests good and bad
// of every kind (accepted, unknown, revoked, out of scope, rate limited, a backend failure, an
// unknown route), at debug log level. Then every output is searched for the key texts and the
// token: the process's stdout and stderr, /metrics, every /admin endpoint, every answer's headers
// and body, and everything stored in Redis. The key ids do appear where a request is reported.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { removeTempDirs, tempDir } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';
import { type FakeReplica, startFakeReplica } from '../helpers/gateway.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { type Answer, send, sha256 } from '../helpers/security.js';

const POLICY_KEY = 'igk_PlantedPolicyKeyPlantedPolicyK';
const FORGED = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.UGxhbnRlZFRva2VuU2lnbmF0dXJl';

let redis: RedisServer;
let ok: FakeReplica;
let broken: FakeReplica;
before(async () => {
  redis = await startRedis();
  ok = await startFakeReplica();
  broken = await startFakeReplica({ status: 500 });
});
after(async () => {
  await ok.close();
  await broken.close();
  await redis.close();
  await removeTempDirs();
});

test('no key and no token in any output; the key id where a request is reported', async () => {
  const dir = await tempDir('infergate-secrets-');
  const policyPath = path.join(dir, 'policy.yaml');
  const jwksPath = path.join(dir, 'jwks.json');
  const pair = await generateKeyPair('ES256');
  await writeFile(
    jwksPath,
    JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] }),
  );
  const TOKEN = await new SignJWT({
    iss: 'https://issuer.test',
    aud: 'infergate',
    sub: 'planted-subject',
    models: ['mlp', 'other'],
  })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setExpirationTime('5m')
    .sign(pair.privateKey);
  await writeFile(
    policyPath,
    `version: 1
defaults: { healthCheck: { intervalMs: 0 }, retries: { attempts: 0 } }
backends:
  ok: { endpoints: [${ok.url}] }
  broken: { endpoints: [${broken.url}] }
models:
  mlp: { variants: { v: { backend: ok, model: mlp } }, rateLimit: { requestsPerSecond: 1, burst: 3 } }
  other: { variants: { v: { backend: ok, model: other } } }
  failing: { variants: { v: { backend: broken, model: failing } } }
auth:
  required: true
  apiKeys:
    - { id: planted-policy-key, sha256: "${sha256(POLICY_KEY)}", models: [mlp, failing] }
  jwt: { jwksFile: "${jwksPath}", issuer: "https://issuer.test", audience: infergate }
rateLimit: { mode: global }
`,
  );
  const flags = ['--redis', redis.url, '--redis-prefix', 'secrets:'];
  const created = runCli(['keys', 'create', '--id', 'planted-redis-key', '--models', 'mlp', ...flags]);
  assert.equal((await created.exited).code, 0, created.stderr());
  const redisKey = created.stdout().trim();
  assert.match(redisKey, /^igk_/);

  const gw = runCli(
    [
      'gateway',
      '--policy',
      policyPath,
      ...flags,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--gateway-id',
      'secrets',
    ],
    { INFERGATE_LOG_LEVEL: 'debug' },
  );
  try {
    const listening = await gw.waitForLog('listening', (r) => r.msg.startsWith('gateway listening on'));
    const url = listening.address as string;
    const adminUrl = listening.admin as string;
    const answers: Answer[] = [];
    const go = async (p: string, headers: string[], method = 'POST') => {
      const a = await send(url, { method, path: p, headers });
      answers.push(a);
      return a;
    };
    const credentials = [
      ['authorization', `Bearer ${POLICY_KEY}`],
      ['x-api-key', POLICY_KEY],
      ['x-api-key', redisKey],
      ['authorization', `Bearer ${TOKEN}`],
      ['authorization', `Bearer ${FORGED}`],
      ['authorization', `Basic ${POLICY_KEY}`],
      ['x-api-key', `${POLICY_KEY}, ${redisKey}`],
      ['authorization', `Bearer ${POLICY_KEY}`, 'authorization', `Bearer ${TOKEN}`],
    ];
    for (const c of credentials) {
      for (const p of [
        '/v2/models/mlp/infer',
        '/v2/models/other/infer',
        '/v2/models/failing/infer',
        '/v2/models/nosuch/infer',
        '/nowhere',
      ]) {
        await go(p, c);
      }
      await go('/v2/models/mlp', c, 'GET');
    }
    const byToken = await go('/v2/models/other/infer', ['authorization', `Bearer ${TOKEN}`]);
    assert.equal(byToken.status, 200, `the planted token is a valid one: ${byToken.text}`);
    const statuses = new Set(answers.map((a) => a.status));
    for (const s of [200, 401, 403, 404, 429, 502])
      assert.ok(statuses.has(s), `some answer was ${s}: ${[...statuses]}`);

    const revoke = runCli(['keys', 'revoke', 'planted-redis-key', ...flags]);
    assert.equal((await revoke.exited).code, 0);
    const revoked = await (async () => {
      const deadline = performance.now() + 5000;
      for (;;) {
        const a = await go('/v2/models/mlp/infer', ['x-api-key', redisKey]);
        if (a.status === 401 || performance.now() > deadline) return a;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    assert.equal(revoked.status, 401);

    const outputs: [string, string][] = [];
    for (const p of ['/metrics', '/admin/policy', '/admin/upstreams']) {
      outputs.push([p, await (await fetch(`${adminUrl}${p}`)).text()]);
    }
    outputs.push(['answers', answers.map((a) => `${JSON.stringify(a.headers)}\n${a.text}`).join('\n')]);
    const r = new Redis(redis.url);
    const stored: string[] = [];
    for (const k of await r.keys('*')) {
      const type = await r.type(k);
      stored.push(
        k,
        type === 'hash'
          ? JSON.stringify(await r.hgetall(k))
          : type === 'string'
            ? String(await r.get(k))
            : '',
      );
    }
    r.disconnect();
    outputs.push(['redis', stored.join('\n')]);
    await gw.stop();
    outputs.push(['gateway stdout', gw.stdout()], ['gateway stderr', gw.stderr()]);
    outputs.push(['keys revoke stdout', revoke.stdout()], ['keys revoke stderr', revoke.stderr()]);

    const secrets: [string, string][] = [
      ['the policy key', POLICY_KEY],
      ['the Redis key', redisKey],
      ['the token', TOKEN],
      ['the forged token', FORGED],
      // Parts too: a key cut short in a message is still a leak.
      ['the policy key body', POLICY_KEY.slice(4, 24)],
      ['the Redis key body', redisKey.slice(4, 24)],
      ['the token signature', TOKEN.split('.')[2] as string],
    ];
    for (const [where, text] of outputs) {
      for (const [what, secret] of secrets) assert.ok(!text.includes(secret), `${what} appears in ${where}`);
    }
    // What is reported names the key by its id.
    assert.match(gw.stdout(), /"keyId":"planted-policy-key"/);

    assert.ok(gw.stdout().length > 0 && outputs.length >= 8);
  } finally {
    await gw.stop();
  }
});
