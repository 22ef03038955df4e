// Shadow mirroring and output comparison through a real gateway: real replicas serving the mlp
// models (v1 and v2 differ in weights), fake replicas for a shadow that hangs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  getJson,
  leBytes,
  okInfer,
  postBinary,
  postJson,
  randomFloats,
  sampleValue,
  scrape,
  waitFor,
} from '../helpers/backend.js';
import { gatewayTestbed, mlpBody, policyYaml } from '../helpers/gateway.js';

const bed = gatewayTestbed({ v1: [{ name: 'mlp', version: '1' }], v2: [{ name: 'mlp', version: '2' }] });

interface TallyJson {
  variant: string;
  compared: number;
  agreement: number | null;
  outputs: {
    name: string;
    maxAbsDifference: number | null;
    shapeMismatches: number;
    top1?: { rows: number; agreement: number; wilson95: { low: number; high: number }; flipRate: number };
  }[];
  disagreements?: { requestId: string }[];
}
interface ShadowJson {
  models: { model: string; inFlight: number; shadow: TallyJson[]; noiseFloor: TallyJson[] }[];
}

async function shadowView(adminUrl: string): Promise<ShadowJson['models'][number] | undefined> {
  const r = await getJson(adminUrl, '/admin/shadow');
  return (r.json as ShadowJson).models.find((m) => m.model === 'm');
}

function shadowPolicy(shadowVersion: string, extra: Record<string, unknown> = {}): string {
  return policyYaml({
    variants: {
      stable: { endpoints: [bed.endpoint('v1').url], version: '1' },
      other: { endpoints: [bed.endpoint(shadowVersion === '1' ? 'v1' : 'v2').url], version: shadowVersion },
    },
    split: { stable: 1 },
    modelKeys: {
      shadow: { variant: 'other', percent: 100, classifications: ['y'], noiseFloorPercent: 100, ...extra },
    },
  });
}

async function send(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await postJson(url, '/v2/models/m/infer', JSON.parse(mlpBody(i)), {
      'x-request-id': `req-${i}`,
    });
    okInfer(r);
    assert.equal(r.headers.get('x-infergate-variant'), 'stable');
  }
}

describe('shadow comparison', () => {
  test('mlp v1 against v2: disagreement reported per output, the noise floor beside it at full agreement', async () => {
    const gw = await bed.gateway({ policy: shadowPolicy('2') });
    await send(gw.url, 20);
    // One binary answer too: both answers are decoded from the binary extension.
    const bin = await postBinary(
      gw.url,
      '/v2/models/m/infer',
      {
        inputs: [{ name: 'x', shape: [2, 64], datatype: 'FP32', parameters: { binary_data_size: 512 } }],
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
      },
      [leBytes(randomFloats(99, 128))],
    );
    assert.equal(bin.status, 200);
    const m = await waitFor('21 shadow and 21 noise comparisons', async () => {
      const v = await shadowView(gw.adminUrl);
      return v?.shadow[0]?.compared === 21 && v.noiseFloor[0]?.compared === 21 ? v : undefined;
    });
    const shadow = m.shadow[0] as TallyJson;
    assert.equal(shadow.variant, 'other');
    assert.ok((shadow.agreement ?? 1) < 1, 'v2 disagrees with v1');
    const y = shadow.outputs.find((o) => o.name === 'y');
    assert.ok(
      y !== undefined && (y.maxAbsDifference ?? 0) > 1e-3,
      `max abs difference ${y?.maxAbsDifference}`,
    );
    assert.equal(y.shapeMismatches, 0);
    assert.equal(y.top1?.rows, 22, '20 rows of JSON, 2 of binary');
    assert.ok((y.top1?.agreement ?? 1) < 1, 'some top-1 classes flip between v1 and v2');
    assert.ok(
      y.top1 !== undefined &&
        y.top1.wilson95.low <= y.top1.agreement &&
        y.top1.agreement <= y.top1.wilson95.high,
    );
    assert.ok(Math.abs((y.top1?.flipRate ?? 0) + (y.top1?.agreement ?? 0) - 1) < 1e-12);
    assert.ok(
      (shadow.disagreements ?? []).length > 0 && (shadow.disagreements ?? []).length <= 20,
      'a bounded sample',
    );
    assert.match(shadow.disagreements?.[0]?.requestId ?? '', /^req-\d+$|^[0-9a-f-]+$/);
    const noise = m.noiseFloor[0] as TallyJson;
    assert.equal(noise.variant, 'stable');
    assert.equal(noise.agreement, 1, 'v1 agrees with itself');
    assert.equal(noise.outputs[0]?.maxAbsDifference, 0);

    const { samples } = await scrape(gw.adminUrl);
    const count = (variant: string, outcome: string) =>
      sampleValue(samples, 'infergate_shadow_requests_total', { model: 'm', variant, outcome });
    assert.equal(count('other', 'compared'), 21);
    assert.equal(count('stable', 'compared'), 21);
    assert.ok(
      (sampleValue(samples, 'infergate_shadow_agreement', { model: 'm', variant: 'other' }) ?? 1) < 1,
    );
    assert.equal(sampleValue(samples, 'infergate_shadow_agreement', { model: 'm', variant: 'stable' }), 1);
    // The primary's request series never count the copies.
    assert.equal(
      sampleValue(samples, 'infergate_requests_total', { model: 'm', variant: 'other', code: '200' }),
      undefined,
    );
    assert.equal(
      sampleValue(samples, 'infergate_requests_total', { model: 'm', variant: 'stable', code: '200' }),
      21,
    );
  });

  test('mlp v1 against itself: full agreement, top-1 included', async () => {
    const gw = await bed.gateway({ policy: shadowPolicy('1', { noiseFloorPercent: 0 }) });
    await send(gw.url, 15);
    const m = await waitFor('15 comparisons', async () => {
      const v = await shadowView(gw.adminUrl);
      return v?.shadow[0]?.compared === 15 ? v : undefined;
    });
    const t = m.shadow[0] as TallyJson;
    assert.equal(t.agreement, 1);
    const y = t.outputs[0];
    assert.equal(y?.maxAbsDifference, 0);
    assert.equal(y?.top1?.agreement, 1);
    assert.equal(y?.top1?.flipRate, 0);
    assert.ok(
      (y?.top1?.wilson95.low ?? 1) < 1 && (y?.top1?.wilson95.low ?? 0) > 0.7,
      '15 of 15: Wilson low ~0.80',
    );
    assert.deepEqual(t.disagreements, []);
    assert.deepEqual(m.noiseFloor, []);
  });
});

describe('shadow mirroring', () => {
  test('a copy carries the same headers and bytes plus x-infergate-shadow: 1', async () => {
    const fake = await bed.fake();
    const gw = await bed.gateway({
      policy: policyYaml({
        variants: {
          stable: { endpoints: [bed.endpoint('v1').url], version: '1' },
          shadow: { endpoints: [fake.url] },
        },
        split: { stable: 1 },
        defaults: { healthCheck: { intervalMs: 0 } },
        modelKeys: { shadow: { variant: 'shadow', percent: 100 } },
      }),
    });
    const arrival = fake.nextRequest();
    const r = await postJson(gw.url, '/v2/models/m/infer', JSON.parse(mlpBody(1)), {
      'x-request-id': 'mirror-1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    okInfer(r);
    const copy = await arrival;
    assert.equal(copy.method, 'POST');
    assert.equal(copy.path, '/v2/models/mlp/infer');
    assert.equal(copy.headers['x-infergate-shadow'], '1');
    assert.equal(copy.headers['x-request-id'], 'mirror-1');
    assert.equal(copy.headers['content-type'], 'application/json');
    assert.equal(copy.headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(copy.headers['content-length'], String(Buffer.byteLength(mlpBody(1))));
    // A request that is itself a copy is answered and never copied again.
    okInfer(
      await postJson(gw.url, '/v2/models/m/infer', JSON.parse(mlpBody(2)), { 'x-infergate-shadow': '1' }),
    );
    const next = fake.nextRequest(5000);
    okInfer(
      await postJson(gw.url, '/v2/models/m/infer', JSON.parse(mlpBody(3)), { 'x-request-id': 'mirror-3' }),
    );
    assert.equal(
      (await next).headers['x-request-id'],
      'mirror-3',
      'the next copy is of the next plain request',
    );
  });

  test('a hung shadow variant: primary answers go on, copies time out or are dropped, the primary untouched', async () => {
    const fake = await bed.fake({ hang: true });
    const gw = await bed.gateway({
      policy: policyYaml({
        variants: {
          stable: { endpoints: [bed.endpoint('v1').url], version: '1' },
          shadow: { endpoints: [fake.url] },
        },
        split: { stable: 1 },
        modelKeys: { shadow: { variant: 'shadow', percent: 100, timeoutMs: 1500, maxInFlight: 2 } },
      }),
    });
    // Every answer comes back while the shadow hangs (a hung copy would hold this loop).
    await send(gw.url, 8);
    await fake.arrived(2);
    const counts = await waitFor('8 copies counted as timeout or dropped', async () => {
      const { samples } = await scrape(gw.adminUrl);
      const c = (outcome: string) =>
        sampleValue(samples, 'infergate_shadow_requests_total', { model: 'm', variant: 'shadow', outcome }) ??
        0;
      const out = {
        timeout: c('timeout'),
        dropped: c('dropped'),
        compared: c('compared'),
        error: c('error'),
        samples,
      };
      return out.timeout + out.dropped === 8 ? out : undefined;
    });
    assert.ok(counts.timeout >= 2, `timeouts ${counts.timeout}`);
    assert.ok(counts.dropped >= 1, `dropped ${counts.dropped}`);
    assert.equal(counts.compared + counts.error, 0);
    // Never queued beyond maxInFlight: the fake saw only the copies let through.
    assert.equal(fake.received.filter((r) => r.headers['x-infergate-shadow'] === '1').length, counts.timeout);
    // The shadow backend's attempts and breaker are the primary's machinery: untouched.
    assert.equal(
      sampleValue(counts.samples, 'infergate_upstream_attempts_total', {
        backend: 'be-shadow',
        endpoint: fake.url,
        outcome: 'timeout',
      }),
      undefined,
    );
    assert.equal(
      sampleValue(counts.samples, 'infergate_requests_total', { model: 'm', variant: 'stable', code: '200' }),
      8,
    );
    assert.equal((await shadowView(gw.adminUrl))?.inFlight, 0);
    // The shadow section removed: its series go with it.
    const event = await gw.writePolicy(
      policyYaml({
        variants: {
          stable: { endpoints: [bed.endpoint('v1').url], version: '1' },
          shadow: { endpoints: [fake.url] },
        },
        split: { stable: 1 },
      }),
    );
    assert.equal(event.type, 'applied');
    const { text } = await scrape(gw.adminUrl);
    assert.doesNotMatch(text, /^infergate_shadow_requests_total\{/m);
    assert.deepEqual(((await getJson(gw.adminUrl, '/admin/shadow')).json as ShadowJson).models, []);
  });
});
