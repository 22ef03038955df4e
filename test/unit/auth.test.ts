// The auth stage without sockets: which credential a request carries (one, in one header, with the
// Bearer scheme), keys looked up by SHA-256 in the policy's Map and in the directory, and each way
// a credential is refused with its status, code and WWW-Authenticate; the stage arrays a policy
// compiles to (no auth or rate-limit stage without those sections).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  type AuthFacts,
  authStage,
  type KeyDirectory,
  type TokenVerifier,
} from '../../gateway/admission/auth.js';
import { readCredential } from '../../gateway/admission/credentials.js';
import { MemoryRateStore } from '../../gateway/admission/gcra.js';
import { securityStages, unknownModelGate } from '../../gateway/admission/security.js';
import type { Refusal } from '../../gateway/admission/stage.js';
import { type CompiledPolicy, compilePolicy, type KeyRecord } from '../../gateway/policy/compile.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const KEY = 'igk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const OTHER = 'igk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';

function facts(headers: Record<string, string>, raw?: string[]): AuthFacts {
  return {
    id: 'r1',
    modelName: 'mlp',
    headers,
    keyId: undefined,
    admitted: 0,
    refusedBy: undefined,
    rawHeaders: raw ?? Object.entries(headers).flat(),
  };
}

function record(id: string, extra: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id,
    models: new Set(['mlp']),
    rateLimit: undefined,
    expiresAt: undefined,
    revoked: false,
    ...extra,
  };
}

describe('readCredential', () => {
  const cases: [string, Record<string, string>, string[] | undefined, string][] = [
    ['no header', {}, undefined, 'none'],
    ['Bearer key', { authorization: `Bearer ${KEY}` }, undefined, 'key'],
    ['scheme in any case', { authorization: `bEaReR ${KEY}` }, undefined, 'key'],
    ['x-api-key', { 'x-api-key': KEY }, undefined, 'key'],
    ['a bearer JWT', { authorization: 'Bearer eyJ.eyJ.sig' }, undefined, 'token'],
    ['Basic scheme', { authorization: 'Basic dXNlcjpwYXNz' }, undefined, 'malformed'],
    ['Bearer alone', { authorization: 'Bearer' }, undefined, 'malformed'],
    ['Bearer and two spaces', { authorization: `Bearer  ${KEY}` }, undefined, 'malformed'],
    ['a space inside', { authorization: `Bearer ${KEY} x` }, undefined, 'malformed'],
    ['empty x-api-key', { 'x-api-key': '' }, undefined, 'malformed'],
    ['joined x-api-keys', { 'x-api-key': `${KEY}, ${OTHER}` }, undefined, 'malformed'],
    ['both headers', { authorization: `Bearer ${KEY}`, 'x-api-key': KEY }, undefined, 'malformed'],
    [
      'two Authorization headers (node keeps the first)',
      { authorization: `Bearer ${KEY}` },
      ['Authorization', `Bearer ${KEY}`, 'AUTHORIZATION', `Bearer ${OTHER}`],
      'malformed',
    ],
  ];
  for (const [name, headers, raw, kind] of cases) {
    test(name, () => assert.equal(readCredential(headers, raw ?? Object.entries(headers).flat()).kind, kind));
  }
});

describe('the auth stage', () => {
  const keys = new Map([
    [sha(KEY), record('team-a', { rateLimit: { requestsPerSecond: 5, burst: 5 } })],
    [sha('igk_expired0000000000000000000000'), record('old', { expiresAt: 1000 })],
  ]);
  const directory: KeyDirectory = {
    get: (h) =>
      h === sha('igk_revoked0000000000000000000000')
        ? record('gone', { revoked: true })
        : h === sha(OTHER)
          ? record('team-b', { models: new Set(['other']) })
          : undefined,
  };
  const refused: string[] = [];
  const stage = authStage({
    keys,
    directory,
    tokens: undefined,
    optional: false,
    model: 'mlp',
    wallClock: () => 5000,
    onRefused: (r) => refused.push(r),
  });
  const run = (headers: Record<string, string>) => {
    const f = facts(headers);
    return { f, v: stage.admit(f) as Refusal | undefined };
  };

  test('a policy key: admitted, its id and limit in the context, no header added', () => {
    const { f, v } = run({ authorization: `Bearer ${KEY}` });
    assert.equal(v, undefined);
    assert.equal(f.keyId, 'team-a');
    assert.deepEqual(f.keyLimit, { requestsPerSecond: 5, burst: 5 });
    assert.equal(f.replyHeaders, undefined);
  });

  const refusals: [string, Record<string, string>, number, string, string][] = [
    ['no credential', {}, 401, 'GW_ERR_UNAUTHENTICATED', 'missing'],
    ['wrong scheme', { authorization: `Basic ${KEY}` }, 401, 'GW_ERR_UNAUTHENTICATED', 'malformed'],
    ['whitespace key', { 'x-api-key': ' ' }, 401, 'GW_ERR_UNAUTHENTICATED', 'malformed'],
    [
      'unknown key',
      { 'x-api-key': 'igk_nobody00000000000000000000000' },
      401,
      'GW_ERR_UNAUTHENTICATED',
      'unknown_key',
    ],
    [
      'expired key',
      { 'x-api-key': 'igk_expired0000000000000000000000' },
      401,
      'GW_ERR_UNAUTHENTICATED',
      'expired_key',
    ],
    [
      'revoked key',
      { 'x-api-key': 'igk_revoked0000000000000000000000' },
      401,
      'GW_ERR_UNAUTHENTICATED',
      'revoked_key',
    ],
    ['key for another model', { 'x-api-key': OTHER }, 403, 'GW_ERR_FORBIDDEN', 'forbidden'],
  ];
  for (const [name, headers, status, code, reason] of refusals) {
    test(`${name}: ${status} ${code}, counted as ${reason}`, () => {
      refused.length = 0;
      const { f, v } = run(headers);
      assert.ok(v !== undefined);
      assert.equal(v.error.statusCode, status);
      assert.equal(v.error.code, code);
      assert.deepEqual(refused, [reason]);
      assert.equal(f.keyId, undefined);
      if (status === 401)
        assert.match(f.replyHeaders?.['www-authenticate'] ?? '', /^Bearer realm="infergate"/);
      // The message never carries the credential.
      for (const value of Object.values(headers))
        if (value.trim() !== '') assert.ok(!v.error.message.includes(value));
    });
  }

  test('optional (auth not required, or a public model): no credential passes, a bad one does not', () => {
    const open = authStage({
      keys,
      directory: undefined,
      tokens: undefined,
      optional: true,
      model: 'mlp',
      wallClock: () => 0,
      onRefused: () => {},
    });
    assert.equal(open.admit(facts({})), undefined);
    assert.equal((open.admit(facts({ 'x-api-key': OTHER })) as Refusal).error.statusCode, 401);
  });

  test('a bearer token goes to the verifier; its subject becomes the key id, its scope is checked', async () => {
    const tokens: TokenVerifier = {
      verify: async (t) => {
        if (t === 'good.jwt.sig') return { subject: 'alice', models: new Set(['mlp']) };
        if (t === 'other.jwt.sig') return { subject: 'bob', models: new Set(['x']) };
        throw new Error('signature verification failed');
      },
    };
    const s = authStage({
      keys,
      directory: undefined,
      tokens,
      optional: false,
      model: 'mlp',
      wallClock: () => 0,
      onRefused: () => {},
    });
    const ok = facts({ authorization: 'Bearer good.jwt.sig' });
    assert.equal(await s.admit(ok), undefined);
    assert.equal(ok.keyId, 'jwt:alice');
    assert.equal(
      ((await s.admit(facts({ authorization: 'Bearer other.jwt.sig' }))) as Refusal).error.statusCode,
      403,
    );
    const bad = (await s.admit(facts({ authorization: 'Bearer bad.jwt.sig' }))) as Refusal;
    assert.equal(bad.error.code, 'GW_ERR_UNAUTHENTICATED');
    assert.match(bad.error.message, /signature verification failed/);
    // API keys still work beside JWT.
    assert.equal(s.admit(facts({ authorization: `Bearer ${KEY}` })), undefined);
  });
});

describe('the stages a policy compiles to', () => {
  const base = `version: 1
backends: { pool: { endpoints: [http://127.0.0.1:1] } }
models:
  mlp: { variants: { v: { backend: pool, model: mlp } } }
  open: { variants: { v: { backend: pool, model: open } }, public: true }
`;
  const compile = (text: string): CompiledPolicy => {
    const r = compilePolicy(text);
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
    return r.policy;
  };
  const deps = {
    localRates: new MemoryRateStore(() => 0),
    wallClock: () => 0,
    onAuthRefused: () => {},
    onRateLimited: () => {},
  };
  const names = (p: CompiledPolicy, m: string) =>
    securityStages(p, p.models.get(m) as never, deps).map((s) => s.name);

  test('no auth and no rate limit: no stage at all (nothing on the hot path)', () => {
    const p = compile(base.replace('      public: true', ''));
    assert.deepEqual(names(p, 'mlp'), []);
    assert.equal(unknownModelGate(p, deps), undefined);
  });

  test('a model rate limit alone: the rate-limit stage only', () => {
    const p = compile(
      base.replace('model: mlp } } }', 'model: mlp } }, rateLimit: { requestsPerSecond: 5 } }'),
    );
    assert.deepEqual(names(p, 'mlp'), ['rate-limit']);
    assert.deepEqual(names(p, 'open'), []);
  });

  test('auth with keys that carry limits: auth then rate limit; an unknown model is gated', () => {
    const p = compile(
      `${base}auth:\n  required: true\n  apiKeys:\n    - { id: a, sha256: "${sha(KEY)}", rateLimit: { requestsPerSecond: 1 } }\n`,
    );
    assert.deepEqual(names(p, 'mlp'), ['auth', 'rate-limit']);
    assert.ok(unknownModelGate(p, deps) !== undefined);
    const key = p.auth?.keys.get(sha(KEY));
    assert.equal(key?.id, 'a');
    assert.deepEqual(key?.rateLimit, { requestsPerSecond: 1, burst: 1 });
  });
});
