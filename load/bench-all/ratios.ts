/**
 * The figures `npm run bench` reports, each with its aim (from docs/benchmarks.md and the issues
 * that set them) and whether it is met, and the Markdown table of them. Pure: a function of the
 * steps' results.
 */
import type { GatewayReport } from '../gateway/report.js';
import type { Results } from './plan.js';

export interface Aim {
  op: '<=' | '>=';
  value: number;
}

export interface Figure {
  key: string;
  label: string;
  unit: string;
  /** undefined: not measured in this run. */
  value: number | undefined;
  aim?: Aim;
  /** undefined when there is no aim or no value. */
  met?: boolean;
}

const cpu = (r: GatewayReport | undefined, target: 'gateway' | 'relay') =>
  r?.summary[target]?.cpuUsPerRequest;

/** Target gateway's CPU over the relay's in `r`, divided by the same in the plain run `base`. */
function versusPlain(r: GatewayReport | undefined, base: GatewayReport | undefined): number | undefined {
  const a = cpu(r, 'gateway');
  const b = cpu(r, 'relay');
  const c = cpu(base, 'gateway');
  const d = cpu(base, 'relay');
  if (a === undefined || b === undefined || c === undefined || d === undefined) return undefined;
  return a / b / (c / d);
}

function figure(key: string, label: string, unit: string, value: number | undefined, aim?: Aim): Figure {
  const v = value !== undefined && Number.isFinite(value) ? value : undefined;
  const f: Figure = { key, label, unit, value: v };
  if (aim !== undefined) {
    f.aim = aim;
    if (v !== undefined) f.met = aim.op === '<=' ? v <= aim.value : v >= aim.value;
  }
  return f;
}

export function figures(r: Results): Figure[] {
  const g = r.gateway?.ratios ?? {};
  const t = (ratio: number) => r.tracing?.find((x) => x.ratio === ratio)?.report;
  const live = r.shadow?.live;
  const be = r.backend?.ratios ?? {};
  const fleetCpu = r.fleet?.cpuFleetOverFile.median;
  return [
    figure('gatewayAddedP50Ms', 'gateway added p50 at light load', 'ms', g.gatewayAddedP50Ms, {
      op: '<=',
      value: 0.5,
    }),
    figure('gatewayCpuUs', 'gateway CPU per request (8 connections)', 'µs', cpu(r.gateway, 'gateway'), {
      op: '<=',
      value: 100,
    }),
    figure('gatewayVsNginxCpu', 'gateway CPU ÷ nginx CPU', '×', g.gatewayVsNginxCpu, { op: '<=', value: 4 }),
    figure('gatewayVsRelayCpu', 'gateway CPU ÷ bare relay CPU', '×', g.gatewayVsRelayCpu),
    figure(
      'gatewayVsDirectThroughput',
      'gateway ÷ direct throughput at saturation',
      '×',
      g.gatewayVsDirectThroughput,
    ),
    figure(
      'moderateGatewayVsRelayAddedP50',
      'gateway-added ÷ relay-added p50 (moderate load)',
      '×',
      g.moderateGatewayVsRelayAddedP50,
      { op: '<=', value: 1.3 },
    ),
    figure(
      'securityKeysVsPlainCpu',
      'API key + local limits: gateway CPU ÷ plain (each ÷ relay)',
      '×',
      versusPlain(r.security, r.gateway),
      { op: '<=', value: 1.05 },
    ),
    figure(
      'tracing1VsPlainCpu',
      'tracing at 1%: gateway CPU ÷ plain (each ÷ relay)',
      '×',
      versusPlain(t(0.01), r.gateway),
      { op: '<=', value: 1.03 },
    ),
    figure(
      'tracing100VsPlainCpu',
      'tracing at 100%: gateway CPU ÷ plain (each ÷ relay)',
      '×',
      versusPlain(t(1), r.gateway),
      { op: '<=', value: 1.3 },
    ),
    figure(
      'backendBatchedVsUnbatched',
      'backend mlp-large batched ÷ unbatched at 64',
      '×',
      be.batchedVsUnbatched,
      { op: '>=', value: 3 },
    ),
    figure(
      'backendBatchedVsLimit',
      'backend mlp-large batched ÷ in-process onnxruntime',
      '×',
      be.batchedVsLimit,
      { op: '>=', value: 0.7 },
    ),
    figure(
      'backendSimpleVsBareCpu',
      'backend simple CPU ÷ bare fastify CPU',
      '×',
      be.simpleCpuVsBareFastify,
      { op: '<=', value: 1.5 },
    ),
    figure('fleetAckP99Ms', 'fleet: store write to gateway ACK, p99', 'ms', r.fleet?.ackMs.p99Ms, {
      op: '<=',
      value: 20,
    }),
    figure(
      'fleetFirstAnswerP99Ms',
      'fleet: store write to first answer on the new version, p99',
      'ms',
      r.fleet?.firstAnswerMs.p99Ms,
      { op: '<=', value: 20 },
    ),
    figure('fleetVsFileCpu', 'fleet-mode gateway CPU ÷ file mode', '×', fleetCpu),
    figure(
      'shadowAddedP99Ms',
      'shadow at 100%: primary p99 on − off',
      'ms',
      live === undefined ? undefined : live.on.p99Ms - live.off.p99Ms,
      { op: '<=', value: 1 },
    ),
    figure(
      'shadowCpuOnVsOff',
      'shadow at 100%: gateway CPU on ÷ off',
      '×',
      live === undefined ? undefined : live.on.cpuUsPerRequest / live.off.cpuUsPerRequest,
    ),
    figure(
      'shadowCompareUs',
      'shadow: decode + compare one mlp answer (1 × 10, JSON)',
      'µs',
      r.shadow?.compare[0]?.us,
    ),
  ];
}

export function formatValue(v: number | undefined, unit: string): string {
  if (v === undefined) return 'not measured';
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${unit}`;
}

export function markdownTable(fs: readonly Figure[]): string {
  const rows = ['| figure | value | aim | met |', '|---|---|---|---|'];
  for (const f of fs) {
    const aim = f.aim === undefined ? '—' : `${f.aim.op === '<=' ? '≤' : '≥'} ${f.aim.value} ${f.unit}`;
    const met = f.met === undefined ? (f.aim === undefined ? '—' : 'n/a') : f.met ? 'yes' : '**no**';
    rows.push(`| ${f.label} | ${formatValue(f.value, f.unit)} | ${aim} | ${met} |`);
  }
  return `${rows.join('\n')}\n`;
}

/** A figure against its aim, where 1 is the aim and below 1 is met, whichever way the aim points. */
export function againstAim(f: Pick<Figure, 'value' | 'aim'>): number | undefined {
  if (f.value === undefined || f.aim === undefined || f.value === 0) return undefined;
  return f.aim.op === '<=' ? f.value / f.aim.value : f.aim.value / f.value;
}
