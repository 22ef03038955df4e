// The bypass suite against a real gateway on a real port, in front of a fake replica: every way a
// request might slip past auth is refused with its status and code, and none of them reaches the
// replica; API keys by either header, scopes, public models, expiry, rate limits with their
// headers, and a policy reload that drops a key.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { removeTempDirs } from '../helpers/backend.js';
import { type FakeReplica, type RunningGateway, startFakeReplica, startGateway } from '../helpers/gateway.js';
import { type Answer, send, sha256 } from '../helpers/security.js';

const KEY = 'igk_teamAteamAteamAteamAteamAteamA12';
const EXPIRED = 'igk_expiredexpiredexpiredexpired0';
const LIMITED = 'igk_limitedlimitedlimitedlimited0';

let replica: FakeReplica;
let gw: RunningGateway;

function policy(keys: string): string {
  return `version: 1
defaults: { healthCheck: { intervalMs: 0 } }
backends:
  pool: { endpoints: [${replica.url}] }
models:
  mlp: { variants: { v: { backend: pool, model: mlp } } }
  other: { variants: { v: { backend: pool, model: other } } }
  pub: { variants: { v: { backend: pool, model: pub } }, public: true }
  limited:
    variants: { v: { backend: pool, model: limited } }
    rateLimit: { requestsPerSecond: 0.5, burst: 2 }
auth:
  required: true
  apiKeys:
${keys}`;
}

const KEYS = `    - { id: team-a, sha256: "${sha256(KEY)}", models: [mlp, limited] }
    - { id: old, sha256: "${sha256(EXPIRED)}", expiresAt: "2020-01-01T00:00:00Z" }
    - { id: tight, sha256: "${sha256(LIMITED)}", models: [mlp], rateLimit: { requestsPerSecond: 0.5, burst: 1 } }
`;

before(async () => {
  replica = await startFakeReplica();
  gw = await startGateway({ policy: policy(KEYS) });
});
after(async () => {
  await gw.close();
  await replica.close();
  await removeTempDirs();
});

const infer = (path: string, headers: string[] = []) => send(gw.url, { path, headers });

function refused(a: Answer, status: number, code: string): void {
  assert.equal(a.status, status, a.text);
  assert.equal(a.code, code, a.text);
  if (status === 401) assert.match(String(a.headers['www-authenticate']), /^Bearer realm="infergate"/);
}

describe('the bypass suite: refused, and never forwarded', () => {
  const cases: [string, { method?: string; path: string; headers: string[] }, number, string][] = [
    ['no header', { path: '/v2/models/mlp/infer', headers: [] }, 401, 'GW_ERR_UNAUTHENTICATED'],
    [
      'wrong scheme',
      { path: '/v2/models/mlp/infer', headers: ['Authorization', `Basic ${KEY}`] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'a scheme without a space',
      { path: '/v2/models/mlp/infer', headers: ['Authorization', `Bearer:${KEY}`] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'empty bearer',
      { path: '/v2/models/mlp/infer', headers: ['Authorization', 'Bearer '] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'empty x-api-key',
      { path: '/v2/models/mlp/infer', headers: ['x-api-key', ''] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'whitespace x-api-key',
      { path: '/v2/models/mlp/infer', headers: ['x-api-key', '   '] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'whitespace inside the key',
      { path: '/v2/models/mlp/infer', headers: ['Authorization', `Bearer ${KEY} x`] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'unknown key',
      { path: '/v2/models/mlp/infer', headers: ['x-api-key', `${KEY}x`] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'expired key',
      { path: '/v2/models/mlp/infer', headers: ['x-api-key', EXPIRED] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'a key for another model',
      { path: '/v2/models/other/infer', headers: ['x-api-key', KEY] },
      403,
      'GW_ERR_FORBIDDEN',
    ],
    [
      'the same, metadata',
      { method: 'GET', path: '/v2/models/other', headers: ['x-api-key', KEY] },
      403,
      'GW_ERR_FORBIDDEN',
    ],
    [
      'the same, pinned version',
      { path: '/v2/models/other/versions/1/infer', headers: ['x-api-key', KEY] },
      403,
      'GW_ERR_FORBIDDEN',
    ],
    [
      'an escaped name of a scoped-out model',
      { path: '/v2/models/oth%65r/infer', headers: ['x-api-key', KEY] },
      403,
      'GW_ERR_FORBIDDEN',
    ],
    [
      'dot segments, escaped',
      { path: '/v2/models/%2e%2e/infer', headers: [] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'dot segments towards another model',
      { path: '/v2/models/mlp/../other/infer', headers: ['x-api-key', KEY] },
      404,
      'GW_ERR_NOT_FOUND',
    ],
    ['an escaped slash', { path: '/v2/models/mlp%2Finfer', headers: [] }, 404, 'GW_ERR_NOT_FOUND'],
    [
      'an escaped slash, as metadata',
      { method: 'GET', path: '/v2/models/mlp%2Finfer', headers: [] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    ['a doubled leading slash', { path: '//v2/models/mlp/infer', headers: [] }, 404, 'GW_ERR_NOT_FOUND'],
    [
      'an unknown model without a key: 401, names not revealed',
      { path: '/v2/models/secret/infer', headers: [] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'two Authorization headers, the first valid',
      {
        path: '/v2/models/mlp/infer',
        headers: ['Authorization', `Bearer ${KEY}`, 'authorization', 'Bearer igk_x'],
      },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'two Authorization headers, both valid',
      {
        path: '/v2/models/mlp/infer',
        headers: ['Authorization', `Bearer ${KEY}`, 'AUTHORIZATION', `Bearer ${KEY}`],
      },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'two x-api-key headers',
      { path: '/v2/models/mlp/infer', headers: ['x-api-key', KEY, 'X-API-KEY', KEY] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'Authorization and x-api-key at once',
      { path: '/v2/models/mlp/infer', headers: ['x-api-key', KEY, 'Authorization', `Bearer ${KEY}`] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
    [
      'a key in the query string is not a credential',
      { path: `/v2/models/mlp/infer?api_key=${KEY}`, headers: [] },
      401,
      'GW_ERR_UNAUTHENTICATED',
    ],
  ];
  for (const [name, req, status, code] of cases) {
    test(`${name}: ${status} ${code}`, async () => {
      const before = replica.received.length;
      const a = await send(gw.url, req);
      refused(a, status, code);
      assert.equal(replica.received.length, before, 'nothing reached the replica');
      assert.ok(!a.text.includes(KEY), 'the key is not echoed');
    });
  }
});

describe('accepted credentials', () => {
  test('Bearer or x-api-key, header names and the scheme in any case', async () => {
    for (const headers of [
      ['Authorization', `Bearer ${KEY}`],
      ['AUTHORIZATION', `bearer ${KEY}`],
      ['authorization', `BEARER ${KEY}`],
      ['X-Api-Key', KEY],
    ]) {
      const a = await infer('/v2/models/mlp/infer', headers);
      assert.equal(a.status, 200, `${headers[0]}: ${a.text}`);
    }
    // The credential stays at the gateway.
    const last = replica.received[replica.received.length - 1];
    assert.equal(last?.headers.authorization, undefined);
    assert.equal(last?.headers['x-api-key'], undefined);
  });

  test('a public model needs no credential, but a bad one is still refused', async () => {
    assert.equal((await infer('/v2/models/pub/infer')).status, 200);
    refused(await infer('/v2/models/pub/infer', ['x-api-key', 'igk_bad']), 401, 'GW_ERR_UNAUTHENTICATED');
  });

  test('an unknown model with a valid key: 404', async () => {
    refused(await infer('/v2/models/secret/infer', ['x-api-key', KEY]), 404, 'GW_ERR_MODEL_NOT_FOUND');
  });
});

describe('rate limits at the gateway', () => {
  test("a model's limit: its burst passes with RateLimit headers, then 429 with Retry-After", async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 3; i++) answers.push(await infer('/v2/models/limited/infer', ['x-api-key', KEY]));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 429],
    );
    assert.equal(answers[0]?.headers['ratelimit-policy'], '"model";q=2;w=4');
    assert.match(String(answers[0]?.headers.ratelimit), /^"model";r=1;t=\d+$/);
    const no = answers[2] as Answer;
    assert.equal(no.code, 'GW_ERR_RATE_LIMITED');
    assert.ok(Number(no.headers['retry-after']) >= 1, `Retry-After ${no.headers['retry-after']}`);
    assert.match(String(no.headers.ratelimit), /^"model";r=0;t=\d+$/);
  });

  test("a key's own limit", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++)
      statuses.push((await infer('/v2/models/mlp/infer', ['x-api-key', LIMITED])).status);
    assert.deepEqual(statuses, [200, 429]);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /infergate_rate_limited_total\{model="mlp",scope="key"\} 1/);
    assert.match(metrics, /infergate_auth_refusals_total\{reason="forbidden"\} [1-9]/);
  });
});

describe('a reload', () => {
  test('a key removed from the policy is refused from the next request on', async () => {
    assert.equal((await infer('/v2/models/mlp/infer', ['x-api-key', KEY])).status, 200);
    const e = await gw.writePolicy(policy(`    - { id: other, sha256: "${sha256('igk_other')}" }\n`));
    assert.equal(e.type, 'applied');
    refused(await infer('/v2/models/mlp/infer', ['x-api-key', KEY]), 401, 'GW_ERR_UNAUTHENTICATED');
  });
});
