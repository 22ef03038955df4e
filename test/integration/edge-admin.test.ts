// The admin port: open on loopback, a bearer token required when bound anywhere else, /metrics
// optionally left open; tokens compared in constant time and never logged.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { isLoopback } from '../../cli/edge-flags.js';
import { bearerMatches } from '../../gateway/admin-auth.js';
import { removeTempDirs, request, tempDir } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';
import { type EdgeGateway, startEdgeGateway } from '../helpers/edge.js';
import { deadPort, policyYaml } from '../helpers/gateway.js';

const TOKEN = 'tok-4f1b2c9d8e7a6b5c4d3e2f1a0b9c8d7e';
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  await removeTempDirs();
});

async function policy(): Promise<string> {
  return policyYaml({
    variants: { only: { endpoints: [`http://127.0.0.1:${await deadPort()}`] } },
    defaults: { healthCheck: { intervalMs: 0 } },
  });
}

async function gateway(metricsOpen: boolean): Promise<EdgeGateway> {
  const g = await startEdgeGateway(await policy(), { adminAuth: { token: TOKEN, metricsOpen } });
  closers.push(() => g.close());
  return g;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('bearerMatches', () => {
  const expected = createHash('sha256').update(TOKEN).digest();
  test('takes the token after the Bearer scheme, any case, with spaces around', () => {
    assert.equal(bearerMatches(`Bearer ${TOKEN}`, expected), true);
    assert.equal(bearerMatches(`bearer   ${TOKEN} `, expected), true);
  });
  test('refuses no header, another scheme, an empty token, a prefix or a longer token', () => {
    for (const h of [
      undefined,
      '',
      `Basic ${TOKEN}`,
      'Bearer',
      'Bearer ',
      TOKEN,
      `Bearer ${TOKEN.slice(0, -1)}`,
    ])
      assert.equal(bearerMatches(h, expected), false, String(h));
    assert.equal(bearerMatches(`Bearer ${TOKEN}x`, expected), false);
    assert.equal(bearerMatches(`Bearer ${TOKEN} ${TOKEN}`, expected), false);
  });
});

describe('isLoopback', () => {
  test('loopback names and addresses, and the others', () => {
    for (const h of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1'])
      assert.equal(isLoopback(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1'])
      assert.equal(isLoopback(h), false, h);
  });
});

describe('an admin port with a token', () => {
  test('every route needs the token: none 401, another 401 invalid_token, the right one 200', async () => {
    const g = await gateway(false);
    const none = await request(`${g.adminUrl}/admin/policy`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="infergate-admin"');
    assert.deepEqual(
      [(none.json as { code: string }).code, (none.json as { field: string }).field],
      ['GW_ERR_ADMIN_UNAUTHORIZED', 'authorization'],
    );
    const wrong = await request(`${g.adminUrl}/admin/policy`, { headers: bearer(`${TOKEN}0`) });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.ok(!wrong.body.toString().includes(TOKEN), 'the answer does not echo the token');
    const ok = await request(`${g.adminUrl}/admin/policy`, { headers: bearer(TOKEN) });
    assert.equal(ok.status, 200);
    assert.equal((await request(`${g.adminUrl}/metrics`)).status, 401);
    assert.equal((await request(`${g.adminUrl}/metrics`, { headers: bearer(TOKEN) })).status, 200);
    // Unknown routes are not told apart from known ones without the token.
    assert.equal((await request(`${g.adminUrl}/nothing-here`)).status, 401);
    assert.equal((await request(`${g.adminUrl}/nothing-here`, { headers: bearer(TOKEN) })).status, 404);
  });

  test('with metrics open, /metrics needs no token and the rest still does', async () => {
    const g = await gateway(true);
    assert.equal((await request(`${g.adminUrl}/metrics`)).status, 200);
    assert.equal((await request(`${g.adminUrl}/metrics?name[]=x`)).status, 200);
    assert.equal((await request(`${g.adminUrl}/admin/upstreams`)).status, 401);
    assert.equal((await request(`${g.adminUrl}/admin/upstreams`, { headers: bearer(TOKEN) })).status, 200);
  });
});

describe('infergate gateway --admin-host', () => {
  async function files(): Promise<{ policy: string; token: string; short: string }> {
    const dir = await tempDir('infergate-admin-');
    const out = {
      policy: path.join(dir, 'p.yaml'),
      token: path.join(dir, 'token'),
      short: path.join(dir, 'short'),
    };
    await writeFile(out.policy, await policy());
    await writeFile(out.token, `${TOKEN}\n`);
    await writeFile(out.short, 'abc\n');
    return out;
  }
  const base = (policyFile: string) => [
    'gateway',
    '--policy',
    policyFile,
    '--port',
    '0',
    '--admin-port',
    '0',
  ];

  test('beyond loopback without a token it refuses to start (exit 2), saying why', async () => {
    const f = await files();
    const p = runCli([...base(f.policy), '--admin-host', '0.0.0.0']);
    assert.equal((await p.exited).code, 2);
    assert.match(
      p.stderr(),
      /--admin-host 0\.0\.0\.0 is not a loopback address: the admin port then needs --admin-token-file FILE/,
    );
  });

  test('a short token or a missing file is refused (exit 2)', async () => {
    const f = await files();
    const short = runCli([...base(f.policy), '--admin-host', '0.0.0.0', '--admin-token-file', f.short]);
    assert.equal((await short.exited).code, 2);
    assert.match(short.stderr(), /the token must be one word of at least 16 characters/);
    assert.ok(!short.stderr().includes('abc'), 'not even a short token is printed');
    const missing = runCli([...base(f.policy), '--admin-token-file', `${f.token}.nope`]);
    assert.equal((await missing.exited).code, 2);
    assert.match(missing.stderr(), /--admin-token-file .*token\.nope: cannot read the file \(ENOENT\)/);
  });

  test('with a token it serves beyond loopback, asks for the token, and never logs it', async () => {
    const f = await files();
    const p = runCli([...base(f.policy), '--admin-host', '0.0.0.0', '--admin-token-file', f.token]);
    closers.push(() => p.stop());
    const line = await p.waitForLog('gateway listening', (r) => r.msg.startsWith('gateway listening on'));
    assert.equal(line.adminAuth, 'bearer');
    const admin = (line.admin as string).replace('0.0.0.0', '127.0.0.1');
    assert.equal((await request(`${admin}/admin/policy`)).status, 401);
    assert.equal((await request(`${admin}/admin/policy`, { headers: bearer('x'.repeat(40)) })).status, 401);
    assert.equal((await request(`${admin}/admin/policy`, { headers: bearer(TOKEN) })).status, 200);
    p.child.kill('SIGTERM');
    assert.equal((await p.exited).code, 0);
    assert.ok(!p.stdout().includes(TOKEN) && !p.stderr().includes(TOKEN), 'the token is in no output');
  });
});
