// The Grafana dashboard and the Prometheus config of deploy/: the dashboard is well formed, every
// query parses as PromQL (promtool check rules), and every metric its panels query exists in the
// expositions of a running gateway (tracing and the audit log on) and backend; both expositions
// pass `promtool check metrics`, with latency buckets from 0.5 ms to 30 s; prometheus.yml passes
// `promtool check config`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RotatingFileSink } from '../../gateway/audit/sink.js';
import {
  PROMTOOL,
  promtoolCheck,
  REPO_ROOT,
  request,
  sampleValue,
  scrape,
  tempDir,
} from '../helpers/backend.js';
import { gatewayTestbed, mlpBody, policyYaml, type RunningGateway } from '../helpers/gateway.js';
import { type OtlpReceiver, startOtlpReceiver } from '../helpers/otlp.js';

const DASHBOARD = path.join(REPO_ROOT, 'deploy/grafana/infergate.json');
const PROMETHEUS = path.join(REPO_ROOT, 'deploy/prometheus/prometheus.yml');
const bed = gatewayTestbed({ a: [{ name: 'mlp', version: '1' }] });
const real = bed.endpoint('a');
const noPromtool = PROMTOOL === '' ? 'promtool is not installed (apt-get install prometheus)' : false;

interface Target {
  expr: string;
  refId: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: { name: string; type: string }[] };
  panels: Panel[];
}

let dashboard: Dashboard;
let exprs: string[];
let otlp: OtlpReceiver | undefined;
let g: RunningGateway;

before(async () => {
  dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
  exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
});
after(() => otlp?.close());

/** The running gateway, made on first use (after the testbed's replicas have started). */
let started: Promise<void> | undefined;
const running = () => {
  started ??= startRunning();
  return started;
};
async function startRunning(): Promise<void> {
  otlp = await startOtlpReceiver();
  const dir = await tempDir('infergate-dash-');
  g = await bed.gateway({
    policy: policyYaml({ variants: { stable: { endpoints: [real.url], version: '1' } } }),
    extra: {
      tracing: otlp.config('infergate-gateway'),
      audit: { sink: new RotatingFileSink(path.join(dir, 'audit.log'), 1_000_000) },
    },
  });
  // Traffic, so that every labelled series of a request exists: served, unknown model, retries.
  for (const model of ['m', 'm', 'nope']) {
    await request(`${g.url}/v2/models/${model}/infer`, {
      method: 'POST',
      body: mlpBody(4),
      headers: { 'content-type': 'application/json' },
    });
  }
  await g.gateway.audit?.flush();
}

/** Metric names a query reads (a histogram's _bucket/_sum/_count as its own name). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\binfergate_[a-z0-9_]+/g)].map((m) => m[0]);
}

/**
 * Every metric an exposition declares (its `# TYPE` line: a labelled counter has no series before
 * its first event) or has samples of, as queries name them (histograms with their suffixes).
 */
function exposed(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const declared = /^# TYPE (\S+) (\S+)/.exec(line);
    if (declared !== null) {
      const [, name, type] = declared as unknown as [string, string, string];
      names.add(name);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    names.add(line.slice(0, line.search(/[{ ]/)));
  }
  return names;
}

describe('deploy/grafana/infergate.json', () => {
  test('is a Grafana dashboard: uid, title, unique panel ids, a layout within 24 columns, a Prometheus datasource variable', () => {
    assert.equal(dashboard.uid, 'infergate');
    assert.equal(typeof dashboard.title, 'string');
    assert.ok(dashboard.schemaVersion >= 30);
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
    for (const p of dashboard.panels) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: within 24 columns`);
      if (p.type === 'row') continue;
      assert.equal(
        p.datasource?.uid,
        ['$', '{datasource}'].join(''),
        `${p.title}: reads the chosen datasource`,
      );
      assert.ok((p.targets ?? []).length > 0, `${p.title}: has a query`);
      const refs = (p.targets ?? []).map((t) => t.refId);
      assert.equal(new Set(refs).size, refs.length, `${p.title}: unique refIds`);
    }
    // What the issue asks to see.
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join('\n');
    for (const want of [
      'traffic split',
      'error rate',
      'p99',
      'breaker',
      'batch size',
      'queue depth',
      'compute',
    ]) {
      assert.ok(titles.includes(want), `a panel for ${want}`);
    }
  });

  test('every query parses as PromQL', { skip: noPromtool }, async () => {
    const dir = await tempDir('infergate-rules-');
    const file = path.join(dir, 'rules.yml');
    const rules = exprs.map((e, i) => {
      const expr = e.replaceAll('$__rate_interval', '1m').replaceAll('$model', '.*');
      return `      - record: infergate:dashboard_query_${i}\n        expr: ${JSON.stringify(expr)}`;
    });
    await writeFile(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
    const r = spawnSync(PROMTOOL, ['check', 'rules', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test('every metric a panel queries is in the exposition of a running gateway or backend', async () => {
    await running();
    const names = new Set([
      ...exposed((await scrape(g.adminUrl)).text),
      ...exposed((await scrape(real.url)).text),
    ]);
    const missing = [...new Set(exprs.flatMap(metricNames))].filter((n) => !names.has(n));
    assert.deepEqual(missing, [], `queried but not exposed: ${missing.join(', ')}`);
  });
});

describe('expositions', () => {
  test('both tiers pass promtool check metrics', { skip: noPromtool }, async () => {
    await running();
    for (const url of [g.adminUrl, real.url]) {
      const { text } = await scrape(url);
      const r = await promtoolCheck(text);
      assert.equal(r.code, 0, `${url}: ${r.output}`);
    }
  });

  test('latency histograms per variant and per model version have buckets from 0.5 ms to 30 s', async () => {
    await running();
    const gw = await scrape(g.adminUrl);
    const be = await scrape(real.url);
    for (const le of ['0.0005', '30', '+Inf']) {
      const variant = { model: 'm', variant: 'stable', le };
      const version = { model: 'mlp', version: '1', le };
      assert.ok(
        sampleValue(gw.samples, 'infergate_request_duration_seconds_bucket', variant) !== undefined,
        le,
      );
      assert.ok(
        sampleValue(be.samples, 'infergate_backend_request_duration_seconds_bucket', version) !== undefined,
        le,
      );
    }
    const buckets = gw.samples.filter(
      (x) => x.name === 'infergate_request_duration_seconds_bucket' && x.labels.variant === 'stable',
    );
    assert.equal(buckets[0]?.labels.le, '0.0005', 'the first bucket is 0.5 ms');
    assert.equal(buckets[buckets.length - 2]?.labels.le, '30', 'the last finite bucket is 30 s');
    const gwText = gw.text;
    assert.match(gwText, /infergate_requests_total\{model="m",variant="stable",code="200"\} 2/);
  });

  test('deploy/prometheus/prometheus.yml passes promtool check config', { skip: noPromtool }, () => {
    const r = spawnSync(PROMTOOL, ['check', 'config', PROMETHEUS], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});
