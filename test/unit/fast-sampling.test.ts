// The server span's sampling decided before the SDK (common/telemetry/fast-sampling.ts): the
// same decisions as the SDK's own samplers, the remote parent's trace kept, recorded roots carrying
// the trace id they were decided on, and malformed parents left to the SDK.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  InMemorySpanExporter,
  SamplingDecision,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { type SamplerName, TRACING_DEFAULTS } from '../../common/telemetry/config.js';
import { PooledIds, unsampledParent } from '../../common/telemetry/fast-sampling.js';
import { SpanKind, startTracing, type Tracing } from '../../common/telemetry/tracing.js';

function tracingWith(
  sampler: SamplerName,
  ratio: number,
): { tracing: Tracing; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  const tracing = startTracing(
    {
      ...TRACING_DEFAULTS,
      serviceName: 'test',
      endpoint: 'http://127.0.0.1:9/v1/traces',
      headers: {},
      resource: {},
      sampler,
      ratio,
    },
    exporter,
  ) as Tracing;
  return { tracing, exporter };
}

const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

test('roots at a ratio: about that share recorded, each decided as the SDK decides on its trace id', async () => {
  const { tracing, exporter } = tracingWith('parentbased_traceidratio', 0.25);
  const reference = new TraceIdRatioBasedSampler(0.25);
  const n = 4000;
  let recorded = 0;
  const traceIds = new Set<string>();
  for (let i = 0; i < n; i++) {
    const span = tracing.startRequest('r', SpanKind.SERVER, {});
    const { traceId, spanId } = span.spanContext();
    assert.match(traceId, /^[0-9a-f]{32}$/);
    assert.match(spanId, /^[0-9a-f]{16}$/);
    traceIds.add(traceId);
    const expected = reference.shouldSample(undefined as never, traceId).decision;
    assert.equal(span.isRecording(), expected === SamplingDecision.RECORD_AND_SAMPLED, traceId);
    if (span.isRecording()) recorded += 1;
    span.end();
  }
  assert.equal(traceIds.size, n, 'every root has its own trace id');
  // Binomial(4000, 0.25): mean 1000, sd 27.4; 5 sd either side.
  assert.ok(recorded > 863 && recorded < 1137, `recorded ${recorded} of ${n}`);
  await tracing.flush();
  const exported = exporter.getFinishedSpans();
  assert.equal(exported.length, recorded, 'only recorded spans are exported');
  for (const s of exported) assert.equal(s.parentSpanContext, undefined, 'a root has no parent');
  await tracing.shutdown();
});

test('an unsampled remote parent: a span that is not recorded, in the parent trace, with its own id', async () => {
  const { tracing, exporter } = tracingWith('parentbased_always_on', 1);
  const span = tracing.startRequest('r', SpanKind.SERVER, {
    traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-00`,
  });
  assert.equal(span.isRecording(), false);
  assert.equal(span.spanContext().traceId, PARENT_TRACE);
  assert.notEqual(span.spanContext().spanId, PARENT_SPAN);
  assert.equal(span.spanContext().traceFlags & 1, 0);
  span.end();
  await tracing.flush();
  assert.equal(exporter.getFinishedSpans().length, 0);
  await tracing.shutdown();
});

test('a sampled remote parent is followed by parent-based samplers, even at ratio 0', async () => {
  const { tracing, exporter } = tracingWith('parentbased_traceidratio', 0);
  const span = tracing.startRequest('r', SpanKind.SERVER, {
    traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`,
  });
  assert.equal(span.isRecording(), true);
  span.end();
  await tracing.flush();
  const [s] = exporter.getFinishedSpans();
  assert.equal(s?.spanContext().traceId, PARENT_TRACE);
  assert.equal(s?.parentSpanContext?.spanId, PARENT_SPAN);
  await tracing.shutdown();
});

test('traceidratio without a parent-based sampler decides on the trace id, parent or not', async () => {
  const { tracing } = tracingWith('traceidratio', 0.5);
  const reference = new TraceIdRatioBasedSampler(0.5);
  for (const id of [PARENT_TRACE, 'ffffffffffffffffffffffffffffff00', '0000000000000000000000000000000a']) {
    const span = tracing.startRequest('r', SpanKind.SERVER, { traceparent: `00-${id}-${PARENT_SPAN}-00` });
    const expected =
      reference.shouldSample(undefined as never, id).decision === SamplingDecision.RECORD_AND_SAMPLED;
    assert.equal(span.isRecording(), expected, id);
    assert.equal(span.spanContext().traceId, id);
    span.end();
  }
  await tracing.shutdown();
});

test('always_on records every root; always_off none', async () => {
  const on = tracingWith('always_on', 1);
  const off = tracingWith('parentbased_always_off', 1);
  for (let i = 0; i < 50; i++) {
    assert.equal(on.tracing.startRequest('r', SpanKind.SERVER, {}).isRecording(), true);
    assert.equal(off.tracing.startRequest('r', SpanKind.SERVER, {}).isRecording(), false);
  }
  await on.tracing.shutdown();
  await off.tracing.shutdown();
});

test('a malformed traceparent is not a parent: the span is a new root', async () => {
  const { tracing } = tracingWith('parentbased_always_off', 1);
  for (const tp of [
    `00-${PARENT_TRACE}-${PARENT_SPAN}`,
    `00-${'0'.repeat(32)}-${PARENT_SPAN}-00`,
    `00-${PARENT_TRACE}-${'0'.repeat(16)}-00`,
    `00-${PARENT_TRACE.toUpperCase()}-${PARENT_SPAN}-00`,
    `zz-${PARENT_TRACE}-${PARENT_SPAN}-00`,
  ]) {
    assert.equal(unsampledParent(tp), undefined, tp);
    const span = tracing.startRequest('r', SpanKind.SERVER, { traceparent: tp });
    assert.notEqual(span.spanContext().traceId, PARENT_TRACE, tp);
  }
  assert.equal(
    unsampledParent(`00-${PARENT_TRACE}-${PARENT_SPAN}-02`),
    PARENT_TRACE,
    'flags other than sampled',
  );
  assert.equal(unsampledParent(`00-${PARENT_TRACE}-${PARENT_SPAN}-03`), undefined);
  await tracing.shutdown();
});

test('pooled ids: the chosen trace id is handed out once, then fresh ones, never all zeros', () => {
  const ids = new PooledIds();
  ids.next = PARENT_TRACE;
  assert.equal(ids.generateTraceId(), PARENT_TRACE);
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const t = ids.generateTraceId();
    const s = ids.generateSpanId();
    assert.notEqual(t, PARENT_TRACE);
    assert.notEqual(t, '0'.repeat(32));
    assert.notEqual(s, '0'.repeat(16));
    seen.add(t);
  }
  assert.equal(seen.size, 2000);
});
