/**
 * `npm run bench`: every benchmark of the repository in one go (load/bench-all/plan.ts): the
 * gateway beside nginx and the bare relay, latency against offered load, API keys and limits,
 * tracing, the backend beside in-process onnxruntime, fleet propagation and shadowing. Progress
 * (and each benchmark's own tables) on stderr; then on stdout one Markdown table of the figures,
 * each with its aim and whether it is met (load/bench-all/ratios.ts). Writes
 * <out>/<YYYY-MM-DD>.json (the figures and every benchmark's JSON) and <out>/<YYYY-MM-DD>.svg
 * (latency against offered load; the figures against their aims over the dated files in <out>);
 * with --quick, <YYYY-MM-DD>.quick.json and .quick.svg, which the history leaves out.
 * The benchmarks' own files (gateway-latest.json and the like) are left alone.
 * Options: --quick (a short version of each: proves the harness works, its figures are noise),
 * --only NAME[,NAME] (those steps), --out DIR (default load/results).
 */
import './usage.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { svgChart } from './bench-all/chart.js';
import { readHistory } from './bench-all/history.js';
import { type Results, STEPS } from './bench-all/plan.js';
import { log, step } from './bench-all/progress.js';
import { figures, markdownTable } from './bench-all/ratios.js';
import { machine, root } from './common.js';
import { whichSync } from './gateway/processes.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string', default: join(root, 'load', 'results') },
  },
});
const names = STEPS.map((s) => s.name);
const only = values.only?.split(',').map((s) => s.trim());
for (const n of only ?? []) {
  if (!names.includes(n as (typeof names)[number]))
    throw new Error(`--only: unknown '${n}' (one of ${names.join(', ')})`);
}
const steps = STEPS.filter((s) => only === undefined || only.includes(s.name));
const out = resolve(values.out);
const quick = values.quick;

const started = new Date();
const t0 = performance.now();
const before = loadavg();
const m = machine();
log(
  `infergate bench${quick ? ' --quick' : ''}: ${steps.length} benchmarks on ${m.cpu ?? 'cpu'}, ${m.cores} cores, node ${m.node}; ` +
    `load average ${before.map((x) => x.toFixed(2)).join(' ')}; nginx ${whichSync('nginx') === undefined ? 'not installed' : 'installed'}`,
);
const results: Results = {};
for (const [i, s] of steps.entries()) {
  await step(i + 1, steps.length, s.name, s.title, () => s.run(quick, results, log));
}
const after = loadavg();
const seconds = (performance.now() - t0) / 1000;
const figs = figures(results);
const date = started.toISOString().slice(0, 10);

await mkdir(out, { recursive: true });
// A quick run never takes the place of the day's full one, nor joins the history.
const stem = quick ? `${date}.quick` : date;
const jsonFile = join(out, `${stem}.json`);
const history = await readHistory(out);
for (const f of history.skipped) log(`skipped ${f} in the chart: not a bench results file`);
const earlier = history.entries.filter((e) => e.date.slice(0, 10) !== date);
const caption =
  `infergate bench${quick ? ' --quick' : ''}, ${started.toISOString()}, ${m.cores} cores, load average ` +
  `${before[0]!.toFixed(2)} before and ${after[0]!.toFixed(2)} after`;
await writeFile(
  jsonFile,
  `${JSON.stringify(
    {
      date: started.toISOString(),
      quick,
      machine: m,
      loadAverage: { before, after },
      seconds,
      steps: steps.map((s) => s.name),
      figures: figs,
      results,
    },
    null,
    2,
  )}\n`,
);
const svgFile = join(out, `${stem}.svg`);
await writeFile(
  svgFile,
  svgChart(results.curve ?? {}, [...earlier, { date: started.toISOString(), figures: figs }], caption),
);
log(`\nwrote ${jsonFile} and ${svgFile} (${seconds.toFixed(0)} s in all)`);

const met = figs.filter((f) => f.met === true).length;
const judged = figs.filter((f) => f.met !== undefined).length;
process.stdout.write(
  `## infergate bench${quick ? ' --quick (the harness at work; its figures are noise)' : ''}, ${date}\n\n` +
    `${m.cpu ?? 'cpu'}, ${m.cores} cores, node ${m.node}; load average ${before[0]!.toFixed(2)} before, ` +
    `${after[0]!.toFixed(2)} after; ${steps.map((s) => s.name).join(', ')}; ${seconds.toFixed(0)} s\n\n` +
    markdownTable(figs) +
    `\n${met} of ${judged} aims met. Every ratio is taken within one run, the targets taking turns.\n`,
);
