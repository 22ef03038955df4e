// The standard OTEL_* variables to a tracing config: none set is no tracing; the endpoint, the
// samplers, headers and resource attributes; bad values refused with the variable named.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../cli/args.js';
import { tracingFromEnv } from '../../cli/otel-env.js';

test('no endpoint, OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none: no tracing', () => {
  assert.equal(tracingFromEnv({}, 'infergate-gateway'), undefined);
  assert.equal(tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }, 'x'), undefined);
  assert.equal(
    tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }, 'x'),
    undefined,
  );
  assert.equal(
    tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }, 'x'),
    undefined,
  );
});

test('the base endpoint gets /v1/traces; the traces endpoint is taken as is; defaults', () => {
  const c = tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }, 'infergate-backend');
  assert.equal(c?.endpoint, 'http://collector:4318/v1/traces');
  assert.equal(c?.serviceName, 'infergate-backend');
  assert.equal(c?.sampler, 'parentbased_always_on');
  assert.equal(c?.ratio, 1);
  assert.equal(c?.exportDelayMs, 5000);
  const own = tracingFromEnv(
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://other:9999/traces',
      OTEL_SERVICE_NAME: 'edge-gw',
    },
    'infergate-gateway',
  );
  assert.equal(own?.endpoint, 'http://other:9999/traces');
  assert.equal(own?.serviceName, 'edge-gw');
});

test('samplers, ratio, headers, resource attributes and the batch processor settings', () => {
  const c = tracingFromEnv(
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.01',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=a%20b, authorization=Basic%20xyz',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod',
      OTEL_BSP_SCHEDULE_DELAY: '250',
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
    },
    'g',
  );
  assert.equal(c?.sampler, 'parentbased_traceidratio');
  assert.equal(c?.ratio, 0.01);
  assert.deepEqual(c?.headers, { 'x-tenant': 'a b', authorization: 'Basic xyz' });
  assert.deepEqual(c?.resource, { 'deployment.environment': 'prod' });
  assert.equal(c?.exportDelayMs, 250);
  assert.equal(c?.maxQueueSize, 100);
});

test('bad values are refused, naming the variable', () => {
  const base = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
  const cases: [Record<string, string>, RegExp][] = [
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, /OTEL_TRACES_SAMPLER must be one of/],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }, /OTEL_TRACES_SAMPLER_ARG/],
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, /OTEL_TRACES_EXPORTER/],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /OTEL_EXPORTER_OTLP_PROTOCOL/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, /OTEL_EXPORTER_OTLP_HEADERS/],
    [{ OTEL_BSP_SCHEDULE_DELAY: '-1' }, /OTEL_BSP_SCHEDULE_DELAY/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, /is not a URL/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => tracingFromEnv({ ...base, ...env }, 'g'),
      (e: unknown) => e instanceof UsageError && message.test((e as Error).message),
    );
  }
});
