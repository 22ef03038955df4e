/**
 * bench:gateway's report: the table of the light, saturation and CPU phases, the sections of the
 * baseline and the moderate phase (report-pairs.ts), the verdicts, and the JSON file.
 */
import { machine, simpleBody } from '../common.js';
import { fmt, table } from '../lib.js';
import type { Counts, Options, TargetName } from './options.js';
import { baselineSection, moderateSection } from './report-pairs.js';
import { dash, type Figure, plus, type RunResult, Runs, verdict } from './runs.js';

/** bench:gateway's JSON: settings, medians per target, the ratios, and every run. */
export interface GatewayReport {
  date: string;
  machine: ReturnType<typeof machine> & { nginx: string | undefined };
  settings: Record<string, unknown>;
  notes: readonly string[];
  summary: Partial<Record<TargetName, Record<string, number>>>;
  ratios: Record<string, number>;
  runs: readonly RunResult[];
}

export interface ReportInput {
  options: Options;
  /** The targets in front of the backend, and those in front of the fake upstream. */
  names: readonly TargetName[];
  moderateNames: readonly TargetName[];
  results: readonly RunResult[];
  counts: Counts;
  versions: { nginx: string | undefined; baseline?: { ref: string; commit: string } };
  notes: readonly string[];
  replyBytes: number;
}

const cpuOfRun: Figure = (r, n) => r.cpu[n]?.proxyCpuUsPerRequest;
const p50: Figure = (r, n) => r.latency[n]?.p50Ms;
const p99: Figure = (r, n) => r.latency[n]?.p99Ms;

/** Prints the report (stdout) and returns what bench:gateway writes as JSON. */
export function report(input: ReportInput): GatewayReport {
  const { options, names, results, counts } = input;
  const rate = options.rate;
  const runs = new Runs(results, names);
  const phases = new Set(options.phases);
  const summary: Partial<Record<TargetName, Record<string, number>>> = {};
  for (const n of names) {
    summary[n] = {
      lightP50Ms: runs.med((r) => r.latency[n]?.p50Ms),
      lightP99Ms: runs.med((r) => r.latency[n]?.p99Ms),
      lightCpuUsPerRequest: runs.med((r) => r.latency[n]?.proxyCpuUsPerRequest),
      lightCpuNetOfIdleUsPerRequest: runs.med((r) => r.latency[n]?.proxyCpuUsPerRequestNetOfIdle),
      idleCpuMsPerSecond: runs.med((r) => r.latency[n]?.idleCpuMsPerSecond),
      saturationRps: runs.med((r) => r.saturation[n]?.rps),
      saturationP99Ms: runs.med((r) => r.saturation[n]?.p99Ms),
      cpuUsPerRequest: runs.med((r) => r.cpu[n]?.proxyCpuUsPerRequest),
      backendCpuUsPerRequest: runs.med((r) => r.cpu[n]?.backendCpuUsPerRequest),
      failures: results.reduce(
        (a, r) =>
          a +
          (r.latency[n]?.failed ?? 0) +
          (r.saturation[n]?.non2xx ?? 0) +
          (r.saturation[n]?.errors ?? 0) +
          (r.cpu[n]?.failed ?? 0),
        0,
      ),
    };
  }

  let out = '';
  if (phases.has('light') || phases.has('saturation') || phases.has('cpu')) {
    const rows = names.map((n) => {
      const s = summary[n]!;
      const proxy = n !== 'direct';
      return [
        n,
        dash(s.lightP50Ms),
        dash(s.lightP99Ms),
        dash(proxy ? runs.diff(n, 'direct', p50) : undefined, plus),
        dash(proxy ? runs.diff(n, 'direct', p99) : undefined, plus),
        dash(s.saturationRps),
        dash(runs.ratio(n, 'direct', (r, t) => r.saturation[t]?.rps)),
        dash(s.cpuUsPerRequest),
        dash(proxy ? runs.ratio(n, 'nginx', cpuOfRun) : undefined),
        dash(s.lightCpuUsPerRequest),
        dash(s.idleCpuMsPerSecond),
        dash(s.backendCpuUsPerRequest),
        s.failures!,
      ];
    });
    const head = ['target', 'p50 ms', 'p99 ms', 'added p50', 'added p99', 'sat req/s', 'x direct'];
    head.push('CPU us/req', 'x nginx', `CPU @${rate}/s`, 'idle ms/s', 'backend us/req', 'failed');
    out += `${table(head, rows)}\n`;
    out +=
      `  p50/p99: open-loop ${rate} req/s, whole request; sat req/s: ${counts.saturationConnections} connections\n` +
      `  CPU us/req: the proxy's own process(es), all threads, at ${counts.cpuConnections} connections (nginx: master + worker)\n` +
      `  CPU @${rate}/s: the same at the light rate, idle burn included (idle ms/s: measured just before, after a pause)\n` +
      '  added, x direct, x nginx: taken within each run, then the median over runs\n';
    if (results.length > 1 && phases.has('cpu')) {
      out += `\n${table(
        ['CPU us/req per run', ...results.map((_, i) => `run ${i + 1}`)],
        names.filter((n) => n !== 'direct').map((n) => [n, ...results.map((r) => dash(cpuOfRun(r, n)))]),
      )}\n`;
    }
  }
  const moderateRuns = new Runs(results, input.moderateNames);
  const pairs = baselineSection(runs, moderateRuns);
  const moderate = moderateSection(moderateRuns, options.upstreamDelayMs, counts);
  out += pairs.text + moderate.text;

  const ratios = {
    gatewayAddedP50Ms: runs.diff('gateway', 'direct', p50),
    gatewayAddedP99Ms: runs.diff('gateway', 'direct', p99),
    gatewayVsDirectThroughput: runs.ratio('gateway', 'direct', (r, n) => r.saturation[n]?.rps),
    gatewayVsNginxCpu: runs.ratio('gateway', 'nginx', cpuOfRun),
    gatewayVsRelayCpu: runs.ratio('gateway', 'relay', cpuOfRun),
    relayVsNginxCpu: runs.ratio('relay', 'nginx', cpuOfRun),
    nginxAddedP50Ms: runs.diff('nginx', 'direct', p50),
    nginxVsDirectThroughput: runs.ratio('nginx', 'direct', (r, n) => r.saturation[n]?.rps),
    relayAddedP50Ms: runs.diff('relay', 'direct', p50),
    relayVsDirectThroughput: runs.ratio('relay', 'direct', (r, n) => r.saturation[n]?.rps),
    ...pairs.ratios,
    ...moderate.ratios,
  };
  const lines: string[] = [];
  const defined = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x);
  if (defined(ratios.gatewayAddedP50Ms)) {
    const added = ratios.gatewayAddedP50Ms;
    lines.push(
      `gateway added p50 at ${rate} req/s:          ${fmt(added * 1000)} us   (aim <= 500 us: ${verdict(added <= 0.5)})`,
      `gateway added p99 at ${rate} req/s:          ${fmt(ratios.gatewayAddedP99Ms! * 1000)} us   (noisy on a shared machine)`,
    );
  }
  if (defined(ratios.gatewayVsDirectThroughput)) {
    lines.push(`gateway / direct throughput at saturation: ${fmt(ratios.gatewayVsDirectThroughput)}x`);
  }
  const gwCpu = summary.gateway?.cpuUsPerRequest;
  if (defined(gwCpu)) {
    lines.push(
      `gateway CPU per request:                   ${fmt(gwCpu)} us   (aim <= 100 us: ${verdict(gwCpu <= 100)})`,
    );
  }
  if (defined(ratios.gatewayVsNginxCpu)) {
    const x = ratios.gatewayVsNginxCpu;
    lines.push(`gateway CPU / nginx CPU:                   ${fmt(x)}x   (aim <= 4x: ${verdict(x <= 4)})`);
  }
  if (defined(ratios.gatewayVsRelayCpu)) {
    lines.push(`gateway CPU / bare node relay CPU:         ${fmt(ratios.gatewayVsRelayCpu)}x`);
  }
  if (defined(ratios.relayVsNginxCpu)) {
    lines.push(
      `bare node relay CPU / nginx CPU:           ${fmt(ratios.relayVsNginxCpu)}x   (the floor for a Node proxy)`,
    );
  }
  lines.push(...pairs.lines, ...moderate.lines);
  if (results.length > 1) lines.push(`(medians over ${results.length} runs; each ratio taken within a run)`);
  out += `\n${lines.join('\n')}\n`;
  process.stdout.write(out);

  return {
    date: new Date().toISOString(),
    machine: { ...machine(), nginx: input.versions.nginx },
    settings: {
      quick: options.quick,
      compiled: options.compiled,
      runs: results.length,
      rate,
      phases: options.phases,
      baseline: input.versions.baseline,
      upstreamDelayMs: options.upstreamDelayMs,
      counts,
      requestBytes: simpleBody.length,
      replyBytes: input.replyBytes,
    },
    notes: input.notes,
    summary,
    ratios: Object.fromEntries(Object.entries(ratios).filter(([, v]) => defined(v))) as Record<
      string,
      number
    >,
    runs: results,
  };
}
