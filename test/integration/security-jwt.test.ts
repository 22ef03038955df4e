// JWT as the second credential, against a real gateway: RS256, ES256 and EdDSA tokens from a JWKS
// file and a JWKS URL, model scopes from the claim, and the refusals of the bypass suite: alg none,
// HS256 signed with the RSA public key, expired, not yet valid, wrong aud and iss, unknown kid, a
// forged signature; kid rotation in the file and at the URL.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { removeTempDirs, tempDir } from '../helpers/backend.js';
import { type FakeReplica, type RunningGateway, startFakeReplica, startGateway } from '../helpers/gateway.js';
import { send, sha256 } from '../helpers/security.js';

type Pair = Awaited<ReturnType<typeof generateKeyPair>>;
const ISS = 'https://issuer.test';
const AUD = 'infergate';
const KEY = 'igk_jwtsuiteapikeyjwtsuiteapikey0';

let replica: FakeReplica;
let gw: RunningGateway;
let urlGw: RunningGateway;
let jwksPath: string;
let jwksServer: http.Server;
let served: { keys: JWK[] } = { keys: [] };
const pairs: Record<string, Pair> = {};

async function publicJwk(p: Pair, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(p.publicKey)), kid, alg, use: 'sig' };
}

function sign(
  p: Pair,
  alg: string,
  kid: string,
  claims: JWTPayload = {},
  times: { exp?: number; nbf?: number } = {},
) {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ iss: ISS, aud: AUD, sub: 'alice', models: ['mlp'], ...claims })
    .setProtectedHeader({ alg, kid })
    .setIssuedAt()
    .setExpirationTime(times.exp ?? now + 300);
  if (times.nbf !== undefined) jwt.setNotBefore(times.nbf);
  return jwt.sign(p.privateKey);
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function policy(jwt: string): string {
  return `version: 1
defaults: { healthCheck: { intervalMs: 0 } }
backends:
  pool: { endpoints: [${replica.url}] }
models:
  mlp: { variants: { v: { backend: pool, model: mlp } } }
  other: { variants: { v: { backend: pool, model: other } } }
auth:
  required: true
  apiKeys:
    - { id: team-a, sha256: "${sha256(KEY)}" }
  jwt: { ${jwt}, issuer: "${ISS}", audience: ${AUD}, clockSkewSeconds: 30, modelsClaim: models }
`;
}

before(async () => {
  replica = await startFakeReplica();
  pairs.rs = await generateKeyPair('RS256');
  pairs.es = await generateKeyPair('ES256');
  pairs.ed = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  pairs.rs2 = await generateKeyPair('RS256');
  const dir = await tempDir('infergate-jwt-');
  jwksPath = path.join(dir, 'jwks.json');
  await writeFile(
    jwksPath,
    JSON.stringify({
      keys: [
        await publicJwk(pairs.rs, 'rs-1', 'RS256'),
        await publicJwk(pairs.es, 'es-1', 'ES256'),
        await publicJwk(pairs.ed, 'ed-1', 'EdDSA'),
      ],
    }),
  );
  served = { keys: [await publicJwk(pairs.rs, 'rs-1', 'RS256')] };
  jwksServer = http.createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(served)),
  );
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  const port = (jwksServer.address() as AddressInfo).port;
  gw = await startGateway({ policy: policy(`jwksFile: "${jwksPath}"`) });
  urlGw = await startGateway({ policy: policy(`jwksUrl: "http://127.0.0.1:${port}/jwks.json"`) });
});
after(async () => {
  await gw.close();
  await urlGw.close();
  await new Promise((r) => jwksServer.close(r));
  await replica.close();
  await removeTempDirs();
});

const call = (token: string, model = 'mlp', g = gw) =>
  send(g.url, { path: `/v2/models/${model}/infer`, headers: ['authorization', `Bearer ${token}`] });

describe('valid tokens', () => {
  for (const [name, pair, alg, kid] of [
    ['RS256', 'rs', 'RS256', 'rs-1'],
    ['ES256', 'es', 'ES256', 'es-1'],
    ['EdDSA', 'ed', 'EdDSA', 'ed-1'],
  ] as const) {
    test(`${name}: served`, async () => {
      const a = await call(await sign(pairs[pair] as Pair, alg, kid));
      assert.equal(a.status, 200, a.text);
    });
  }

  test('scopes as a space-separated string; within the clock skew; API keys beside', async () => {
    const now = Math.floor(Date.now() / 1000);
    assert.equal(
      (await call(await sign(pairs.rs as Pair, 'RS256', 'rs-1', { models: 'other mlp' }))).status,
      200,
    );
    assert.equal(
      (await call(await sign(pairs.rs as Pair, 'RS256', 'rs-1', {}, { exp: now - 10 }))).status,
      200,
    );
    assert.equal(
      (await call(await sign(pairs.rs as Pair, 'RS256', 'rs-1', {}, { nbf: now + 10 }))).status,
      200,
    );
    assert.equal(
      (await send(gw.url, { path: '/v2/models/mlp/infer', headers: ['x-api-key', KEY] })).status,
      200,
    );
  });
});

describe('refused tokens', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: [string, () => Promise<string>, number, RegExp][] = [
    [
      'alg none',
      async () =>
        `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: ISS, aud: AUD, sub: 'x', exp: now() + 300, models: ['mlp'] })}.`,
      401,
      /algorithm|form/,
    ],
    [
      'HS256 signed with the RSA public key (algorithm confusion)',
      async () => {
        const spki = await exportSPKI((pairs.rs as Pair).publicKey);
        const head = `${b64({ alg: 'HS256', typ: 'JWT', kid: 'rs-1' })}.${b64({ iss: ISS, aud: AUD, sub: 'x', exp: now() + 300, models: ['mlp'] })}`;
        return `${head}.${createHmac('sha256', spki).update(head).digest('base64url')}`;
      },
      401,
      /algorithm/,
    ],
    [
      'expired beyond the skew',
      () => sign(pairs.rs as Pair, 'RS256', 'rs-1', {}, { exp: now() - 120 }),
      401,
      /expired/,
    ],
    [
      'not yet valid beyond the skew',
      () => sign(pairs.rs as Pair, 'RS256', 'rs-1', {}, { nbf: now() + 120 }),
      401,
      /not valid yet/,
    ],
    ['wrong aud', () => sign(pairs.rs as Pair, 'RS256', 'rs-1', { aud: 'someone-else' }), 401, /'aud'/],
    ['wrong iss', () => sign(pairs.rs as Pair, 'RS256', 'rs-1', { iss: 'https://evil.test' }), 401, /'iss'/],
    ['unknown kid', () => sign(pairs.rs as Pair, 'RS256', 'nobody'), 401, /kid/],
    [
      'a forged signature (another key, a known kid)',
      () => sign(pairs.rs2 as Pair, 'RS256', 'rs-1'),
      401,
      /signature/,
    ],
    [
      'a token without exp',
      async () =>
        new SignJWT({ models: ['mlp'] })
          .setProtectedHeader({ alg: 'RS256', kid: 'rs-1' })
          .setIssuer(ISS)
          .setAudience(AUD)
          .setSubject('a')
          .sign((pairs.rs as Pair).privateKey),
      401,
      /'exp'/,
    ],
    [
      'a model outside the claim',
      () => sign(pairs.rs as Pair, 'RS256', 'rs-1', { models: ['other'] }),
      403,
      /jwt:alice/,
    ],
    [
      'no scope claim',
      () => sign(pairs.rs as Pair, 'RS256', 'rs-1', { models: undefined }),
      403,
      /jwt:alice/,
    ],
    ['a garbled token', async () => 'not.a.jwt', 401, /well-formed|not/],
  ];
  for (const [name, make, status, message] of cases) {
    test(`${name}: ${status}`, async () => {
      const before = replica.received.length;
      const token = await make();
      const a = await call(token);
      assert.equal(a.status, status, a.text);
      assert.equal(a.code, status === 401 ? 'GW_ERR_UNAUTHENTICATED' : 'GW_ERR_FORBIDDEN');
      assert.match(a.text, message);
      if (status === 401) assert.match(String(a.headers['www-authenticate']), /error="invalid_token"/);
      const body = token.split('.')[1] as string;
      if (body.length > 8) assert.ok(!a.text.includes(body), 'the token is not echoed');
      assert.equal(replica.received.length, before);
    });
  }
});

describe('key rotation', () => {
  test('the file: a new kid is picked up when a token names it', async () => {
    const fresh = await generateKeyPair('ES256');
    const token = await sign(fresh, 'ES256', 'es-2');
    assert.equal((await call(token)).status, 401);
    await writeFile(
      jwksPath,
      JSON.stringify({
        keys: [await publicJwk(pairs.rs as Pair, 'rs-1', 'RS256'), await publicJwk(fresh, 'es-2', 'ES256')],
      }),
    );
    assert.equal((await call(token)).status, 200);
    // es-1 left the file: refused from now on.
    assert.equal((await call(await sign(pairs.es as Pair, 'ES256', 'es-1'))).status, 401);
  });

  test('the URL: cached, and fetched again (at most once a second) for a kid it does not hold', async () => {
    assert.equal((await call(await sign(pairs.rs as Pair, 'RS256', 'rs-1'), 'mlp', urlGw)).status, 200);
    served = {
      keys: [
        await publicJwk(pairs.rs as Pair, 'rs-1', 'RS256'),
        await publicJwk(pairs.ed as Pair, 'ed-9', 'EdDSA'),
      ],
    };
    const token = await sign(pairs.ed as Pair, 'EdDSA', 'ed-9');
    // The refetch waits out jose's cooldown since the last fetch: the wait is the behaviour.
    const deadline = performance.now() + 5000;
    let status = 0;
    while (performance.now() < deadline) {
      status = (await call(token, 'mlp', urlGw)).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 200);
  });
});
