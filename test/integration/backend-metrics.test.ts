// The backend's Prometheus endpoint, scraped from a real server after real traffic.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../common/metrics.js';
import { SAMPLE_MODELS } from '../../models/build.js';
import {
  histogram,
  PROMTOOL,
  promtoolCheck,
  infer,
  inferPath,
  okInfer,
  randomFloats,
  removeTempDirs,
  request,
  type RunningBackend,
  type Sample,
  sampleRepository,
  sampleValue,
  scrape,
  startBackend,
  xDoc,
} from '../helpers/backend.js';

let server: RunningBackend;
let small: RunningBackend;
let base: string;

before(async () => {
  const repo = await sampleRepository();
  [server, small] = await Promise.all([
    startBackend({ modelRepository: repo }),
    startBackend({ modelRepository: repo, bodyLimit: 64 * 1024 }),
  ]);
  base = server.url;
});

after(async () => {
  await Promise.all([server?.close(), small?.close()]);
  await removeTempDirs();
});

const mlpDoc = (seed: number) => xDoc(randomFloats(seed, 64));
const requests = (samples: Sample[], labels: Record<string, string>) =>
  sampleValue(samples, 'infergate_backend_requests_total', labels) ?? 0;

describe('metrics', () => {
  test('requests_total counts 200 and 4xx answers by model, version and code', async () => {
    const v1 = { model: 'mlp', version: '1' };
    const before = (await scrape(base)).samples;
    okInfer(await infer(base, 'mlp', mlpDoc(1), '1'));
    okInfer(await infer(base, 'mlp', mlpDoc(2), '1'));
    okInfer(await infer(base, 'mlp', mlpDoc(3), '1'));
    const bad = await infer(
      base,
      'mlp',
      { inputs: [{ name: 'x', shape: [1, 63], datatype: 'FP32', data: [] }] },
      '1',
    );
    assert.equal(bad.status, 400);
    const unknownOut = await infer(base, 'mlp', { ...mlpDoc(4), outputs: [{ name: 'nope' }] }, '1');
    assert.equal(unknownOut.status, 400);
    okInfer(await infer(base, 'mlp', mlpDoc(5)));
    const after = (await scrape(base)).samples;
    assert.equal(requests(after, { ...v1, code: '200' }) - requests(before, { ...v1, code: '200' }), 3);
    assert.equal(requests(after, { ...v1, code: '400' }) - requests(before, { ...v1, code: '400' }), 2);
    const v2 = { model: 'mlp', version: '2', code: '200' };
    assert.equal(requests(after, v2) - requests(before, v2), 1, 'no version counts as the version served');
    const d = histogram(after, 'infergate_backend_request_duration_seconds', v1);
    assert.ok(d.count >= 5 && d.sum > 0, 'request duration observed');
  });

  test('unknown model names and versions never become label values', async () => {
    const evil = 'evil-model-8c1f2e';
    assert.equal((await infer(base, evil, mlpDoc(6))).status, 404);
    assert.equal((await infer(base, 'mlp', mlpDoc(7), '987654')).status, 404);
    assert.equal((await request(`${base}/v2/models/${evil}/ready`)).status, 404);
    const { text, samples } = await scrape(base);
    assert.ok(!text.includes(evil), 'the unknown model name is not in /metrics');
    assert.ok(!text.includes('987654'), 'the unknown version is not in /metrics');
    const known = new Set(['', ...SAMPLE_MODELS.map((m) => m.name)]);
    for (const s of samples) {
      if (s.labels.model !== undefined) assert.ok(known.has(s.labels.model), `model label ${s.labels.model}`);
    }
    // The 404s are still counted, under empty labels.
    assert.ok(requests(samples, { model: '', version: '', code: '404' }) >= 2);
  });

  test('queue wait, compute and batch size histograms per model version', async () => {
    const labels = { model: 'mlp-large', version: '1' };
    const before = (await scrape(base)).samples;
    const x = randomFloats(8, 5 * 512);
    okInfer(
      await infer(base, 'mlp-large', {
        inputs: [{ name: 'x', shape: [5, 512], datatype: 'FP32', data: Array.from(x) }],
      }),
    );
    const { samples } = await scrape(base);
    for (const name of [
      'infergate_backend_queue_wait_seconds',
      'infergate_backend_compute_seconds',
      'infergate_backend_batch_size',
      'infergate_backend_request_duration_seconds',
    ]) {
      const a = histogram(samples, name, labels);
      const b = histogram(before, name, labels);
      assert.equal(a.count - b.count, 1, `${name} observed once`);
      // Buckets are cumulative and +Inf equals the count.
      const buckets = samples
        .filter(
          (s) => s.name === `${name}_bucket` && s.labels.model === 'mlp-large' && s.labels.version === '1',
        )
        .map((s) => [s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value] as const)
        .sort((p, q) => p[0] - q[0]);
      assert.ok(buckets.length > 3, `${name} has buckets`);
      for (let i = 1; i < buckets.length; i++)
        assert.ok(buckets[i]![1] >= buckets[i - 1]![1], `${name} cumulative`);
      assert.equal(buckets.at(-1)![0], Infinity);
      assert.equal(buckets.at(-1)![1], a.count);
    }
    const bs = histogram(samples, 'infergate_backend_batch_size', labels);
    assert.equal(bs.sum - histogram(before, 'infergate_backend_batch_size', labels).sum, 5, 'five rows');
    assert.ok(histogram(samples, 'infergate_backend_compute_seconds', labels).sum > 0);
  });

  test('queue depth gauge and model info (provider, state) for every loaded version', async () => {
    const { samples } = await scrape(base);
    for (const m of SAMPLE_MODELS) {
      for (const version of m.versions) {
        const labels = { model: m.name, version };
        assert.equal(
          sampleValue(samples, 'infergate_backend_queue_depth', labels),
          0,
          `${m.name} v${version} depth`,
        );
        assert.equal(
          sampleValue(samples, 'infergate_backend_model_info', {
            ...labels,
            provider: 'cpu',
            state: 'READY',
          }),
          1,
          `${m.name} v${version} info`,
        );
      }
    }
  });

  test('every series is named infergate_backend_* and has HELP and TYPE', async () => {
    const res = await request(`${base}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = res.body.toString('utf8');
    const families = new Set<string>();
    for (const line of text.split('\n')) {
      const m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (m) families.add(m[1]!);
    }
    for (const name of families) {
      assert.match(name, /^infergate_backend_/);
      assert.ok(text.includes(`# HELP ${name} `), `HELP for ${name}`);
    }
    for (const family of [
      'infergate_backend_requests_total',
      'infergate_backend_request_duration_seconds',
      'infergate_backend_queue_wait_seconds',
      'infergate_backend_compute_seconds',
      'infergate_backend_batch_size',
      'infergate_backend_queue_depth',
      'infergate_backend_model_info',
    ]) {
      assert.ok(families.has(family), `${family} is exported`);
    }
    const { samples } = await scrape(base);
    for (const s of samples) {
      const family = [...families].find((f) => s.name === f || s.name.startsWith(`${f}_`));
      assert.ok(family, `${s.name} belongs to a declared family`);
    }
    assert.ok(
      !samples.some((s) => s.name.includes('process_')),
      'processMetrics: false exports no process metrics',
    );
  });

  test('with process metrics on, they are prefixed too', async () => {
    const repo = await sampleRepository();
    const withProcess = await startBackend({ modelRepository: repo, processMetrics: true, loadAll: false });
    try {
      const { samples } = await scrape(withProcess.url);
      assert.ok(samples.some((s) => s.name === 'infergate_backend_process_cpu_seconds_total'));
      assert.ok(samples.every((s) => s.name.startsWith('infergate_backend_')));
    } finally {
      await withProcess.close();
    }
  });

  test('a body over the limit on an inference route is counted', async () => {
    const res = await request(small.url + inferPath('mlp'), { method: 'POST', body: 'x'.repeat(128 * 1024) });
    assert.equal(res.status, 413);
    const versioned = await request(small.url + inferPath('mlp', '1'), {
      method: 'POST',
      body: 'x'.repeat(128 * 1024),
    });
    assert.equal(versioned.status, 413);
    const unknown = await request(small.url + inferPath('no-such-model'), {
      method: 'POST',
      body: 'x'.repeat(128 * 1024),
    });
    assert.equal(unknown.status, 413);
    const { samples, text } = await scrape(small.url);
    assert.equal(
      requests(samples, { model: 'mlp', version: '2', code: '413' }),
      1,
      'no version: the highest',
    );
    assert.equal(requests(samples, { model: 'mlp', version: '1', code: '413' }), 1);
    assert.equal(
      requests(samples, { model: '', version: '', code: '413' }),
      1,
      'unknown model: empty labels',
    );
    assert.ok(!text.includes('no-such-model'));
  });

  test('promtool check metrics passes', {
    skip: PROMTOOL === '' ? 'promtool is not installed (Debian package prometheus)' : false,
  }, async () => {
    const { text } = await scrape(base);
    const { code, output } = await promtoolCheck(text);
    assert.equal(code, 0, output);
  });
});

describe('FastCounter and FastHistogram render exactly as prom-client would', () => {
  const BUCKETS = [0.0005, 0.001, 0.01, 0.5, 1, 10];
  const labelSets = [
    { model: 'mlp', version: '1' },
    { model: 'we"ird\\name\n', version: '22' },
    { model: '', version: '' },
  ];
  const values = [0, 0.0005, 0.00051, 0.0009, 0.3, 0.5, 1, 9.99, 10, 10.01, 1e6, 1 / 3, 0.1 + 0.2];

  async function render(kind: 'prom-client' | 'fast'): Promise<{ text: string; json: unknown }> {
    const registry = new Registry();
    const counter =
      kind === 'fast'
        ? new FastCounter('t_requests_total', 'Requests.', ['model', 'version', 'code'], registry)
        : new Counter({
            name: 't_requests_total',
            help: 'Requests.',
            labelNames: ['model', 'version', 'code'],
            registers: [registry],
          });
    const hist =
      kind === 'fast'
        ? new FastHistogram('t_seconds', 'Seconds.', ['model', 'version'], BUCKETS, registry)
        : new Histogram({
            name: 't_seconds',
            help: 'Seconds.',
            labelNames: ['model', 'version'],
            buckets: BUCKETS,
            registers: [registry],
          });
    // A handle made but never used leaves no series behind.
    hist.labels({ model: 'unused', version: '9' });
    labelSets.forEach((labels, i) => {
      const h = hist.labels(labels);
      for (const v of values.slice(i)) h.observe(v);
      counter.labels({ ...labels, code: '200' }).inc();
      counter.labels({ ...labels, code: String(400 + i) }).inc(i + 1);
    });
    // Two handles for one label set share a series.
    hist.labels({ model: 'mlp', version: '1' }).observe(0.002);
    counter.labels({ model: 'mlp', version: '1', code: '200' }).inc();
    return { text: await registry.metrics(), json: await registry.getMetricsAsJSON() };
  }

  test('text exposition and JSON are the same', async () => {
    const want = await render('prom-client');
    const got = await render('fast');
    assert.equal(got.text, want.text);
    assert.deepEqual(got.json, want.json);
  });

  test('reset empties the series, as prom-client does', async () => {
    const registry = new Registry();
    const h = new FastHistogram('r_seconds', 'R.', ['model'], BUCKETS, registry);
    const c = new FastCounter('r_total', 'R.', ['model'], registry);
    h.labels({ model: 'a' }).observe(1);
    c.labels({ model: 'a' }).inc();
    registry.resetMetrics();
    assert.equal(
      await registry.metrics(),
      '# HELP r_seconds R.\n# TYPE r_seconds histogram\n\n# HELP r_total R.\n# TYPE r_total counter\n',
    );
    h.labels({ model: 'a' }).observe(1);
    assert.match(await registry.metrics(), /r_seconds_count\{model="a"\} 1/);
  });

  test('labels outside the label names are refused', () => {
    const registry = new Registry();
    const h = new FastHistogram('x_seconds', 'X.', ['model'], BUCKETS, registry);
    assert.throws(() => h.labels({ model: 'a', other: 'b' } as { model: string }), /label 'other'/);
  });
});
