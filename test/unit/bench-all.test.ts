// The pure parts of `npm run bench`: the figures taken from the benchmarks' JSON with their aims
// and verdicts, the Markdown table, and the hand-written SVG chart (well formed, whatever it is
// given, text escaped).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { svgChart, tickStep } from '../../load/bench-all/chart.js';
import type { Results } from '../../load/bench-all/plan.js';
import { againstAim, figures, markdownTable } from '../../load/bench-all/ratios.js';
import type { GatewayReport } from '../../load/gateway/report.js';
import { checkXml } from '../helpers/xml.js';

function gatewayReport(gateway: number, relay: number, ratios: Record<string, number> = {}): GatewayReport {
  return {
    date: '2026-12-03T00:00:00.000Z',
    machine: { cpu: 'cpu', cores: 2, node: 'v20', nginx: undefined },
    settings: {},
    notes: [],
    summary: { gateway: { cpuUsPerRequest: gateway }, relay: { cpuUsPerRequest: relay } },
    ratios,
    runs: [],
  };
}

test('figures: values from each benchmark, aims either way, and verdicts', () => {
  const results: Results = {
    gateway: gatewayReport(80, 40, { gatewayAddedP50Ms: 0.6, gatewayVsNginxCpu: 3 }),
    security: gatewayReport(99, 45),
    tracing: [{ ratio: 0.01, report: gatewayReport(82, 40) }],
    backend: { ratios: { batchedVsUnbatched: 6, batchedVsLimit: 0.65, simpleCpuVsBareFastify: 1.2 } },
  };
  const f = new Map(figures(results).map((x) => [x.key, x]));
  assert.equal(f.get('gatewayCpuUs')!.value, 80);
  assert.equal(f.get('gatewayCpuUs')!.met, true);
  assert.equal(f.get('gatewayAddedP50Ms')!.met, false, '0.6 ms > 0.5 ms');
  // (99 / 45) / (80 / 40) = 1.1: over the +5% aim.
  assert.ok(Math.abs(f.get('securityKeysVsPlainCpu')!.value! - 1.1) < 1e-9);
  assert.equal(f.get('securityKeysVsPlainCpu')!.met, false);
  assert.ok(Math.abs(f.get('tracing1VsPlainCpu')!.value! - 1.025) < 1e-9);
  assert.equal(f.get('tracing1VsPlainCpu')!.met, true);
  assert.equal(f.get('tracing100VsPlainCpu')!.value, undefined, 'not run');
  assert.equal(f.get('tracing100VsPlainCpu')!.met, undefined);
  assert.equal(f.get('backendBatchedVsUnbatched')!.met, true, '>= 3');
  assert.equal(f.get('backendBatchedVsLimit')!.met, false, '0.65 < 0.7');
  assert.equal(f.get('fleetAckP99Ms')!.value, undefined);
  assert.equal(f.get('gatewayVsRelayCpu')!.aim, undefined, 'no aim');
});

test('againstAim: 1 is the aim and below 1 is met, for aims of either direction', () => {
  assert.equal(againstAim({ value: 50, aim: { op: '<=', value: 100 } }), 0.5);
  assert.equal(againstAim({ value: 6, aim: { op: '>=', value: 3 } }), 0.5);
  assert.equal(againstAim({ value: 0.35, aim: { op: '>=', value: 0.7 } }), 2);
  assert.equal(againstAim({ value: undefined, aim: { op: '<=', value: 1 } }), undefined);
  assert.equal(againstAim({ value: 3 }), undefined);
});

test('markdownTable: one row per figure, the aim and the verdict beside each value', () => {
  const md = markdownTable(figures({ gateway: gatewayReport(120, 40) }));
  const lines = md.trim().split('\n');
  assert.equal(lines[0], '| figure | value | aim | met |');
  assert.equal(lines.length, 2 + figures({}).length);
  assert.ok(lines.includes('| gateway CPU per request (8 connections) | 120 µs | ≤ 100 µs | **no** |'));
  assert.ok(lines.includes('| gateway CPU ÷ bare relay CPU | not measured | — | — |'));
  assert.ok(lines.includes('| fleet: store write to gateway ACK, p99 | not measured | ≤ 20 ms | n/a |'));
});

test('svgChart: well formed with nothing to draw, with one run, and with text to escape', () => {
  for (const svg of [
    svgChart({}, [], 'empty'),
    svgChart(
      { gateway: [{ rate: 100, p50Ms: 1, p99Ms: 3, achievedRps: 100, failed: 0, dropped: 0 }] },
      [{ date: '2026-12-03T00:00:00Z', figures: figures({ gateway: gatewayReport(80, 40) }) }],
      'a <caption> & "quotes"',
    ),
  ]) {
    const elements = checkXml(svg);
    assert.equal(elements[0], 'svg');
  }
  const svg = svgChart({}, [], 'a <caption> & "quotes"');
  assert.match(svg, /a &lt;caption&gt; &amp; &quot;quotes&quot;/);
  assert.match(svg, /not measured/);
  assert.match(svg, /no figures yet/);
  assert.throws(() => checkXml('<svg><g></svg>'), /closes <g>/);
  assert.throws(() => checkXml('<svg>a & b</svg>'), /bare '&'/);
});

test('tickStep: round steps, at most 5 of them up to the maximum', () => {
  assert.deepEqual([4.2, 74, 0.5, 1, 2.1, 10_000].map(tickStep), [1, 20, 0.1, 0.2, 0.5, 2000]);
});
