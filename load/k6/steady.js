// Steady load: a constant arrival rate (an open model: requests arrive at RATE a second whatever
// the answers do, as users do), for DURATION. Fails on the error rate, p95 or p99.
//   k6 run -e URL=http://gateway:8080 -e MODEL=mlp -e RATE=300 -e DURATION=10m load/k6/steady.js
import { payload } from './lib/body.js';
import { arrivalVus, number, readConfig, text, thresholds } from './lib/config.js';
import { infer, randomUser } from './lib/infer.js';

const cfg = readConfig(__ENV);
const body = payload(cfg, cfg.inputFile === undefined ? undefined : open(cfg.inputFile));
const rate = number(__ENV, 'RATE', 200, 1);

export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration: text(__ENV, 'DURATION', '5m'),
      ...arrivalVus(rate),
    },
  },
  thresholds: { ...thresholds(cfg), dropped_iterations: ['count==0'] },
};

export default function () {
  infer(cfg, body, randomUser(cfg.users));
}
