// The real `infergate gateway` and `infergate up` commands in child processes.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { request, tempDir } from '../helpers/backend.js';
import { gatewayTestbed, mlpBody, policyYaml } from '../helpers/gateway.js';

const bed = gatewayTestbed({ backend: [{ name: 'mlp', version: '1' }] });
const backend = bed.endpoint('backend');
const body = mlpBody(9);
const cli = bed.cli;

async function policyFile(text: string): Promise<string> {
  const file = path.join(await tempDir(), 'policy.yaml');
  await writeFile(file, text);
  return file;
}

describe('infergate gateway', () => {
  test('serves the policy, logs its address, and drains on SIGTERM with exit 0', async () => {
    const file = await policyFile(
      policyYaml({ variants: { only: { endpoints: [backend.url], version: '1' } } }),
    );
    const p = cli(['gateway', '--policy', file, '--port', '0', '--admin-port', '0']);
    const line = await p.waitForLog('gateway listening', (r) =>
      r.msg.startsWith('gateway listening on http://'),
    );
    const url = line.address as string;
    const res = await request(`${url}/v2/models/m/infer`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-infergate-variant'), 'only');
    const metrics = await request(`${line.admin as string}/metrics`);
    assert.match(
      metrics.body.toString(),
      /infergate_requests_total\{model="m",variant="only",code="200"\} 1/,
    );
    p.child.kill('SIGTERM');
    assert.deepEqual(await p.exited, { code: 0, signal: null });
    assert.ok(p.logs.some((r) => r.msg === 'drained; exiting'));
  });

  test('refuses to start on an invalid policy, printing every error with its path (exit 1)', async () => {
    const bad = policyYaml({
      variants: { only: { endpoints: [backend.url] } },
      split: { only: 1, canary: 2 },
    });
    const p = cli(['gateway', '--policy', await policyFile(bad), '--port', '0', '--admin-port', '0']);
    const exit = await p.exited;
    assert.equal(exit.code, 1);
    assert.match(p.stderr(), /models\.m\.split\.canary: unknown variant 'canary'/);
  });

  test('without --policy it is a usage error (exit 2)', async () => {
    const p = cli(['gateway'], { INFERGATE_POLICY: undefined });
    assert.equal((await p.exited).code, 2);
    assert.match(p.stderr(), /--policy FILE is required/);
  });
});

describe('infergate up', () => {
  test('starts three replicas and a gateway on the default policy; Ctrl-C stops them all', async () => {
    const models = await tempDir('infergate-up-');
    const audit = path.join(models, 'audit.jsonl');
    const p = cli(['up', '--model-repository', models, '--audit-log', audit]);
    await p.waitForLog('stack up', (r) => r.msg.startsWith('infergate is up at'), 90_000);
    const gateway = 'http://127.0.0.1:8080';
    const versions = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const res = await request(`${gateway}/v2/models/mlp/infer`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', 'x-user-id': `user-${i}` },
      });
      assert.equal(res.status, 200, res.body.toString());
      versions.add((res.json as { model_version: string }).model_version);
    }
    assert.ok(versions.has('1'), 'mlp version 1 served by the stable replicas');
    const pinned = await request(`${gateway}/v2/models/mlp/versions/2/infer`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal((pinned.json as { model_version: string }).model_version, '2');
    for (const model of ['simple', 'text-direction']) {
      assert.equal((await request(`${gateway}/v2/models/${model}/ready`)).status, 200, model);
    }
    p.child.kill('SIGINT');
    assert.deepEqual(await p.exited, { code: 0, signal: null });
    // --audit-log reached the gateway: one line per request it answered (written by the time it exits).
    const lines = (await readFile(audit, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const infers = lines.filter((l: { model?: string }) => l.model === 'mlp');
    assert.equal(infers.length, 41, '40 split requests and the pinned one, audited');
    // Every child is gone: nothing listens on the stack's ports any more.
    for (const port of [8001, 8002, 8003, 8080, 9901]) {
      await assert.rejects(fetch(`http://127.0.0.1:${port}/v2/health/live`), `port ${port} closed`);
    }
  });
});
