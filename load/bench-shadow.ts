/**
 * `npm run bench:shadow`: the CPU cost of one shadow comparison, in process: decoding both answers
 * (common/oip/response.ts) and comparing them output by output (gateway/rollout/compare.ts), for
 * answers of the sizes the sample models give and larger. Prints microseconds per compared request.
 * With --live, also the primary's latency and the gateway's CPU with shadowing on and off
 * (load/shadow-live.ts).
 */
import './usage.js';
import { parseArgs } from 'node:util';
import { shadowCompare } from './shadow/compare.js';

const { values } = parseArgs({ options: { live: { type: 'boolean', default: false } } });

const rows = ['| answer | decode both + compare (µs per compared request) |', '|---|---|'];
for (const r of await shadowCompare()) rows.push(`| ${r.answer} | ${r.us.toFixed(1)} |`);
process.stdout.write(`${rows.join('\n')}\n`);
if (values.live) {
  const { shadowLive } = await import('./shadow-live.js');
  process.stdout.write(`\n${(await shadowLive({ rate: 100, perSlice: 500, slices: 6 })).text}\n`);
}
