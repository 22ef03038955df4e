// Tracing across both tiers, exported over OTLP/HTTP to a receiver the test starts: one trace per
// request from the client's traceparent through the gateway's stages and each upstream attempt
// to the replica's server span, queue wait and batch run; two attempt spans for a retried
// request; a batch's span linked to every request it served; no secret in any exported span.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mulberry32 } from '../../models/reference.js';
import {
  derivedRepository,
  request,
  type RunningBackend,
  removeTempDirs,
  sampleRepository,
  startBackend,
} from '../helpers/backend.js';
import {
  type FakeReplica,
  mlpBody,
  policyYaml,
  type RunningGateway,
  startFakeReplica,
  startGateway,
} from '../helpers/gateway.js';
import { KIND, type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp.js';

let otlp: OtlpReceiver;
let backend: RunningBackend;
const closers: (() => Promise<unknown>)[] = [];

before(async () => {
  otlp = await startOtlpReceiver();
  const sample = await sampleRepository();
  // mlp batches up to 8 rows, the oldest request waiting up to 300 ms for company.
  const repo = await derivedRepository(sample, {
    mlp: { from: 'mlp', versions: ['1'], config: { max_batch_size: 8, max_queue_delay_ms: 300 } },
  });
  backend = await startBackend({ modelRepository: repo, tracing: otlp.config('infergate-backend') });
});

after(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  await backend.close();
  await otlp.close();
  await removeTempDirs();
});

async function gateway(endpoints: string[]): Promise<RunningGateway> {
  const g = await startGateway({
    policy: policyYaml({
      variants: { stable: { endpoints, version: '1' } },
      retries: { attempts: 2, budgetPercent: 100 },
    }),
    random: mulberry32(3),
    extra: { tracing: otlp.config('infergate-gateway') },
  });
  closers.push(() => g.close());
  return g;
}

async function fake(mode: Partial<FakeReplica['mode']>): Promise<FakeReplica> {
  const f = await startFakeReplica(mode);
  closers.push(() => f.close());
  return f;
}

const send = (g: RunningGateway, headers: Record<string, string> = {}, seed = 1) =>
  request(`${g.url}/v2/models/m/infer`, {
    method: 'POST',
    body: mlpBody(seed),
    headers: { 'content-type': 'application/json', ...headers },
  });

const ofTrace = (spans: ReceivedSpan[], traceId: string) => spans.filter((s) => s.traceId === traceId);
const one = (spans: ReceivedSpan[], pred: (s: ReceivedSpan) => boolean, what: string): ReceivedSpan => {
  const found = spans.filter(pred);
  assert.equal(found.length, 1, `one ${what}, got ${found.length}: ${found.map((s) => s.name).join(', ')}`);
  return found[0] as ReceivedSpan;
};

describe('one trace across the gateway and the backend', () => {
  test("a request with the client's traceparent: server, admission, route, attempt, backend server, queue wait and batch spans", async () => {
    const g = await gateway([backend.url]);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const clientSpan = '00f067aa0ba902b7';
    const res = await send(g, { traceparent: `00-${traceId}-${clientSpan}-01` });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-trace-id'), traceId, 'the trace id comes back in x-trace-id');
    const spans = await otlp.waitFor('the whole trace', (all) => {
      const t = ofTrace(all, traceId);
      return (
        t.some((s) => s.name === 'batch run') &&
        t.some((s) => s.name.startsWith('POST /v2') && s.service === 'infergate-gateway')
      );
    });
    const t = ofTrace(spans, traceId);
    const server = one(
      t,
      (s) => s.service === 'infergate-gateway' && s.kind === KIND.SERVER,
      'gateway server span',
    );
    assert.equal(server.parentSpanId, clientSpan);
    assert.equal(server.name, 'POST /v2/models/{model}/infer');
    assert.equal(server.attributes['http.request.method'], 'POST');
    assert.equal(server.attributes['http.route'], '/v2/models/{model}/infer');
    assert.equal(server.attributes['url.path'], '/v2/models/m/infer');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['infergate.variant'], 'stable');
    assert.equal(typeof server.attributes['infergate.request_id'], 'string');

    const admission = one(t, (s) => s.name === 'admission', 'admission span');
    assert.equal(admission.parentSpanId, server.spanId);
    assert.equal(admission.attributes['infergate.admission.result'], 'admitted');
    const route = one(t, (s) => s.name === 'route', 'route span');
    assert.equal(route.parentSpanId, server.spanId);
    assert.deepEqual(
      [
        route.attributes['infergate.model'],
        route.attributes['infergate.variant'],
        route.attributes['infergate.backend.model'],
        route.attributes['infergate.backend.version'],
      ],
      ['m', 'stable', 'mlp', '1'],
    );
    const attempt = one(t, (s) => s.kind === KIND.CLIENT, 'attempt span');
    assert.equal(attempt.parentSpanId, server.spanId);
    assert.equal(attempt.attributes['infergate.endpoint'], backend.url);
    assert.equal(attempt.attributes['http.response.status_code'], 200);
    assert.equal(attempt.attributes['infergate.attempt'], 1);

    const bserver = one(
      t,
      (s) => s.service === 'infergate-backend' && s.kind === KIND.SERVER,
      'backend server span',
    );
    assert.equal(bserver.parentSpanId, attempt.spanId, "the backend continues the attempt's traceparent");
    assert.equal(bserver.attributes['http.route'], '/v2/models/{model}/versions/{version}/infer');
    assert.equal(bserver.attributes['infergate.model.version'], '1');
    assert.equal(bserver.attributes['http.response.status_code'], 200);
    const wait = one(t, (s) => s.name === 'queue wait', 'queue wait span');
    assert.equal(wait.parentSpanId, bserver.spanId);
    const batch = one(t, (s) => s.name === 'batch run', 'batch run span');
    assert.equal(batch.parentSpanId, bserver.spanId);
    assert.equal(batch.attributes['infergate.batch.size'], 1);
    assert.deepEqual(batch.links, [{ traceId, spanId: bserver.spanId }]);
    assert.ok(
      server.startNs <= attempt.startNs && attempt.endNs <= server.endNs,
      'the attempt lies within the request',
    );
  });

  test('a request without traceparent starts a trace; its id is in x-trace-id', async () => {
    const g = await gateway([backend.url]);
    const res = await send(g);
    assert.equal(res.status, 200);
    const traceId = String(res.headers.get('x-trace-id'));
    assert.match(traceId, /^[0-9a-f]{32}$/);
    const spans = await otlp.waitFor('the trace', (all) =>
      ofTrace(all, traceId).some((s) => s.service === 'infergate-gateway' && s.kind === KIND.SERVER),
    );
    const server = one(
      ofTrace(spans, traceId),
      (s) => s.service === 'infergate-gateway' && s.kind === KIND.SERVER,
      'server span',
    );
    assert.equal(server.parentSpanId, '');
  });

  test('a retried request shows two attempt spans, each sending its own traceparent', async () => {
    const busy = await fake({ status: 503, retryAfter: '1' });
    const g = await gateway([busy.url, backend.url]);
    let retried: string | undefined;
    for (let i = 0; i < 40 && retried === undefined; i++) {
      const before = busy.received.length;
      const res = await send(g, {}, i);
      assert.equal(res.status, 200);
      if (busy.received.length > before) retried = String(res.headers.get('x-trace-id'));
    }
    assert.ok(retried !== undefined, 'one request met the busy replica first');
    const traceId = retried;
    const spans = await otlp.waitFor(
      'both attempts',
      (all) =>
        ofTrace(all, traceId).filter((s) => s.kind === KIND.CLIENT).length === 2 &&
        ofTrace(all, traceId).some((s) => s.name === 'batch run'),
    );
    const attempts = ofTrace(spans, traceId)
      .filter((s) => s.kind === KIND.CLIENT)
      .sort((a, b) => Number(a.attributes['infergate.attempt']) - Number(b.attributes['infergate.attempt']));
    const [first, second] = attempts as [ReceivedSpan, ReceivedSpan];
    assert.equal(first.attributes['infergate.endpoint'], busy.url);
    assert.equal(first.attributes['http.response.status_code'], 503);
    assert.equal(first.attributes['infergate.attempt.outcome'], 'overloaded');
    assert.equal(second.attributes['infergate.endpoint'], backend.url);
    assert.equal(second.attributes['infergate.retry.reason'], 'overloaded');
    assert.equal(second.attributes['http.request.resend_count'], 1);
    const sent = busy.received[busy.received.length - 1]?.headers.traceparent;
    assert.equal(
      sent,
      `00-${traceId}-${first.spanId}-01`,
      "the busy replica got the first attempt's traceparent",
    );
    const bserver = one(
      ofTrace(spans, traceId),
      (s) => s.service === 'infergate-backend' && s.kind === KIND.SERVER,
      'backend span',
    );
    assert.equal(bserver.parentSpanId, second.spanId);
  });

  test('a batch of several requests: one batch run span linked to each request it served', async () => {
    const g = await gateway([backend.url]);
    const results = await Promise.all([0, 1, 2, 3].map((i) => send(g, {}, 10 + i)));
    const ids = results.map((r) => {
      assert.equal(r.status, 200);
      return String(r.headers.get('x-trace-id'));
    });
    const spans = await otlp.waitFor('the four backend spans and a batch of four', (all) => {
      const servers = all.filter(
        (s) => s.service === 'infergate-backend' && s.kind === KIND.SERVER && ids.includes(s.traceId),
      );
      return (
        servers.length === 4 &&
        all.some((s) => s.name === 'batch run' && s.links.length === 4 && ids.includes(s.traceId))
      );
    });
    const servers = spans.filter(
      (s) => s.service === 'infergate-backend' && s.kind === KIND.SERVER && ids.includes(s.traceId),
    );
    const batch = one(
      spans,
      (s) => s.name === 'batch run' && ids.includes(s.traceId),
      'batch run of these requests',
    );
    assert.equal(batch.attributes['infergate.batch.size'], 4);
    assert.equal(batch.attributes['infergate.batch.requests'], 4);
    assert.deepEqual(
      new Set(batch.links.map((l) => `${l.traceId}/${l.spanId}`)),
      new Set(servers.map((s) => `${s.traceId}/${s.spanId}`)),
    );
    assert.equal(spans.filter((s) => s.name === 'queue wait' && ids.includes(s.traceId)).length, 4);
  });

  test('an unsampled request (traceparent flags 00) makes no spans and passes the decision on', async () => {
    const g = await gateway([backend.url]);
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const res = await send(g, { traceparent: `00-${traceId}-b7ad6b7169203331-00` });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-trace-id'), traceId);
    // A sampled request after it: once its spans are in, the unsampled one would be too.
    const next = await send(g);
    const nextId = String(next.headers.get('x-trace-id'));
    await otlp.waitFor(
      'the next trace',
      (all) =>
        ofTrace(all, nextId).some((s) => s.service === 'infergate-backend' && s.kind === KIND.SERVER) &&
        ofTrace(all, nextId).some((s) => s.kind === KIND.SERVER && s.service === 'infergate-gateway'),
    );
    assert.equal(ofTrace(otlp.spans, traceId).length, 0);
  });

  test('no credential reaches an exported span', async () => {
    const g = await gateway([backend.url]);
    const res = await send(g, { authorization: 'Bearer tok-SECRET-0123', 'x-api-key': 'key-SECRET-4567' });
    const traceId = String(res.headers.get('x-trace-id'));
    await otlp.waitFor('the trace', (all) =>
      ofTrace(all, traceId).some((s) => s.service === 'infergate-backend'),
    );
    for (const body of otlp.bodies) {
      assert.ok(!body.includes('SECRET'), 'a credential was exported');
    }
  });
});
