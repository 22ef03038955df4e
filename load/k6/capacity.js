// Stepped capacity: the arrival rate climbs from START by STEP req/s, STEPS times, each step
// held for STEP_DURATION; the run stops (abortOnFail) once p99 passes P99_MS for the last
// DELAY_ABORT of samples. The knee is the last step held: read it off k6's "iterations" rate or
// the time it stopped at. Divide by the gateway's cores (and the backends') to size a fleet.
//   k6 run -e URL=http://gateway:8080 -e START=100 -e STEP=100 -e STEPS=15 -e P99_MS=100 load/k6/capacity.js
import { payload } from './lib/body.js';
import { arrivalVus, number, readConfig, text, thresholds } from './lib/config.js';
import { infer, randomUser } from './lib/infer.js';

const cfg = readConfig(__ENV);
const body = payload(cfg, cfg.inputFile === undefined ? undefined : open(cfg.inputFile));
const start = number(__ENV, 'START', 100, 1);
const step = number(__ENV, 'STEP', 100, 1);
const steps = number(__ENV, 'STEPS', 10, 1, 1000);
const hold = text(__ENV, 'STEP_DURATION', '1m');

/** Each step: 5 s to the new rate, then `hold` at it. */
export function capacityStages(first, by, count, holdFor) {
  const stages = [];
  for (let i = 0; i < count; i++) {
    const target = first + i * by;
    stages.push({ target, duration: '5s' }, { target, duration: holdFor });
  }
  return stages;
}

const base = thresholds(cfg);
export const options = {
  scenarios: {
    capacity: {
      executor: 'ramping-arrival-rate',
      startRate: start,
      timeUnit: '1s',
      stages: capacityStages(start, step, steps, hold),
      ...arrivalVus(start + (steps - 1) * step),
    },
  },
  thresholds: {
    ...base,
    http_req_duration: [
      `p(95)<${cfg.p95Ms}`,
      {
        threshold: `p(99)<${cfg.p99Ms}`,
        abortOnFail: true,
        delayAbortEval: text(__ENV, 'DELAY_ABORT', '20s'),
      },
    ],
  },
};

export default function () {
  infer(cfg, body, randomUser(cfg.users));
}
