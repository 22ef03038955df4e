/**
 * `npm run bench:capacity`: how many requests a second one gateway core (and one backend core)
 * carries before p99 breaks a set latency, for `simple` (overhead-bound) and `mlp-large`
 * (compute-bound): an open-loop sweep of offered load through the gateway (load/capacity/).
 * Options: --quick (short steps, no refinement), --models simple,mlp-large, --p99-ms N (50),
 * --step-seconds N (5; 2 with --quick), --factor X (1.25; 1.6 with --quick).
 * Prints the knees as a table and writes load/results/capacity-<YYYY-MM-DD>.json.
 */
import './usage.js';
import { writeResult } from './common.js';
import { benchCapacity, capacityTable, parseCapacityOptions } from './capacity/run.js';

const options = parseCapacityOptions(process.argv.slice(2));
const result = await benchCapacity(options);
const p99 = options.sweep[options.models[0]!].p99Ms;
process.stdout.write(
  `infergate bench:capacity (${result.machine.cpu}, ${result.machine.cores} cores, node ${result.machine.node}; ` +
    `load average ${result.loadAverage.before.map((x) => x.toFixed(2)).join(' ')} before, ` +
    `${result.loadAverage.after.map((x) => x.toFixed(2)).join(' ')} after)\n\n${capacityTable(result.sweeps, p99)}`,
);
await writeResult(`capacity-${result.date.slice(0, 10)}.json`, result);
