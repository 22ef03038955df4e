/**
 * The report's paired sections: the gateway beside the baseline (`--baseline REF`), and the
 * moderate phase's added latency of each proxy. Every figure is taken within a run, then the
 * median over runs, with the runs' range where there are several.
 */
import { median } from '../common.js';
import { table } from '../lib.js';
import type { Counts, TargetName } from './options.js';
import { dash, type Figure, plus, type Runs, verdict, withSpread } from './runs.js';

export interface Section {
  text: string;
  lines: string[];
  ratios: Record<string, number | undefined>;
}

const none: Section = { text: '', lines: [], ratios: {} };
const cpuPhase: Figure = (r, n) => r.cpu[n]?.proxyCpuUsPerRequest;
const cpuModerate: Figure = (r, n) => r.moderate[n]?.proxyCpuUsPerRequest;
const p50: Figure = (r, n) => r.moderate[n]?.p50Ms;
const p99: Figure = (r, n) => r.moderate[n]?.p99Ms;
const wrkP50: Figure = (r, n) => r.moderate[n]?.wrk?.p50Ms;

/** CPU per request of gateway and baseline, paired run by run (from the CPU phase, else the moderate one). */
export function baselineSection(runs: Runs, moderate: Runs): Section {
  if (!runs.has('baseline') && !moderate.has('baseline')) return none;
  const fromCpu = runs.results.some((r) => r.cpu.gateway !== undefined);
  const [source, f, where] = fromCpu
    ? [runs, cpuPhase, 'CPU phase']
    : [moderate, cpuModerate, 'moderate phase, fake upstream'];
  const vsBase = source.ratios('gateway', 'baseline', f);
  const gwRelay = source.ratios('gateway', 'relay', f);
  const baseRelay = source.ratios('baseline', 'relay', f);
  const rows = source.results.map((r, i) => [
    `run ${i + 1}`,
    dash(f(r, 'gateway')),
    dash(f(r, 'baseline')),
    dash(vsBase[i], (v) => v.toFixed(3)),
    dash(gwRelay[i]),
    dash(baseRelay[i]),
  ]);
  const text = `\n${table(
    [
      `CPU us/req (${where})`,
      'gateway',
      'baseline',
      'gateway / baseline',
      'gateway / relay',
      'baseline / relay',
    ],
    rows,
  )}\n`;
  const ratio = source.ratio('gateway', 'baseline', f);
  const lines = [
    `gateway CPU / baseline CPU:                ${withSpread(vsBase, 3)}x   (aim <= 1.03: ${verdict((ratio ?? Number.NaN) <= 1.03)})`,
  ];
  if (gwRelay.length > 0) {
    lines.push(
      `gateway CPU / relay, baseline CPU / relay: ${withSpread(gwRelay)}x, ${withSpread(baseRelay)}x`,
    );
  }
  return {
    text,
    lines,
    ratios: {
      gatewayVsBaselineCpu: ratio,
      gatewayVsBaselineCpuMin: Math.min(...vsBase),
      gatewayVsBaselineCpuMax: Math.max(...vsBase),
      baselineVsRelayCpu: source.ratio('baseline', 'relay', f),
    },
  };
}

/** The moderate phase: p50/p99 of each target, and what each proxy adds to direct's p50. */
export function moderateSection(runs: Runs, delayMs: number, counts: Counts): Section {
  if (!runs.results.some((r) => r.moderate.direct !== undefined)) return none;
  const names = (['direct', 'gateway', 'baseline', 'relay', 'nginx'] as const).filter((n) => runs.has(n));
  const anyWrk = runs.results.some((r) => r.moderate.direct?.wrk !== undefined);
  const us = (v: number) => plus(v * 1000);
  const rows = names.map((n) => {
    const proxy = n !== 'direct';
    const row: (string | number)[] = [
      n,
      dash(runs.med((r) => r.moderate[n]?.rps)),
      dash(runs.med((r) => p50(r, n))),
      dash(runs.med((r) => p99(r, n))),
      dash(proxy ? runs.diff(n, 'direct', p50) : undefined, us),
      dash(proxy ? runs.diff(n, 'direct', p99) : undefined, us),
      dash(runs.med((r) => cpuModerate(r, n))),
    ];
    if (anyWrk) {
      row.push(
        dash(runs.med((r) => wrkP50(r, n))),
        dash(proxy ? runs.diff(n, 'direct', wrkP50) : undefined, us),
        dash(runs.med((r) => r.moderate[n]?.wrk?.rps)),
      );
    }
    row.push(
      runs.results.reduce((a, r) => a + (r.moderate[n]?.failed ?? 0) + (r.moderate[n]?.wrk?.errors ?? 0), 0),
    );
    return row;
  });
  const head = [
    'moderate (fake upstream)',
    'req/s',
    'p50 ms',
    'p99 ms',
    'added p50 us',
    'added p99 us',
    'CPU us/req',
  ];
  if (anyWrk) head.push('wrk p50 ms', 'wrk added p50 us', 'wrk req/s');
  head.push('failed');
  const text =
    `\n${table(head, rows)}\n` +
    `  closed loop, ${counts.moderateConnections} keep-alive connections, ${counts.moderate} requests per target and run, ` +
    `the fake upstream answering after ${delayMs} ms; added: less direct's, in the same slices` +
    (anyWrk ? `; wrk: ${counts.moderateConnections} connections, ${counts.wrkSeconds} s per target` : '') +
    '\n';
  const added = (n: TargetName, f: Figure) => runs.diffs(n, 'direct', f);
  const perRun = (a: TargetName, b: TargetName, f: Figure) => {
    const xs = added(a, f);
    const ys = added(b, f);
    return xs.length > 0 && ys.length > 0 ? xs.map((x, i) => x / ys[i]!) : [];
  };
  const gwVsRelay = perRun('gateway', 'relay', p50);
  const lines: string[] = [];
  const ratios: Record<string, number | undefined> = {
    moderateGatewayAddedP50Ms: runs.diff('gateway', 'direct', p50),
    moderateRelayAddedP50Ms: runs.diff('relay', 'direct', p50),
    moderateNginxAddedP50Ms: runs.diff('nginx', 'direct', p50),
    moderateBaselineAddedP50Ms: runs.diff('baseline', 'direct', p50),
  };
  if (gwVsRelay.length > 0) {
    const ok = verdict(median(gwVsRelay) <= 1.3);
    lines.push(
      `moderate: gateway added p50 / relay added p50: ${withSpread(gwVsRelay)}x   (aim <= 1.3: ${ok})`,
    );
    ratios.moderateGatewayVsRelayAddedP50 = median(gwVsRelay);
  }
  const baseVsRelay = perRun('baseline', 'relay', p50);
  if (baseVsRelay.length > 0) {
    lines.push(`moderate: baseline added p50 / relay added p50: ${withSpread(baseVsRelay)}x`);
    ratios.moderateBaselineVsRelayAddedP50 = median(baseVsRelay);
  }
  const wrkVsRelay = perRun('gateway', 'relay', wrkP50);
  if (anyWrk && wrkVsRelay.length > 0) {
    lines.push(`moderate, wrk: gateway added p50 / relay added p50: ${withSpread(wrkVsRelay)}x`);
    ratios.moderateWrkGatewayVsRelayAddedP50 = median(wrkVsRelay);
  }
  if (runs.has('baseline')) {
    lines.push(
      `moderate: gateway added p50 - baseline added p50: ${dash(runs.diff('gateway', 'baseline', p50), us)} us`,
    );
  }
  return { text, lines, ratios };
}
