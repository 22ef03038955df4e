/**
 * `npm run bench:fleet`: how fast an apply reaches a fleet. A real redis-server on a free port,
 * a fake upstream, 4 gateway processes in fleet mode, each with a client sending requests one after
 * another; then ≥ 200 applies that move model `simple` between two variants. For each apply and
 * gateway: the time from the store's write to the gateway's acknowledgement (the ACK it
 * publishes), and to the first answer its client receives from the new variant. Then the
 * gateway's CPU per request in fleet mode beside file mode, paired in one run.
 * Options: --applies N (200), --gateways N (4), --interval-ms N (1: the pause between one client's
 * requests).
 */
import './usage.js';
import { parseArgs } from 'node:util';
import { writeResult } from './common.js';
import { benchFleet } from './fleet/run.js';

const { values } = parseArgs({
  options: {
    applies: { type: 'string', default: '200' },
    gateways: { type: 'string', default: '4' },
    'interval-ms': { type: 'string', default: '1' },
  },
});
const applies = Number(values.applies);
const gatewayCount = Number(values.gateways);
const intervalMs = Number(values['interval-ms']);
if (!(intervalMs >= 0 && intervalMs <= 1000)) throw new Error('--interval-ms must be in 0..1000');
if (!Number.isSafeInteger(applies) || applies < 1) throw new Error('--applies must be a positive integer');
if (!Number.isSafeInteger(gatewayCount) || gatewayCount < 1 || gatewayCount > 16) {
  throw new Error('--gateways must be in 1..16');
}

await writeResult('fleet-latest.json', await benchFleet({ applies, gateways: gatewayCount, intervalMs }));
