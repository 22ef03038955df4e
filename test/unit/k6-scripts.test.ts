// The k6 scripts shipped for users run under k6, which this repository's CI does not have. Here
// each one is loaded as an ES module with k6's modules stubbed (a resolve hook maps `k6`,
// `k6/http`, `k6/metrics`, `k6/data` and the jslib summary to stubs that call into this test), its
// exported `options` checked, and its default function run once against a fake answer; the
// binary body is decoded by the repository's own OIP decoder, and the split check's pure
// functions are held to numbers that must pass and must fail.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { decodeInferRequest } from '../../common/oip/decode-request.js';
import type { DecodedRequest } from '../../common/oip/messages.js';

const dir = new URL('../../load/k6/', import.meta.url);
const scripts = readdirSync(dir).filter((f) => f.endsWith('.js'));

interface Post {
  url: string;
  body: string | ArrayBuffer;
  params: { headers: Record<string, string> };
}
interface K6Stub {
  posts: Post[];
  checks: Record<string, boolean>;
  metrics: { name: string; kind: string; value: unknown; tags: unknown }[];
  answer: { status: number; headers: Record<string, string>; body: string };
}
const k6: K6Stub = {
  posts: [],
  checks: {},
  metrics: [],
  answer: { status: 200, headers: {}, body: '' },
};
const g = globalThis as Record<string, unknown>;
g.__k6 = k6;
g.__ENV = {};
g.open = (path: string) => readFileSync(path, 'utf8');

const stubs: Record<string, string> = {
  k6: `export function check(v, sets) { const out = globalThis.__k6.checks; let ok = true;
    for (const [k, f] of Object.entries(sets)) { out[k] = f(v); ok = ok && out[k]; } return ok; }
    export function sleep() {} export function fail(m) { throw new Error(m); }
    export function group(_n, f) { return f(); }`,
  'k6/http': `const post = (url, body, params) => { globalThis.__k6.posts.push({ url, body, params });
      const a = globalThis.__k6.answer; return { ...a, json: (p) => { let v = JSON.parse(a.body);
      for (const k of (p ? p.split('.') : [])) v = v[k]; return v; } }; };
    export default { post };`,
  'k6/metrics': `class M { constructor(name) { this.name = name; }
      add(value, tags) { globalThis.__k6.metrics.push({ name: this.name, kind: this.constructor.name, value, tags }); } }
    export class Counter extends M {} export class Rate extends M {} export class Trend extends M {}
    export class Gauge extends M {}`,
  'k6/data': `export class SharedArray { constructor(_n, f) { return f(); } }`,
  'https://jslib.k6.io/k6-summary/0.0.2/index.js': `export function textSummary() { return '(summary)'; }`,
};
const hooks = `const stubs = ${JSON.stringify(stubs)};
export async function resolve(specifier, context, next) {
  if (specifier in stubs) return { url: 'data:text/javascript,' + encodeURIComponent(stubs[specifier]), shortCircuit: true };
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);

let loads = 0;
type Script = {
  options: {
    scenarios: Record<string, Record<string, unknown> & { executor: string; exec?: string }>;
    thresholds: Record<string, (string | { threshold: string })[]>;
  };
  default?: () => void;
  handleSummary?: (data: unknown) => { stdout: string };
  [name: string]: unknown;
};
/** Imports `file` afresh (a new URL each time, so its init code runs again) with `env` as __ENV. */
async function load(file: string, env: Record<string, string> = {}): Promise<Script> {
  g.__ENV = { WEIGHTS: 'stable:90,canary:10', ...env };
  return (await import(`${new URL(file, dir).href}?load=${++loads}`)) as Script;
}

const mlpAnswer = JSON.stringify({
  model_name: 'mlp',
  outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 10], data: new Array(10).fill(0) }],
});
function reset(variant = 'stable'): void {
  k6.posts = [];
  k6.checks = {};
  k6.metrics = [];
  k6.answer = { status: 200, headers: { 'X-Infergate-Variant': variant }, body: mlpAnswer };
}

interface Verdict {
  n: number;
  ok: boolean;
  rows: { variant: string; ok: boolean }[];
}
interface SplitLib {
  parseWeights(text: string): Record<string, number>;
  splitVerdict(counts: Record<string, number>, weights: Record<string, number>, z?: number): Verdict;
  splitReport(v: Verdict): string;
}

const EXECUTORS = new Set([
  'per-vu-iterations',
  'shared-iterations',
  'constant-vus',
  'ramping-vus',
  'constant-arrival-rate',
  'ramping-arrival-rate',
  'externally-controlled',
]);
const thresholdText = (t: string | { threshold: string }) => (typeof t === 'string' ? t : t.threshold);

test('there are the scenarios the issue names', () => {
  for (const f of ['smoke.js', 'steady.js', 'spike.js', 'soak.js', 'capacity.js', 'split.js']) {
    assert.ok(scripts.includes(f), f);
  }
});

for (const file of scripts) {
  test(`load/k6/${file}: options, thresholds and one iteration against a fake answer`, async () => {
    const s = await load(file);
    const scenarios = Object.entries(s.options.scenarios);
    assert.ok(scenarios.length > 0, 'at least one scenario');
    for (const [name, sc] of scenarios) {
      assert.ok(EXECUTORS.has(sc.executor), `${name}: executor ${sc.executor}`);
      const exec = sc.exec ?? 'default';
      assert.equal(typeof s[exec], 'function', `${name}: exec ${exec} is an exported function`);
      if (sc.executor.endsWith('arrival-rate')) {
        assert.ok(Number(sc.preAllocatedVUs) > 0 && Number(sc.maxVUs) >= Number(sc.preAllocatedVUs));
      }
    }
    const th = s.options.thresholds;
    assert.ok(
      th.http_req_failed?.some((t) => /^rate[<=]/.test(thresholdText(t))),
      'error-rate threshold',
    );
    const duration = (th.http_req_duration ?? []).map(thresholdText);
    assert.ok(
      duration.some((t) => t.startsWith('p(95)<')),
      'p95 threshold',
    );
    assert.ok(
      duration.some((t) => t.startsWith('p(99)<')),
      'p99 threshold',
    );
    reset();
    s.default!();
    assert.equal(k6.posts.length, 1);
    assert.equal(k6.posts[0]!.url, 'http://127.0.0.1:8080/v2/models/mlp/infer');
    assert.deepEqual(
      Object.values(k6.checks),
      Object.values(k6.checks).map(() => true),
      JSON.stringify(k6.checks),
    );
    reset();
    k6.answer.status = 503;
    k6.answer.body = '{"error":"overloaded"}';
    s.default!();
    assert.ok(Object.values(k6.checks).includes(false), 'a 503 fails a check');
  });
}

test('steady, soak and split are open-model (constant arrival rate); spike and capacity ramp', async () => {
  for (const f of ['steady.js', 'soak.js', 'split.js']) {
    const sc = Object.values((await load(f)).options.scenarios)[0]!;
    assert.equal(sc.executor, 'constant-arrival-rate', f);
  }
  const spike = Object.values((await load('spike.js', { BASE: '20' })).options.scenarios)[0]!;
  assert.equal(spike.executor, 'ramping-arrival-rate');
  assert.ok(
    (spike.stages as { target: number }[]).some((s) => s.target === 200),
    'PEAK is 10 x BASE',
  );
  const cap = await load('capacity.js', { START: '50', STEP: '25', STEPS: '4', P99_MS: '80' });
  const stages = (Object.values(cap.options.scenarios)[0]!.stages as { target: number }[]).map(
    (s) => s.target,
  );
  assert.deepEqual(stages, [50, 50, 75, 75, 100, 100, 125, 125]);
  const p99 = cap.options.thresholds.http_req_duration!.find((t) => typeof t !== 'string') as {
    threshold: string;
    abortOnFail: boolean;
  };
  assert.deepEqual([p99.threshold, p99.abortOnFail], ['p(99)<80', true]);
});

test('URL, MODEL, API_KEY and the thresholds come from the environment', async () => {
  const s = await load('steady.js', {
    URL: 'http://gw.example:9000/',
    MODEL: 'simple',
    API_KEY: 'igk_test',
    ERROR_RATE: '0.05',
    P95_MS: '40',
    P99_MS: '90',
    RATE: '300',
  });
  assert.equal(s.options.scenarios.steady!.rate, 300);
  assert.deepEqual(s.options.thresholds.http_req_failed, ['rate<0.05']);
  assert.deepEqual(s.options.thresholds.http_req_duration, ['p(95)<40', 'p(99)<90']);
  reset();
  s.default!();
  const post = k6.posts[0]!;
  assert.equal(post.url, 'http://gw.example:9000/v2/models/simple/infer');
  assert.equal(post.params.headers['x-api-key'], 'igk_test');
  const body = JSON.parse(post.body as string) as { inputs: { name: string }[] };
  assert.deepEqual(
    body.inputs.map((i) => i.name),
    ['INPUT0', 'INPUT1'],
  );
  assert.equal((await load('smoke.js', { BASE_URL: 'https://b.example' })).options.scenarios.smoke!.vus, 1);
});

test('a bad variable stops the script at load, naming the variable', async () => {
  await assert.rejects(load('smoke.js', { MODEL: 'no such/model' }), /MODEL/);
  await assert.rejects(load('steady.js', { RATE: 'fast' }), /RATE/);
  await assert.rejects(load('smoke.js', { URL: 'gateway:8080' }), /URL/);
  await assert.rejects(load('smoke.js', { BINARY: 'yes' }), /BINARY/);
  await assert.rejects(load('smoke.js', { MODEL: 'resnet' }), /INPUT_FILE/);
  await assert.rejects(load('split.js', { WEIGHTS: 'stable=90' }), /WEIGHTS/);
});

const work = mkdtempSync(join(tmpdir(), 'infergate-k6-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('INPUT_FILE is sent as the body; BINARY=1 sends it with the binary extension, as the decoder reads it', async () => {
  const file = join(work, 'req.json');
  const request = {
    id: 'r1',
    inputs: [
      {
        name: 'a',
        shape: [2, 2],
        datatype: 'FP32',
        data: [
          [1.5, -2],
          [3, 4],
        ],
      },
      { name: 'b', shape: [3], datatype: 'BOOL', data: [true, false, true] },
      { name: 'c', shape: [2], datatype: 'INT32', data: [-7, 2147483647] },
    ],
  };
  writeFileSync(file, JSON.stringify(request));
  let s = await load('smoke.js', { MODEL: 'custom', INPUT_FILE: file });
  reset();
  s.default!();
  assert.deepEqual(JSON.parse(k6.posts[0]!.body as string), request);
  assert.equal(k6.posts[0]!.url, 'http://127.0.0.1:8080/v2/models/custom/infer');

  s = await load('smoke.js', { MODEL: 'custom', INPUT_FILE: file, BINARY: '1' });
  reset();
  s.default!();
  const post = k6.posts[0]!;
  assert.ok(post.body instanceof ArrayBuffer);
  assert.equal(post.params.headers['content-type'], 'application/octet-stream');
  const decoded = decodeInferRequest(new Uint8Array(post.body), {
    headerLength: post.params.headers['inference-header-content-length'],
  }) as DecodedRequest;
  assert.equal(decoded.id, 'r1');
  assert.deepEqual(
    decoded.inputs.map((i) => [i.name, i.datatype, i.shape, Array.from(i.data as ArrayLike<unknown>)]),
    [
      ['a', 'FP32', [2, 2], [1.5, -2, 3, 4]],
      ['b', 'BOOL', [3], [1, 0, 1]],
      ['c', 'INT32', [2], [-7, 2147483647]],
    ],
  );

  writeFileSync(file, '{"inputs": [');
  await assert.rejects(load('smoke.js', { INPUT_FILE: file }), /INPUT_FILE: .* is not JSON/);
  writeFileSync(
    file,
    JSON.stringify({ inputs: [{ name: 's', shape: [1], datatype: 'BYTES', data: ['x'] }] }),
  );
  await assert.rejects(load('smoke.js', { INPUT_FILE: file, BINARY: '1' }), /inputs\[0\]\.datatype: 'BYTES'/);
});

test('BINARY=1 with a sample model: the mlp body decodes to the same 64 numbers as the JSON one', async () => {
  const s = await load('steady.js', { BINARY: '1' });
  reset();
  s.default!();
  const post = k6.posts[0]!;
  const decoded = decodeInferRequest(new Uint8Array(post.body as ArrayBuffer), {
    headerLength: post.params.headers['inference-header-content-length'],
  }) as DecodedRequest;
  assert.deepEqual(decoded.inputs[0]!.shape, [1, 64]);
  assert.deepEqual(
    Array.from(decoded.inputs[0]!.data as Float32Array),
    Array.from({ length: 64 }, (_, i) => Math.fround(i / 64)),
  );
});

test('split check: shares within z standard errors pass, a drift beyond them fails', async () => {
  const split = (await import(new URL('lib/split.js', dir).href)) as SplitLib;
  const w = split.parseWeights('stable:90,canary:10');
  assert.deepEqual(w, { stable: 0.9, canary: 0.1 });
  // n = 10,000, p = 0.1: the standard error is 0.003, the band at z = 4 is 0.088-0.112.
  assert.equal(split.splitVerdict({ stable: 9000, canary: 1000 }, w).ok, true);
  assert.equal(split.splitVerdict({ stable: 8890, canary: 1110 }, w).ok, true, '11.1% is inside the band');
  const drifted = split.splitVerdict({ stable: 8850, canary: 1150 }, w);
  assert.equal(drifted.ok, false, '11.5% is outside');
  assert.deepEqual(
    drifted.rows.map((r) => [r.variant, r.ok]),
    [
      ['stable', false],
      ['canary', false],
    ],
  );
  // The same 11.5% over 1,000 answers is within the sampling error (band 0.062-0.138).
  assert.equal(split.splitVerdict({ stable: 885, canary: 115 }, w).ok, true);
  assert.equal(split.splitVerdict({ stable: 885, canary: 115 }, w, 1).ok, false, 'z = 1 is stricter');
  assert.equal(
    split.splitVerdict({ stable: 9000, canary: 990, other: 10 }, w).ok,
    false,
    'a variant outside',
  );
  assert.equal(split.splitVerdict({}, w).ok, false, 'no answers');
  const all = split.parseWeights('a:100,b:0');
  assert.equal(split.splitVerdict({ a: 500 }, all).ok, true);
  assert.equal(split.splitVerdict({ a: 499, b: 1 }, all).ok, false, 'weight 0 answered once');
  assert.throws(() => split.parseWeights('a:1,a:2'), /named twice/);
  assert.throws(() => split.parseWeights('a:0'), /sum to 0/);
  assert.match(
    split.splitReport(drifted),
    /DRIFTED[\s\S]*FAIL canary: 1150 answers, 11.50% observed, 10.00% expected/,
  );
});

test('split.js: thresholds on each variant share, counted per answer, and the verdict in the summary', async () => {
  const s = await load('split.js', { RATE: '50', DURATION: '200s', WEIGHTS: 'stable:90,canary:10' });
  // Planned n = 10,000: the same band as above.
  assert.deepEqual(s.options.thresholds['variant_share{variant:canary}'], ['rate>=0.088', 'rate<=0.112']);
  assert.deepEqual(s.options.thresholds.unexpected_variant, ['count==0']);
  reset('canary');
  s.default!();
  assert.deepEqual(
    k6.metrics.map((m) => [m.name, m.value, m.tags]),
    [
      ['variant_share', false, { variant: 'stable' }],
      ['variant_share', true, { variant: 'canary' }],
    ],
  );
  reset('shadowy');
  s.default!();
  assert.deepEqual(k6.metrics.at(-1), {
    name: 'unexpected_variant',
    kind: 'Counter',
    value: 1,
    tags: { variant: 'shadowy' },
  });
  const summary = (stable: number, canary: number, other: number) => ({
    metrics: {
      'variant_share{variant:stable}': { values: { passes: stable } },
      'variant_share{variant:canary}': { values: { passes: canary } },
      unexpected_variant: { values: { count: other } },
    },
  });
  assert.match(
    s.handleSummary!(summary(9000, 1000, 0)).stdout,
    /\(summary\)[\s\S]*within the sampling error/,
  );
  assert.match(s.handleSummary!(summary(8500, 1500, 0)).stdout, /DRIFTED/);
  assert.match(s.handleSummary!(summary(9000, 1000, 3)).stdout, /FAIL \(not in WEIGHTS\): 3 answers/);
});
