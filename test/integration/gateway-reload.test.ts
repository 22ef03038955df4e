// Hot reload of the policy file under traffic: valid edits take effect at once with no failed
// request, requests finish on the snapshot they started with, and a bad edit never replaces the
// good policy.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertErrorBody, request, sampleValue, scrape } from '../helpers/backend.js';
import { gatewayTestbed, mlpBody, policyYaml, type RunningGateway, Tally } from '../helpers/gateway.js';

const bed = gatewayTestbed({ v1: [{ name: 'mlp', version: '1' }], v2: [{ name: 'mlp', version: '2' }] });
const v1 = bed.endpoint('v1');
const v2 = bed.endpoint('v2');
const body = mlpBody(3);

const split = (stable: number, candidate: number) =>
  policyYaml({
    variants: {
      stable: { endpoints: [v1.url], version: '1' },
      candidate: { endpoints: [v2.url], version: '2' },
    },
    split: { stable, candidate },
  });

async function gateway(policy: string): Promise<RunningGateway> {
  return bed.gateway({ policy });
}

async function send(g: RunningGateway): Promise<{ status: number; variant: string | null; text: string }> {
  const res = await request(`${g.url}/v2/models/m/infer`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  return { status: res.status, variant: res.headers.get('x-infergate-variant'), text: res.body.toString() };
}

describe('hot reload', () => {
  test('weights edited in the file under load: every answer is 2xx and the split follows', async () => {
    const g = await gateway(split(100, 0));
    const failures: string[] = [];
    const seen: (string | null)[] = [];
    const answered = new Tally();
    let stop = false;
    const load = Promise.all(
      Array.from({ length: 12 }, async () => {
        while (!stop) {
          const r = await send(g);
          if (r.status < 200 || r.status > 299) failures.push(`${r.status} ${r.text}`);
          seen.push(r.variant);
          answered.add();
        }
      }),
    );
    const waitRequests = (n: number) => answered.reached(answered.count + n, `${n} more answers`);
    await waitRequests(100);
    for (const [a, b] of [
      [90, 10],
      [50, 50],
      [10, 90],
      [0, 100],
    ] as const) {
      const verdict = await g.writePolicy(split(a, b));
      assert.equal(verdict.type, 'applied');
      await waitRequests(150);
    }
    // After the last edit, everything goes to the candidate.
    const mark = seen.length;
    await waitRequests(200);
    stop = true;
    await load;
    assert.deepEqual(failures, [], 'no failed request while the policy changed');
    const after = seen.slice(mark + 24); // requests in flight at the mark may predate it
    assert.ok(after.length > 100);
    assert.ok(
      after.every((v) => v === 'candidate'),
      'after 0/100 every request goes to the candidate',
    );
    assert.ok(
      seen.slice(0, 100).every((v) => v === 'stable'),
      'before any edit, 100/0 sends all to stable',
    );
  });

  test('a valid edit takes effect within a second of the write', async () => {
    const g = await gateway(split(100, 0));
    assert.equal((await send(g)).variant, 'stable');
    const started = performance.now();
    const verdict = await g.writePolicy(split(0, 100));
    const took = performance.now() - started;
    assert.equal(verdict.type, 'applied');
    assert.ok(took < 1000, `applied after ${took.toFixed(0)} ms`);
    assert.equal((await send(g)).variant, 'candidate');
  });

  test('an invalid edit is rejected with its errors, counted, and the last good policy keeps serving', async () => {
    const g = await gateway(split(100, 0));
    const goodSha = g.gateway.snapshot.policy.sha256;
    const bad = split(0, 100).replace('"candidate":100', '"canary":100');
    const verdict = await g.writePolicy(bad);
    assert.equal(verdict.type, 'rejected');
    assert.deepEqual(
      verdict.type === 'rejected' ? verdict.errors.map((e) => `${e.path}: ${e.message}`) : [],
      ["models.m.split.canary: unknown variant 'canary'"],
    );
    assert.equal(g.gateway.snapshot.policy.sha256, goodSha);
    for (let i = 0; i < 20; i++) assert.equal((await send(g)).variant, 'stable');
    const syntax = await g.writePolicy('version: 1\nmodels: [\n');
    assert.equal(syntax.type, 'rejected');
    const { samples } = await scrape(g.adminUrl);
    assert.equal(sampleValue(samples, 'infergate_policy_reloads_total', { result: 'rejected' }), 2);
    assert.equal(sampleValue(samples, 'infergate_policy_info', { sha256: goodSha }), 1);
    // A later good edit is applied as usual.
    assert.equal((await g.writePolicy(split(0, 100))).type, 'applied');
    assert.equal((await send(g)).variant, 'candidate');
  });

  test('a request in flight finishes on the snapshot it started with, even when its backend is removed', async () => {
    const slow = await bed.fake({ delayMs: 400 });
    const onlySlow = policyYaml({ variants: { slow: { endpoints: [slow.url] } } });
    const g = await gateway(onlySlow);
    const arrived = slow.nextRequest();
    const inFlight = send(g);
    await arrived;
    const verdict = await g.writePolicy(
      policyYaml({ variants: { fast: { endpoints: [v1.url], version: '1' } } }),
    );
    assert.equal(verdict.type, 'applied');
    const next = await send(g);
    assert.equal(next.status, 200);
    assert.equal(next.variant, 'fast');
    const first = await inFlight;
    assert.equal(first.status, 200, first.text);
    assert.equal(first.variant, 'slow');
    // The removed endpoint is gone from the admin view.
    const upstreams = (await (await fetch(`${g.adminUrl}/admin/upstreams`)).json()) as {
      backends: { endpoints: { url: string }[] }[];
    };
    assert.ok(upstreams.backends.every((b) => b.endpoints.every((e) => e.url !== slow.url)));
  });

  test('a model removed by an edit answers 404 from then on', async () => {
    const g = await gateway(split(100, 0));
    assert.equal((await send(g)).status, 200);
    const other = policyYaml({ model: 'other', variants: { only: { endpoints: [v1.url], version: '1' } } });
    assert.equal((await g.writePolicy(other)).type, 'applied');
    const res = await request(`${g.url}/v2/models/m/infer`, { method: 'POST', body });
    assertErrorBody(res, 404, 'GW_ERR_MODEL_NOT_FOUND');
  });
});
