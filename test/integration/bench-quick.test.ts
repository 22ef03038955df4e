// `npm run bench -- --quick` works end to end: every benchmark runs in its short form (the gateway
// beside nginx and the relay, the latency curve, keys and limits, tracing, the backend, fleet
// propagation, shadowing; about 75 s on a quiet machine), and what it writes is well formed: the Markdown table on stdout, the dated JSON and the SVG chart, with an
// earlier results file drawn in the history and a broken one skipped. Nothing about speed is
// asserted: the figures of a quick run are noise.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/backend.js';
import { checkXml } from '../helpers/xml.js';

const STEPS = ['gateway', 'curve', 'security', 'tracing', 'backend', 'fleet', 'shadow'];

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'load', 'bench-all.ts'), ...args],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

function gitStatus(): Promise<string> {
  const child = spawn('git', ['status', '--porcelain', '--', 'load/results'], { cwd: REPO_ROOT });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve) => child.on('exit', () => resolve(out)));
}

interface Figure {
  key: string;
  label: string;
  unit: string;
  value?: number;
  aim?: { op: string; value: number };
  met?: boolean;
}

test('bench --quick writes a Markdown table, a dated JSON and an SVG chart, and leaves tracked results alone', {
  timeout: 300_000,
}, async () => {
  const out = await mkdtemp(join(tmpdir(), 'infergate-bench-quick-'));
  try {
    const earlier: Figure[] = [
      {
        key: 'gatewayCpuUs',
        label: 'gateway CPU',
        unit: 'µs',
        value: 80,
        aim: { op: '<=', value: 100 },
        met: true,
      },
      {
        key: 'backendBatchedVsLimit',
        label: 'batched',
        unit: '×',
        value: 0.75,
        aim: { op: '>=', value: 0.7 },
        met: true,
      },
    ];
    await writeFile(
      join(out, '2026-01-01.json'),
      JSON.stringify({ date: '2026-01-01T10:00:00.000Z', figures: earlier }),
    );
    await writeFile(join(out, '2026-01-02.json'), '{ not json');
    await writeFile(join(out, 'gateway-latest.json'), '"someone else\'s"');
    const status = await gitStatus();

    const r = await run(['--quick', '--out', out]);
    assert.equal(r.code, 0, r.stderr.slice(-3000));

    // Progress on stderr, a line as each benchmark starts and ends.
    for (const [i, name] of STEPS.entries()) {
      assert.match(r.stderr, new RegExp(`\\[${i + 1}/${STEPS.length}\\] ${name}: `));
      assert.match(r.stderr, new RegExp(`\\[${i + 1}/${STEPS.length}\\] ${name} done in \\d+ s`));
    }
    assert.match(r.stderr, /skipped 2026-01-02\.json/);

    // stdout: the Markdown report alone.
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^## infergate bench --quick/);
    const table = lines.filter((l) => l.startsWith('|'));
    assert.equal(table[0], '| figure | value | aim | met |');
    assert.equal(table[1], '|---|---|---|---|');
    for (const row of table.slice(2)) {
      const cells = row.split('|').slice(1, -1);
      assert.equal(cells.length, 4, row);
      assert.match(cells[3]!.trim(), /^(yes|\*\*no\*\*|—|n\/a)$/, row);
    }
    assert.match(r.stdout, /\d+ of \d+ aims met\./);

    const date = new Date().toISOString().slice(0, 10);
    const doc = JSON.parse(await readFile(join(out, `${date}.quick.json`), 'utf8')) as {
      date: string;
      quick: boolean;
      steps: string[];
      loadAverage: { before: number[]; after: number[] };
      figures: Figure[];
      results: {
        gateway: { summary: Record<string, { cpuUsPerRequest: number }> };
        curve: Record<string, { rate: number; p50Ms: number; p99Ms: number }[]>;
        backend: { ratios: Record<string, number> };
      };
    };
    assert.equal(doc.quick, true);
    assert.deepEqual(doc.steps, STEPS);
    assert.equal(doc.loadAverage.before.length, 3);
    assert.equal(table.length - 2, doc.figures.length, 'a table row per figure');
    for (const f of doc.figures) {
      assert.ok(f.key !== '' && f.label !== '' && f.unit !== '', JSON.stringify(f));
      if (f.value !== undefined && f.aim !== undefined) {
        assert.equal(f.met, f.aim.op === '<=' ? f.value <= f.aim.value : f.value >= f.aim.value, f.key);
      }
    }
    const byKey = new Map(doc.figures.map((f) => [f.key, f]));
    // A figure from each step (the moderate phase, tracing at 100% and batching at 64 are left out
    // of a quick run).
    for (const k of [
      'gatewayAddedP50Ms',
      'gatewayCpuUs',
      'gatewayVsRelayCpu',
      'securityKeysVsPlainCpu',
      'tracing1VsPlainCpu',
      'backendSimpleVsBareCpu',
      'fleetAckP99Ms',
      'fleetFirstAnswerP99Ms',
      'shadowCompareUs',
      'shadowCpuOnVsOff',
    ]) {
      assert.equal(typeof byKey.get(k)?.value, 'number', `${k} measured`);
    }
    assert.ok(doc.results.gateway.summary.gateway!.cpuUsPerRequest > 0);
    for (const t of ['direct', 'gateway', 'relay']) {
      const pts = doc.results.curve[t]!;
      assert.deepEqual(
        pts.map((p) => p.rate),
        [100, 400],
        t,
      );
      for (const p of pts) assert.ok(p.p50Ms > 0 && p.p50Ms <= p.p99Ms, `${t}: ${JSON.stringify(p)}`);
    }

    const svg = await readFile(join(out, `${date}.quick.svg`), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    const elements = checkXml(svg);
    const curves = Object.keys(doc.results.curve).length;
    // p50 and p99 for each target, and a line for each aimed figure measured in both runs.
    const both = earlier.filter((e) => byKey.get(e.key)?.value !== undefined).length;
    assert.equal(elements.filter((e) => e === 'polyline').length, 2 * curves + both);
    assert.match(svg, /Latency against offered load/);
    assert.match(svg, />01-01</, 'the earlier run on the history axis');
    await assert.rejects(
      readFile(join(out, `${date}.json`)),
      "a quick run does not write the full run's file",
    );

    assert.equal(await readFile(join(out, 'gateway-latest.json'), 'utf8'), '"someone else\'s"');
    assert.equal(await gitStatus(), status, 'tracked results unchanged');
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
